// The parts of saving and resuming that all ranks do together, shared by every
// loop that checkpoints (the data-parallel trainer, the meta-learner).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/ckpt/store.h"
#include "tandem/comm/communicator.h"

namespace tandem::ckpt {

/// Every rank's generator state for `device` (the CPU's, or the rank's GPU's), in
/// rank order, on every rank (collective).
std::vector<at::Tensor> gather_rng(comm::Communicator& comm, const at::Device& device = at::kCPU);

/// Restores this rank's generator for `device` from `rng` (saved by a world of
/// `saved_world` ranks). With another world size a rank's stream cannot carry
/// over, so the generator is seeded with `fallback_seed` instead: the resumed run
/// is still deterministic. Returns whether the saved state was restored.
bool restore_rng(const std::vector<at::Tensor>& rng, int64_t saved_world,
                 comm::Communicator& comm, uint64_t fallback_seed,
                 const at::Device& device = at::kCPU);

/// Resolves `--resume` (`spec`) for all ranks and claims the checkpoint directory
/// for this run (Store::claim, on rank 0, which holds `store`): the checkpoint to
/// resume, "" for a fresh start (collective). Without a store (no checkpoint
/// directory) `spec` is a path or "". A failure stops every rank. `announce` logs
/// the run's id (off for a claim that the trainer's own claim repeats).
std::string start_run(comm::Communicator& comm, Store* store, const std::string& spec,
                      bool overwrite, bool announce = true);

/// Rank 0's Store for `dir` (null on the other ranks, and when `dir` is empty);
/// collective. Built without HDF5, a run that `needs` checkpoints (it asked to
/// save periodically or to resume) is a ConfigError; otherwise `dir` is cleared
/// and the run saves nothing.
std::unique_ptr<Store> open_store(comm::Communicator& comm, std::string& dir,
                                  const StoreOptions& options, bool needs);

}  // namespace tandem::ckpt
