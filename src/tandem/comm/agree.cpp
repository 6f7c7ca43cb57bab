#include "tandem/comm/agree.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "tandem/util/error.h"

namespace tandem::comm {
namespace {
bool g_shared_failure = false;
}

bool failure_is_shared() { return g_shared_failure; }

void mark_failure_shared() { g_shared_failure = true; }

void agree(Communicator& comm, std::exception_ptr failure) {
  int64_t code = 0;
  if (failure) {
    code = 1;
    try {
      std::rethrow_exception(failure);
    } catch (const Error& e) {
      code = e.exit_code();
    } catch (...) {
    }
  }
  const at::Tensor codes = comm.allgather(at::full({1}, code, at::kLong)).view(-1);
  const int64_t* c = codes.data_ptr<int64_t>();
  int first_failed = -1, failed = 0;
  for (int r = 0; r < comm.size(); ++r) {
    if (c[r] == 0) continue;
    if (first_failed < 0) first_failed = r;
    ++failed;
  }
  if (failed == 0) return;
  g_shared_failure = true;
  // When every rank failed (a bad config read by all), the first one speaks for all.
  if (failure && (failed < comm.size() || comm.rank() == first_failed))
    std::rethrow_exception(failure);
  throw PeerError(fmt::format("rank {} failed", first_failed), static_cast<int>(c[first_failed]));
}

}  // namespace tandem::comm
