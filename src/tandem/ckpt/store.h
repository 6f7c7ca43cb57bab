// A directory of checkpoints, owned by one run: step-NNNNNNNNN.h5 files, the
// `latest` pointer (moved only after a save is complete), the `run_id` file, and
// corrupt/ for the files that do not load.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tandem/ckpt/checkpoint.h"

namespace tandem::ckpt {

struct StoreOptions {
  int64_t keep_last = 3;  ///< most recent checkpoints kept
  int64_t keep_best = 1;  ///< best by `monitor` kept besides
  bool maximize = false;  ///< monitor mode: max (e.g. auc) or min (logloss)
  WriteOptions write;
};

/// A directory of checkpoints step-NNNNNNNNN.h5 with a `latest` pointer, owned by
/// one run: its id is in the file `run_id`, and only that run's checkpoints count.
class Store {
 public:
  /// Creates the directory if needed and removes stale *.tmp files (left by a
  /// crash during a save).
  Store(std::string dir, StoreOptions options);

  /// Resolves `--resume` (`spec`: "" fresh, "auto", or a checkpoint path) and makes
  /// the directory this run's. The run's id is the resumed checkpoint's, else a new
  /// one; it is written to `run_id`. A fresh start, or a resume from elsewhere, into
  /// a directory that holds another run's checkpoints is a ConfigError, unless
  /// `overwrite`, which deletes them. Returns the checkpoint to resume ("" = none).
  std::string claim(const std::string& spec, bool overwrite);
  /// This run's id (after claim).
  const std::string& run_id() const { return run_; }
  /// Writes the checkpoint of `state`, runs `commit(path)` (a sharded checkpoint's
  /// manifest), moves `latest` to it, then removes those beyond the last keep_last
  /// and the best keep_best (with their shards), never the one just written; files
  /// whose header does not read are set aside (corrupt/). Returns its path.
  std::string save(const State& state,
                   const std::function<void(const std::string&)>& commit = nullptr);
  /// This run's newest loadable checkpoint: `latest` if it verifies (and, sharded,
  /// has its manifest and shards), else the newest older one that does; the ones
  /// that do not are set aside (corrupt/), saying why. nullopt if none.
  std::optional<std::string> latest_valid();
  /// Checkpoint files present, oldest first.
  std::vector<std::string> list() const;
  const std::string& dir() const { return dir_; }

 private:
  void prune(const std::string& saved);
  /// Whether a checkpoint whose header says `run_id` is this run's. One from before
  /// runs had ids is the directory's, which claim() gave to this run; before claim()
  /// (or for a directory without an id) every checkpoint is.
  bool ours(const std::string& run_id) const {
    return run_.empty() || run_id == run_ || run_id.empty();
  }
  /// Deletes checkpoint `path` with its manifest and shards.
  void remove(const std::string& path);
  /// Moves checkpoint `path` (with its manifest and shards) into corrupt/, so it is
  /// never counted or tried again, and says so.
  void set_aside(const std::string& path, const std::string& why);
  std::string dir_;
  StoreOptions options_;
  std::string run_;
};

/// A new run id: the UTC start time and 32 random bits, e.g. 20261204-061502-9f3a01c2.
std::string new_run_id();

}  // namespace tandem::ckpt
