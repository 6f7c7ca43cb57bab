// Distributed, resumable batches over a Dataset.
//
// Epoch e visits every row once, in an order fixed by (seed, e): the blocks are
// permuted and the rows inside each block are permuted. Global batch s is the
// rows at positions [s*B, s*B + B) of that order (the last one may be short), and
// rank r reads its contiguous, near-equal slice of it. So the union of the ranks'
// batches is the same whatever the world size, which is what makes N ranks train
// exactly like one rank with the whole batch, and (epoch, step) is the whole
// position to resume from.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <fstream>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tandem/data/dataset.h"

namespace tandem::data {

struct Batch {
  at::Tensor dense;  ///< [n, dense columns] float32
  /// [n, id slots] int64 table rows: one slot per categorical column, max_ids for a
  /// multi-hot one, whose unused slots hold Schema::kNoId (see Schema::parse).
  at::Tensor sparse;
  at::Tensor labels;        ///< [n] float32
  int64_t global_size = 0;  ///< rows in the global batch this is a slice of
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  /// The same rows on `device` (asynchronous from pinned host memory).
  Batch to(const at::Device& device) const;
};

struct LoaderOptions {
  uint64_t seed = 0;
  bool shuffle = true;
  int64_t global_batch = 1;
  int rank = 0;
  int world = 1;
  /// Threads that parse a batch's rows (1 = the calling thread alone). GPU training
  /// needs several: one thread parses about 1.3M rows/s, less than a GPU trains.
  int threads = 1;
  /// Batches in page-locked memory, so their copies to a GPU run asynchronously
  /// (needs a CUDA LibTorch).
  bool pinned = false;
};

class Loader {
 public:
  Loader(Dataset dataset, std::vector<int64_t> table_rows, LoaderOptions options);
  ~Loader();

  int64_t rows() const { return ds_.rows; }
  const Schema& schema() const { return *ds_.schema; }
  int64_t steps_per_epoch() const;
  /// This rank's slice of global batch `step` in `epoch`.
  Batch batch(int64_t epoch, int64_t step);
  /// Rows at positions [begin, begin + count) of the epoch's order.
  Batch read(int64_t epoch, int64_t begin, int64_t count);
  /// Dataset-order id (0..rows-1) of the row at `position` in `epoch`; for tests.
  int64_t row_id(int64_t epoch, int64_t position);

  /// Rank r's slice [first, first + count) of n rows split over `world` ranks.
  static std::pair<int64_t, int64_t> slice(int64_t n, int rank, int world);

 private:
  struct Cached;
  struct Where {
    size_t block;
    int64_t row;  ///< index among the block's valid rows
  };
  void set_epoch(int64_t epoch);
  Where locate(int64_t position) const;
  std::shared_ptr<const Cached> load(size_t block);

  Dataset ds_;
  std::vector<int64_t> table_rows_;
  LoaderOptions opt_;
  std::vector<int64_t> block_start_;  ///< dataset-order id of each block's first row
  int64_t epoch_ = -1;
  std::vector<size_t> order_;    ///< blocks in this epoch's order
  std::vector<int64_t> prefix_;  ///< rows before order_[k]
  std::list<std::shared_ptr<const Cached>> cache_;  ///< a read holds its blocks
  std::vector<std::unique_ptr<std::ifstream>> files_;
};

}  // namespace tandem::data
