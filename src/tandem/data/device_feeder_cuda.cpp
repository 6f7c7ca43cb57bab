#include <ATen/ATen.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <array>

#include "tandem/data/device_feeder.h"
#include "tandem/util/cuda_stream.h"
#include "tandem/util/error.h"

namespace tandem::data {
namespace {

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess)
    throw Error(fmt::format("device feeder: {}: {}", what, cudaGetErrorString(rc)));
}

class CudaFeeder final : public DeviceFeeder {
 public:
  CudaFeeder(const at::Device& device, int64_t max_rows, int64_t dense, int64_t id_slots)
      : max_rows_(max_rows) {
    const auto on = at::TensorOptions().device(device);
    for (Slot& s : slots_) {
      s.dense = at::empty({max_rows, dense}, on.dtype(at::kFloat));
      s.sparse = at::empty({max_rows, id_slots}, on.dtype(at::kLong));
      s.labels = at::empty({max_rows}, on.dtype(at::kFloat));
      check(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming), "cudaEventCreate");
      check(cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming), "cudaEventCreate");
    }
    check(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  ~CudaFeeder() override {
    cudaStreamSynchronize(copy_);
    for (Slot& s : slots_) {
      cudaEventDestroy(s.copied);
      cudaEventDestroy(s.consumed);
    }
    cudaStreamDestroy(copy_);
  }

  Batch feed(const Batch& host) override {
    const int64_t n = host.size();
    if (n > max_rows_ || host.dense.size(1) != slots_[0].dense.size(1) ||
        host.sparse.size(1) != slots_[0].sparse.size(1))
      throw Error(fmt::format("device feeder: a batch of {} rows, buffers of {}", n, max_rows_));
    cudaStream_t compute = current_cuda_stream();
    // Everything the compute stream has queued so far used the previous batch's slot.
    if (last_ >= 0) check(cudaEventRecord(slots_[last_].consumed, compute), "cudaEventRecord");
    const int k = (last_ + 1) % 2;
    Slot& s = slots_[k];
    // This slot's previous batch (two calls ago) must be done before it is overwritten.
    if (s.used) {
      check(cudaStreamWaitEvent(copy_, s.consumed, 0), "cudaStreamWaitEvent");
      // The host may run ahead of the GPU: the pinned source of that copy is only
      // released (and may be reused by the parsing thread) once the copy happened.
      // This also bounds the run-ahead to two batches.
      check(cudaEventSynchronize(s.copied), "cudaEventSynchronize");
    }
    s.host = host;
    copy(s.dense, host.dense, host.dense.numel() * sizeof(float));
    copy(s.sparse, host.sparse, host.sparse.numel() * sizeof(int64_t));
    copy(s.labels, host.labels, n * sizeof(float));
    check(cudaEventRecord(s.copied, copy_), "cudaEventRecord");
    check(cudaStreamWaitEvent(compute, s.copied, 0), "cudaStreamWaitEvent");
    s.used = true;
    last_ = k;
    return {s.dense.narrow(0, 0, n), s.sparse.narrow(0, 0, n), s.labels.narrow(0, 0, n),
            host.global_size};
  }

 private:
  struct Slot {
    at::Tensor dense, sparse, labels;
    Batch host;
    cudaEvent_t copied = nullptr, consumed = nullptr;
    bool used = false;
  };
  void copy(at::Tensor& dst, const at::Tensor& src, size_t bytes) {
    if (bytes == 0) return;
    if (!src.is_contiguous()) throw Error("device feeder: a batch tensor is not contiguous");
    check(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, cudaMemcpyHostToDevice, copy_),
          "cudaMemcpyAsync");
  }

  int64_t max_rows_;
  std::array<Slot, 2> slots_;
  cudaStream_t copy_ = nullptr;
  int last_ = -1;
};

}  // namespace

std::unique_ptr<DeviceFeeder> make_device_feeder(const at::Device& device, int64_t max_rows,
                                                 int64_t dense, int64_t id_slots) {
  if (!device.is_cuda()) return nullptr;
  return std::make_unique<CudaFeeder>(device, max_rows, dense, id_slots);
}

}  // namespace tandem::data
