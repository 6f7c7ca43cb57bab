// The MPI backend's watchdog: no collective may hang a job silently. Every MPI
// collective, blocking or not, is registered while in flight. A thread checks
// them ten times a second; one not done within comm.timeout_s ends the job
// (MPI_Abort) with one line naming the op, its sequence number, this rank and its
// host, and the ranks that did not answer: before aborting, the watchdog asks
// every rank's watchdog where it is, over a communicator of its own, so a rank
// behind a dead link or on a dead host is named, and a live rank that is simply
// elsewhere (a desynchronised program) says where. A collective that finishes but
// took longer than a quarter of the timeout (at most 10 s) is logged as a stall.
// No MPI type appears here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::comm::detail {

/// Collective over MPI_COMM_WORLD, from mpi_init, with every rank's host. With
/// more than one rank and MPI_THREAD_MULTIPLE, starts the watchdog thread.
void watchdog_start(const std::vector<std::string>& hosts);
/// Stops the thread; before MPI_Finalize.
void watchdog_stop();

/// One MPI collective in flight, watched from construction until done() or
/// destruction. `op` and `comm` must outlive it (string literals).
class Watched {
 public:
  Watched(const char* op, const char* comm, uint64_t seq, double timeout_s);
  ~Watched() { done(); }
  Watched(const Watched&) = delete;
  Watched& operator=(const Watched&) = delete;
  void done();

 private:
  uint64_t id_ = 0;  ///< 0: not watched, or done
};

}  // namespace tandem::comm::detail
