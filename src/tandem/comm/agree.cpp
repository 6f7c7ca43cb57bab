#include "tandem/comm/agree.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "tandem/util/error.h"

namespace tandem::comm {
namespace {
bool g_shared_failure = false;
}

bool failure_is_shared() { return g_shared_failure; }

void agree(Communicator& comm, std::exception_ptr failure) {
  int code = 0;
  if (failure) {
    code = 1;
    try {
      std::rethrow_exception(failure);
    } catch (const Error& e) {
      code = e.exit_code();
    } catch (...) {
    }
  }
  // [exit code, -rank of the failed rank]: max picks a failed rank's code and the
  // lowest failed rank.
  at::Tensor state = at::tensor({static_cast<int64_t>(code),
                                 code ? -static_cast<int64_t>(comm.rank()) : INT64_MIN},
                                at::kLong);
  comm.allreduce(state, ReduceOp::kMax);
  g_shared_failure = state[0].item<int64_t>() != 0;
  if (failure) std::rethrow_exception(failure);
  const int64_t worst = state[0].item<int64_t>();
  if (worst != 0)
    throw PeerError(fmt::format("rank {} failed", -state[1].item<int64_t>()),
                    static_cast<int>(worst));
}

}  // namespace tandem::comm
