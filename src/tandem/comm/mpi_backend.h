// Entry points of the MPI backend, chosen by CMake: mpi_backend.cpp when Tandem is
// built with MPI, no_mpi_backend.cpp otherwise. No MPI type appears here, so the
// rest of the code never includes mpi.h.
#pragma once

#include <memory>

#include "tandem/comm/communicator.h"
#include "tandem/comm/runtime.h"

namespace tandem::comm::detail {

bool mpi_available();
/// MPI_Init_thread and the rank/size/local values; fills info.
void mpi_init(int* argc, char*** argv, RuntimeInfo& info);
void mpi_finalize();
[[noreturn]] void mpi_abort(int code);
std::unique_ptr<Communicator> make_mpi_communicator(CommOptions options);

}  // namespace tandem::comm::detail
