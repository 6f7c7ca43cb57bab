// Helpers shared by the tests.
#pragma once

#include <ATen/ATen.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tandem/comm/communicator.h"
#include "tandem/comm/runtime.h"

namespace tandem::testing {

/// The communicator of the launched job: MPI under mpirun, single otherwise.
inline std::unique_ptr<comm::Communicator> world(bool check = false) {
  return comm::Runtime::get().make_communicator("auto", comm::CommOptions{check});
}

/// A fresh directory under the system temp dir, the same on every rank of `comm`
/// (named after rank 0's process id). Collective.
inline std::string shared_temp_dir(comm::Communicator& comm, const std::string& name) {
  at::Tensor id = at::full({1}, static_cast<int64_t>(::getpid()), at::kLong);
  comm.broadcast(id, 0);
  auto dir = std::filesystem::temp_directory_path() /
             ("tandem-test-" + name + "-" + std::to_string(id.item<int64_t>()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace tandem::testing
