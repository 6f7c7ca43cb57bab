// Standardize: (x - mean) / sqrt(var + eps) with statistics fitted once over the
// whole training set (stats::fit) and frozen as buffers, so training, evaluation,
// checkpoints and `tandem predict` apply exactly the same transform. A missing
// value (NaN) becomes the mean, i.e. 0 after standardizing, optionally flagged by
// a missing-indicator column per feature; a feature with zero variance (or no
// values) is constant, so it maps to 0 rather than dividing by ~0.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "tandem/stats/moments.h"

namespace tandem::nn {

class StandardizeImpl : public torch::nn::Module {
 public:
  StandardizeImpl(int64_t features, bool missing_indicator, double eps = 1e-8);
  /// Freezes the statistics (copied into the buffers).
  void set(const stats::Moments& moments);
  /// x: [rows, features] with NaN = missing. Returns [rows, output_features()].
  at::Tensor forward(const at::Tensor& x);
  int64_t output_features() const { return features_ * (missing_indicator_ ? 2 : 1); }

  at::Tensor mean, inv_std;  ///< buffers; the identity until set()

 private:
  int64_t features_;
  bool missing_indicator_;
  double eps_;
};
TORCH_MODULE(Standardize);

}  // namespace tandem::nn
