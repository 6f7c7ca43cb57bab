// Failing together: a step that may throw on some ranks only (reading a config or
// a data file) is wrapped so that every rank learns of the failure and stops,
// instead of the healthy ranks waiting forever in the next collective.
#pragma once

#include <exception>
#include <utility>

#include "tandem/comm/communicator.h"

namespace tandem::comm {

/// Collective. Rethrows `failure` on its own rank; throws PeerError on the others
/// when any rank failed; returns normally when none did.
void agree(Communicator& comm, std::exception_ptr failure);

/// True once an agree() has failed in this process: every rank knows, so the job can
/// end with a plain exit rather than an abort.
bool failure_is_shared();

/// Runs fn() on every rank, then agree()s on whether it threw.
template <class F>
void agree_on(Communicator& comm, F&& fn) {
  std::exception_ptr failure;
  try {
    std::forward<F>(fn)();
  } catch (...) {
    failure = std::current_exception();
  }
  agree(comm, failure);
}

}  // namespace tandem::comm
