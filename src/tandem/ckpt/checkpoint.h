// Crash-safe HDF5 checkpoint files (schema: checkpoints/README.md); a directory of
// them, owned by one run, is a Store (store.h).
//
// write() follows a fixed sequence so that no crash at any moment leaves a run
// without a loadable checkpoint: write NAME.tmp beside the target; close it; fsync
// it and, alongside, reopen it and read every dataset back against its XXH3
// checksum; rename it to NAME; fsync the directory. Only then does Store move its
// `latest` pointer (itself replaced by write-temp, fsync, rename, fsync).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tandem::ckpt {

/// A data file the run trained on, for provenance (data versioning).
struct DataFile {
  std::string path;
  int64_t bytes = 0;
  std::string digest;  ///< 64-bit content hash, hex
};

/// Everything a checkpoint holds, as host tensors and plain values.
struct State {
  /// The run this checkpoint belongs to (Store::claim); "" in checkpoints written
  /// before runs had an identity (format < 3).
  std::string run_id;
  int64_t step = 0;     ///< optimizer steps done (the resume position)
  int64_t epoch = 0;    ///< epoch of the next step
  int64_t samples = 0;  ///< training samples seen
  double lr = 0;        ///< learning rate of the last step (the schedule is a function of step)
  double best = std::numeric_limits<double>::infinity();      ///< best eval logloss so far
  int64_t bad_evals = 0;                                      ///< early-stopping counter
  double monitor = std::numeric_limits<double>::quiet_NaN();  ///< eval metric at this step
  int64_t world_size = 1;
  int64_t global_batch = 0;  ///< train.batch_size: the unit of `step`
  /// > 0: the embedding tables are not in this file but in this many shard files
  /// beside it (one per parameter server), committed by NAME.manifest (sharded.h).
  int64_t table_shards = 0;
  std::string version;       ///< Tandem's
  std::string config;        ///< effective config.ini text
  std::string metrics;       ///< metrics.jsonl so far
  std::vector<DataFile> data;
  std::map<std::string, at::Tensor> params, buffers;
  std::map<std::string, at::Tensor> optimizer;  ///< "<parameter name>/<state key>"
  std::string optimizer_name;
  std::vector<at::Tensor> rng;       ///< per rank: the CPU generator's state
  std::vector<at::Tensor> cuda_rng;  ///< per rank: its GPU's generator state (GPU training)
  /// The run's feature statistics (stats::FeatureStats as named tensors), if any.
  std::map<std::string, at::Tensor> stats;
  /// Set when some tensors were still being copied as the state was taken (the
  /// rows of embedding tables, see nn::RowSnapshot): finishes them. Run it once,
  /// before the state is read.
  std::function<void()> complete;
};

struct WriteOptions {
  int gzip = 0;         ///< 0 = none, 1..9 = gzip level
  bool locking = true;  ///< HDF5 file locking
};

/// The crash-safe write of `state` to `path` (see above).
void write(const std::string& path, const State& state, const WriteOptions& options);
/// Reads and verifies a checkpoint; a corrupt or truncated file throws DataError.
State read(const std::string& path, bool locking = true);
/// The root attributes only (step, run_id, table_shards, ...), checked against their
/// checksummed copy; no tensors. Throws DataError if they do not read.
State read_header(const std::string& path, bool locking = true);
/// Reads every dataset (checksums) without keeping them; throws DataError if bad.
void verify(const std::string& path, bool locking = true);

/// Writes `text` to `path` atomically: temp file, fsync, rename, fsync the directory.
void write_atomically(const std::string& path, const std::string& text);

/// 64-bit digest over every parameter and optimizer value, in name order: equal
/// digests mean bit-identical model and optimizer state.
std::string digest(const State& state);

/// Content digest of a file (hex), streamed; of its first `limit` bytes when >= 0
/// (a file appended to since has its old digest there).
std::string file_digest(const std::string& path, int64_t limit = -1);

/// Test hook of the crash-safety tests: TANDEM_CKPT_FAULT=STEP[@K] names a step of
/// the write sequence (write, fsync, verify, rename, dirsync, latest) at which the
/// process kills itself, as a power cut or kill -9 would, on the K-th save (default
/// the first).
void crash_point(const char* step);

}  // namespace tandem::ckpt
