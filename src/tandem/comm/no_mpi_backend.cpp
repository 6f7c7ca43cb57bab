// Built instead of mpi_backend.cpp when TANDEM_WITH_MPI is off.
#include <cstdlib>

#include "tandem/comm/mpi_backend.h"
#include "tandem/util/error.h"

namespace tandem::comm::detail {

bool mpi_available() { return false; }
void mpi_init(int*, char***, RuntimeInfo&) {}
void mpi_finalize() {}
void mpi_abort(int code) { std::exit(code); }
std::unique_ptr<Communicator> make_mpi_communicator(CommOptions) {
  throw ConfigError("comm.backend=mpi, but Tandem was built without MPI (TANDEM_WITH_MPI=0)");
}

}  // namespace tandem::comm::detail
