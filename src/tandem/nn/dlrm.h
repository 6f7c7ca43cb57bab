// DLRM-style CTR model (Naumov et al., 2019): dense features through a bottom MLP,
// one sum-pooled embedding bag per categorical field, pairwise dot-product
// interaction of all those vectors, then a top MLP down to one logit.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

namespace tandem::nn {

struct DlrmOptions {
  int64_t dense_features = 13;
  std::vector<int64_t> bottom_mlp;  ///< hidden sizes; a layer to embedding_dim follows
  std::vector<int64_t> top_mlp;     ///< hidden sizes; a 1-unit logit layer follows
  std::vector<int64_t> table_rows;  ///< one embedding table per entry
  int64_t embedding_dim = 16;
  double dropout = 0.0;
  bool sparse_embeddings = false;  ///< tables produce sparse (row-wise) gradients
};

class DlrmImpl : public torch::nn::Module {
 public:
  explicit DlrmImpl(const DlrmOptions& options);
  /// dense: [n, dense_features] float; sparse: [n, tables] int64 rows. Returns [n] logits.
  at::Tensor forward(const at::Tensor& dense, const at::Tensor& sparse);
  /// The embedding tables' weights, in table order.
  std::vector<at::Tensor> embedding_weights() const;

 private:
  torch::nn::Sequential bottom_{nullptr}, top_{nullptr};
  std::vector<torch::nn::EmbeddingBag> tables_;
  at::Tensor pairs_;  ///< flat indices of the strictly lower triangle of the interaction
};
TORCH_MODULE(Dlrm);

}  // namespace tandem::nn
