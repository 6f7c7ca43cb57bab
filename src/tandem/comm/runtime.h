// Process-wide distributed context: who am I, how many of us, who shares my node.
// Rank and sizes come from MPI itself (MPI_Comm_split_type for the node-local
// values); launcher variables (mpirun, srun, PMI) are only cross-checked and logged.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tandem/comm/communicator.h"

namespace tandem::comm {

struct RuntimeInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;
  bool mpi = false;      ///< MPI was initialised (built with MPI)
  bool threads = true;   ///< MPI may be called from several threads at once
  std::string launcher;  ///< "mpirun", "srun", "pmi" or "none"
  std::vector<std::string> hosts;  ///< every rank's host (MPI's processor name)
  std::vector<int> local_ranks;    ///< every rank's rank on its node
};

class Runtime {
 public:
  /// Initialises MPI when Tandem was built with it (also as a plain single process,
  /// a world of one). Call once, first thing in main().
  static Runtime& init(int* argc, char*** argv);
  /// The runtime after init(); throws if init() was not called.
  static Runtime& get();

  const RuntimeInfo& info() const { return info_; }
  int rank() const { return info_.rank; }
  int world_size() const { return info_.world_size; }
  /// Which ranks run on which host: "tdm1 = ranks 0,1 (local 0,1); tdm2 = ...".
  std::string describe_hosts() const;

  /// `backend` is "auto" (MPI when built with it, else single), "mpi", "single" or
  /// "nccl" (GPU collectives; CPU tensors go to the "auto" communicator).
  std::unique_ptr<Communicator> make_communicator(const std::string& backend,
                                                  CommOptions options) const;

  /// Intra-op threads for this rank: `requested` if > 0, else the node's cores
  /// divided by the ranks on this node (at least 1). Applies it and returns it.
  int set_threads(int requested) const;

  /// The memory one rank of this node may use: the node's available memory shared
  /// by its ranks, or the process's own limit (ulimit -d / -v) if lower; `why`
  /// says which, for an error message.
  double memory_per_rank(std::string* why = nullptr) const;

  /// Ends the whole job with `code`; under MPI every rank is taken down, so no rank
  /// waits forever on one that failed.
  [[noreturn]] void abort(int code) const;

  ~Runtime();

 private:
  Runtime() = default;
  RuntimeInfo info_;
};

}  // namespace tandem::comm
