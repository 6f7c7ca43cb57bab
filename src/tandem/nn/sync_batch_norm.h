// Batch normalization over the global batch of a data-parallel job. Each rank
// fits its slice's moments in one pass (stats::Moments, float64), every rank merges
// all ranks' partials with Chan's formula in rank order, so every rank normalizes
// with the same global mean and variance, whatever the slice sizes (a rank with
// no rows included). Backward all-reduces the two per-feature gradient sums that
// the input gradient needs; the weight and bias gradients stay local and are
// summed by the gradient reducer like every other parameter. Running statistics
// (unbiased variance, as PyTorch) are updated from the global moments, so they are
// identical on every rank. In eval mode the running statistics are used and no
// rank communicates.
//
// In training every rank must call forward and backward, also with zero rows.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "tandem/comm/communicator.h"

namespace tandem::nn {

class SyncBatchNormImpl : public torch::nn::Module {
 public:
  /// `comm` must outlive the module; nullptr = this process alone.
  SyncBatchNormImpl(int64_t features, comm::Communicator* comm, double momentum = 0.1,
                    double eps = 1e-5);
  /// x: [rows, features].
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  comm::Communicator* comm_;
  double momentum_, eps_;
};
TORCH_MODULE(SyncBatchNorm);

}  // namespace tandem::nn
