// A point-in-time copy of an embedding table's rows, taken without stopping
// training (for async checkpoints on the CPU).
//
// Copying a large table at a step boundary blocks training for as long as the
// memory takes to copy. Instead the rows are copied in order by the thread that
// then writes the checkpoint, while training goes on: before training updates rows
// (only the rows of its batch, a few thousand of millions), it saves the old values
// of those the copy has not reached yet, and the copy puts them back at its end.
// So the copy holds exactly the rows as they were when the snapshot began.
//
// Rows the copy is reading while they are updated come out torn in the copy and are
// then overwritten with their saved old values; the tensors are read concurrently
// with their update only in that case. When an update touches many rows for the
// size of the table, training instead helps the copy to its end (copying from the
// top while the other thread works up), so a save never costs training much more
// than copying the table at the step boundary would.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace tandem::nn {

class RowSnapshot {
 public:
  /// Copies of `sources` (CPU, contiguous, the same number of rows) into `copies`
  /// (allocated here unless they have the sources' shape and dtype already).
  RowSnapshot(std::vector<at::Tensor> sources, std::vector<at::Tensor> copies);

  /// Training thread, before updating `rows` (global row ids; ids outside the
  /// table are ignored): saves the old values of those not copied yet, or, when
  /// the update is large for the table (n * kScatter >= rows), helps the copy to
  /// its end and waits for it, which then costs less. Not from the copying thread.
  void before_update(const int64_t* rows, int64_t n);
  /// The same for a CPU tensor of row ids (any integer dtype, any shape).
  void before_update(const at::Tensor& rows);
  /// Seconds the training thread spent in before_update().
  double guard_seconds() const { return guard_seconds_.load(std::memory_order_relaxed); }
  /// The copying thread: copies the remaining rows, then restores the saved ones.
  /// Afterwards before_update() does nothing. `after_step` (tests) runs after each
  /// step of about 1 MiB, with the rows copied so far.
  void complete(const std::function<void(int64_t)>& after_step = {});
  bool completed() const { return completed_.load(std::memory_order_acquire); }
  /// The copies (final once complete() returned).
  const std::vector<at::Tensor>& copies() const { return copies_; }

 private:
  std::vector<at::Tensor> sources_, copies_;
  std::vector<int64_t> row_bytes_;
  int64_t rows_ = 0;
  std::atomic<int64_t> copied_{0};  ///< rows [0, copied_) are in the copies
  std::atomic<bool> completed_{false};
  std::atomic<double> guard_seconds_{0};
  int64_t step_rows_ = 1, steps_ = 0;  ///< the copy goes in steps of about 1 MiB
  std::mutex claims_;                  ///< who copies which step: guards the three below
  std::condition_variable helped_;
  int64_t next_low_ = 0, next_high_ = 0;  ///< [next_low_, next_high_) not claimed yet
  int64_t helped_steps_ = 0;              ///< steps the training thread copied
  void copy_step(int64_t step);
  /// Training thread, waiting: claims and copies steps from the top.
  void help();
  static constexpr int64_t kScatter = 64;
  std::mutex mutex_;                  ///< guards what follows
  std::condition_variable finished_;  ///< complete() is done
  std::vector<uint8_t> saved_;        ///< per row: its old values are saved
  std::vector<int64_t> saved_rows_;
  std::vector<std::vector<char>> saved_bytes_;  ///< per source, row after row
};

}  // namespace tandem::nn
