// Built instead of nccl_backend.cpp when TANDEM_WITH_NCCL is off.
#include "tandem/comm/nccl_backend.h"
#include "tandem/util/error.h"

namespace tandem::comm::detail {

std::unique_ptr<Communicator> make_nccl_communicator(CommOptions, const RuntimeInfo&,
                                                     std::unique_ptr<Communicator>) {
  throw ConfigError(
      "comm.backend=nccl, but Tandem was built without NCCL (TANDEM_WITH_NCCL=0; it needs "
      "the CUDA toolkit with NCCL)");
}

}  // namespace tandem::comm::detail
