#include "tandem/nn/row_snapshot.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "tandem/util/error.h"

namespace tandem::nn {

RowSnapshot::RowSnapshot(std::vector<at::Tensor> sources, std::vector<at::Tensor> copies)
    : sources_(std::move(sources)), copies_(std::move(copies)) {
  if (sources_.empty() || copies_.size() != sources_.size())
    throw Error("RowSnapshot: one copy per source needed");
  rows_ = sources_[0].size(0);
  for (size_t k = 0; k < sources_.size(); ++k) {
    const at::Tensor& s = sources_[k];
    if (!s.is_cpu() || !s.is_contiguous() || s.dim() == 0 || s.size(0) != rows_)
      throw Error("RowSnapshot: sources must be contiguous CPU tensors with equal rows");
    at::Tensor& c = copies_[k];
    if (!c.defined() || !c.is_cpu() || !c.sizes().equals(s.sizes()) || c.dtype() != s.dtype() ||
        !c.is_contiguous())
      c = at::empty_like(s, at::MemoryFormat::Contiguous);
    row_bytes_.push_back(rows_ > 0 ? static_cast<int64_t>(s.nbytes()) / rows_ : 0);
  }
  // About 1 MiB per copy step, so the mark advances often.
  const int64_t widest = *std::max_element(row_bytes_.begin(), row_bytes_.end());
  step_rows_ = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, widest));
  steps_ = next_high_ = (rows_ + step_rows_ - 1) / step_rows_;
  saved_.assign(static_cast<size_t>(rows_), 0);
  saved_bytes_.resize(sources_.size());
}

void RowSnapshot::before_update(const at::Tensor& rows) {
  if (completed()) return;
  const at::Tensor r = rows.to(at::kLong).contiguous();
  before_update(r.data_ptr<int64_t>(), r.numel());
}

void RowSnapshot::before_update(const int64_t* rows, int64_t n) {
  if (completed()) return;
  const auto start = std::chrono::steady_clock::now();
  const auto add_time = [&] {  // one writer (the training thread): load + store will do
    guard_seconds_.store(
        guard_seconds() +
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
        std::memory_order_relaxed);
  };
  std::unique_lock<std::mutex> lock(mutex_);
  if (completed()) return;
  // Saving a row costs about kScatter times what copying it in order does, and
  // (ids spread over the table) an update finds a share remaining/rows of its ids
  // ahead of the copy: so when n * kScatter >= rows, finishing the copy costs less
  // than saving, wherever the copy is. (Measured on the CI VM: 106,496
  // random rows of 64 bytes saved in 10-20 ms; 90 MB copied in order in 10 ms.)
  if (n * kScatter >= rows_) {
    lock.unlock();
    help();  // the copy's last steps, from the top, while the copying thread works up
    lock.lock();
    finished_.wait(lock, [&] { return completed(); });
    lock.unlock();
    add_time();
    return;
  }
  // Rows below the mark were copied before it was published (release/acquire),
  // so updating them now cannot reach the copy.
  const int64_t copied = copied_.load(std::memory_order_acquire);
  for (size_t k = 0; k < sources_.size(); ++k)
    saved_bytes_[k].reserve(saved_bytes_[k].size() + static_cast<size_t>(n * row_bytes_[k]));
  saved_rows_.reserve(saved_rows_.size() + static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows[i];
    if (r < copied || r >= rows_ || saved_[static_cast<size_t>(r)]) continue;
    saved_[static_cast<size_t>(r)] = 1;
    saved_rows_.push_back(r);
    for (size_t k = 0; k < sources_.size(); ++k) {
      const char* p = static_cast<const char*>(sources_[k].data_ptr()) + r * row_bytes_[k];
      saved_bytes_[k].insert(saved_bytes_[k].end(), p, p + row_bytes_[k]);
    }
  }
  lock.unlock();
  add_time();
}

void RowSnapshot::copy_step(int64_t step) {
  const int64_t first = step * step_rows_, count = std::min(step_rows_, rows_ - first);
  for (size_t k = 0; k < sources_.size(); ++k)
    std::memcpy(static_cast<char*>(copies_[k].data_ptr()) + first * row_bytes_[k],
                static_cast<const char*>(sources_[k].data_ptr()) + first * row_bytes_[k],
                static_cast<size_t>(count * row_bytes_[k]));
}

void RowSnapshot::help() {
  for (;;) {
    int64_t step = 0;
    {
      std::lock_guard<std::mutex> lock(claims_);
      if (next_low_ >= next_high_) return;
      step = --next_high_;
    }
    copy_step(step);
    {
      std::lock_guard<std::mutex> lock(claims_);
      ++helped_steps_;
    }
    helped_.notify_all();
  }
}

void RowSnapshot::complete(const std::function<void(int64_t)>& after_step) {
  if (completed()) return;
  // Steps from the bottom, in order, so that the mark says which rows are copied.
  for (;;) {
    int64_t step = 0;
    {
      std::lock_guard<std::mutex> lock(claims_);
      if (next_low_ >= next_high_) break;
      step = next_low_++;
    }
    copy_step(step);
    const int64_t copied = std::min(rows_, (step + 1) * step_rows_);
    copied_.store(copied, std::memory_order_release);
    if (after_step) after_step(copied);
  }
  {
    // The steps a waiting training thread took from the top are done too.
    std::unique_lock<std::mutex> lock(claims_);
    helped_.wait(lock, [&] { return helped_steps_ == steps_ - next_high_; });
  }
  std::lock_guard<std::mutex> lock(mutex_);
  completed_.store(true, std::memory_order_release);
  for (size_t i = 0; i < saved_rows_.size(); ++i)
    for (size_t k = 0; k < sources_.size(); ++k)
      std::memcpy(static_cast<char*>(copies_[k].data_ptr()) + saved_rows_[i] * row_bytes_[k],
                  saved_bytes_[k].data() + static_cast<int64_t>(i) * row_bytes_[k],
                  static_cast<size_t>(row_bytes_[k]));
  std::vector<uint8_t>().swap(saved_);
  std::vector<int64_t>().swap(saved_rows_);
  for (auto& b : saved_bytes_) std::vector<char>().swap(b);
  finished_.notify_all();
}

}  // namespace tandem::nn
