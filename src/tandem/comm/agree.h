// Failing together: a step that may throw on some ranks only (reading a config or
// a data file) is wrapped so that every rank learns of the failure and stops,
// instead of the healthy ranks waiting forever in the next collective.
#pragma once

#include <exception>
#include <utility>

#include "tandem/comm/communicator.h"
#include "tandem/util/error.h"

namespace tandem::comm {

/// Collective. Rethrows `failure` on its own rank; throws PeerError on the others
/// when any rank failed; returns normally when none did.
void agree(Communicator& comm, std::exception_ptr failure);

/// True once an agree() has failed in this process: every rank knows, so the job can
/// end with a plain exit rather than an abort.
bool failure_is_shared();

/// For a failure every rank of `comm` detected at once, from values they share (a
/// reduced gradient): rank 0 throws `e` and says why, the others throw a silent
/// PeerError with its exit code. The job then ends with a plain exit, or, with
/// `abort_job` (processes outside `comm` wait for it, e.g. parameter servers), with
/// rank 0's MPI_Abort. Call it on every rank of `comm`.
void mark_failure_shared();
template <class E>
[[noreturn]] void fail_together(const Communicator& comm, const E& e, bool abort_job = false) {
  if (!abort_job) mark_failure_shared();
  if (comm.rank() == 0) throw e;
  throw PeerError(e.what(), e.exit_code());
}

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
