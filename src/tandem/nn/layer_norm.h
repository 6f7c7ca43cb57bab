// Tandem's fused LayerNorm (kernels/layer_norm.h) on LibTorch tensors: the ops, an
// autograd function, and a module that runs either Tandem's kernel or ATen's.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <tuple>

#include "tandem/nn/embedding_bag.h"

namespace tandem::nn {

/// Normalizes over the last dimension. Returns (y, mean, rstd); mean and rstd have
/// one value per row. gamma and beta may be undefined.
std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_forward(const at::Tensor& x,
                                                                  const at::Tensor& gamma,
                                                                  const at::Tensor& beta,
                                                                  double eps);

/// Returns (dx, dgamma, dbeta), the last two [cols] (always computed).
std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_backward(const at::Tensor& dy,
                                                                   const at::Tensor& x,
                                                                   const at::Tensor& mean,
                                                                   const at::Tensor& rstd,
                                                                   const at::Tensor& gamma);

/// Differentiable in x, gamma and beta.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta,
                      double eps);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t features, KernelChoice kernels, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;

 private:
  int64_t features_;
  KernelChoice kernels_;
  double eps_;
};
TORCH_MODULE(LayerNorm);

}  // namespace tandem::nn
