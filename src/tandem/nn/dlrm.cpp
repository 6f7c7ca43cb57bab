#include "tandem/nn/dlrm.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "tandem/nn/interaction.h"
#include "tandem/nn/kernel_bridge.h"
#include "tandem/nn/layer_norm.h"
#include "tandem/nn/sync_batch_norm.h"

namespace tandem::nn {

DlrmImpl::DlrmImpl(const DlrmOptions& o) : kernels_(o.kernels) {
  namespace tn = torch::nn;
  // Linear, [SyncBatchNorm (bottom),] [LayerNorm,] ReLU for each hidden size.
  const auto hidden = [&](tn::Sequential& seq, int64_t in, int64_t out, bool bottom) {
    seq->push_back(tn::Linear(in, out));
    if (bottom && o.sync_batch_norm) seq->push_back(SyncBatchNorm(out, o.comm));
    if (o.layer_norm) seq->push_back(LayerNorm(out, o.kernels));
    seq->push_back(tn::ReLU());
  };
  int64_t in = o.dense_features;
  if (o.standardize) {
    standardize_ = register_module("standardize", Standardize(in, o.missing_indicator));
    in = standardize_->output_features();
  }
  bottom_ = tn::Sequential();
  std::vector<int64_t> bottom = o.bottom_mlp;
  bottom.push_back(o.embedding_dim);
  for (int64_t h : bottom) {
    hidden(bottom_, in, h, true);
    in = h;
  }
  register_module("bottom", bottom_);

  tables_ = register_module(kTablesModule,
                            TableBatchedEmbedding(TableBatchedEmbeddingOptions{
                                o.table_rows, o.embedding_dim, o.kernels, o.sparse_embeddings,
                                o.embedding_seed, o.remote_tables, o.bag_sizes, o.mean_bags}));

  const int64_t vectors = static_cast<int64_t>(o.table_rows.size()) + 1;
  std::vector<int64_t> pairs;
  for (int64_t i = 0; i < vectors; ++i)
    for (int64_t j = 0; j < i; ++j) pairs.push_back(i * vectors + j);
  pairs_ = at::tensor(pairs, at::kLong);

  top_ = tn::Sequential();
  in = o.embedding_dim + static_cast<int64_t>(pairs.size());
  for (int64_t h : o.top_mlp) {
    if (o.dropout > 0) top_->push_back(tn::Dropout(o.dropout));
    hidden(top_, in, h, false);
    in = h;
  }
  top_->push_back(tn::Linear(in, 1));
  register_module("top", top_);
}

at::Tensor DlrmImpl::forward(const at::Tensor& dense, const at::Tensor& sparse) {
  const int64_t n = dense.size(0);
  // Without Standardize a missing integer feature (NaN) enters as log1p(0) = 0.
  const at::Tensor x =
      bottom_->forward(standardize_ ? standardize_->forward(dense) : at::nan_to_num(dense, 0.0));
  const at::Tensor bags = tables_->forward(sparse);                   // [n, tables, d]
  const at::Tensor stacked = at::cat({x.unsqueeze(1), bags}, 1);      // [n, F, d]
  return top_->forward(interact(x, stacked)).view({n});
}

at::Tensor DlrmImpl::interact(const at::Tensor& x, const at::Tensor& stacked) {
  // Tandem's kernel forms only the lower triangle's dots, written beside x in one
  // output; ATen's bmm forms all F x F (4-6x slower on the CPU through LibTorch
  // 1.13, benchmarks/RESULTS.md), and a concatenation copies the dots.
  const bool floating = stacked.scalar_type() == at::kFloat || stacked.scalar_type() == at::kDouble;
  if (kernels_ == KernelChoice::kTandem && floating &&
      (stacked.is_cpu() || cuda_kernels_available()))
    return pairwise_dots(stacked, /*with_first=*/true);
  const at::Tensor dots = at::bmm(stacked, stacked.transpose(1, 2));  // [n, F, F]
  if (pairs_.device() != dots.device()) pairs_ = pairs_.to(dots.device());  // once, on a GPU
  return at::cat({x, dots.flatten(1).index_select(1, pairs_)}, 1);
}

}  // namespace tandem::nn
