// Error checking for MPI calls, shared by the MPI backend's two sources
// (mpi_backend.cpp, mpi_watchdog.cpp), the only files that include mpi.h.
#pragma once

#include <fmt/format.h>
#include <mpi.h>

#include <string>

#include "tandem/util/error.h"

namespace tandem::comm::detail {

inline int world_rank() {
  int r = -1, init = 0;
  MPI_Initialized(&init);
  if (init) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

inline void mpi_check(int rc, const char* call, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw CommError(fmt::format("{} failed at {}:{} on rank {}: {}", call, file, line, world_rank(),
                              std::string(msg, len)));
}

}  // namespace tandem::comm::detail

#define TANDEM_MPI_CHECK(call) ::tandem::comm::detail::mpi_check((call), #call, __FILE__, __LINE__)
