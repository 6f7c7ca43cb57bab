// Entry point of the NCCL backend, chosen by CMake: nccl_backend.cpp when Tandem
// is built with NCCL, no_nccl_backend.cpp otherwise. No NCCL or CUDA type appears
// here, so the rest of the code never includes nccl.h.
#pragma once

#include <memory>

#include "tandem/comm/communicator.h"
#include "tandem/comm/runtime.h"

namespace tandem::comm::detail {

/// The NCCL communicator of this rank: binds the process to GPU
/// local_rank % device_count (a node with more ranks than GPUs is a ConfigError),
/// creates the NCCL communicator from rank 0's unique id broadcast over `host`, and
/// keeps `host` for collectives on CPU tensors.
std::unique_ptr<Communicator> make_nccl_communicator(CommOptions options, const RuntimeInfo& info,
                                                     std::unique_ptr<Communicator> host);

}  // namespace tandem::comm::detail
