#include "tandem/nn/dlrm.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <cmath>

namespace tandem::nn {

DlrmImpl::DlrmImpl(const DlrmOptions& o) {
  namespace tn = torch::nn;
  bottom_ = tn::Sequential();
  int64_t in = o.dense_features;
  std::vector<int64_t> bottom = o.bottom_mlp;
  bottom.push_back(o.embedding_dim);
  for (int64_t h : bottom) {
    bottom_->push_back(tn::Linear(in, h));
    bottom_->push_back(tn::ReLU());
    in = h;
  }
  register_module("bottom", bottom_);

  std::vector<int64_t> offsets{0};
  for (int64_t rows : o.table_rows) offsets.push_back(offsets.back() + rows);
  tables_ = register_module(
      "tables", tn::EmbeddingBag(tn::EmbeddingBagOptions(offsets.back(), o.embedding_dim)
                                     .mode(torch::kSum)
                                     .sparse(o.sparse_embeddings)));
  {
    // DLRM's initialisation, per table: U(-sqrt(1/rows), sqrt(1/rows)).
    at::NoGradGuard no_grad;
    for (size_t t = 0; t < o.table_rows.size(); ++t) {
      const double bound = std::sqrt(1.0 / static_cast<double>(o.table_rows[t]));
      tables_->weight.narrow(0, offsets[t], o.table_rows[t]).uniform_(-bound, bound);
    }
  }
  offsets.pop_back();
  table_offsets_ = register_buffer("table_offsets", at::tensor(offsets, at::kLong).view({1, -1}));

  const int64_t vectors = static_cast<int64_t>(o.table_rows.size()) + 1;
  std::vector<int64_t> pairs;
  for (int64_t i = 0; i < vectors; ++i)
    for (int64_t j = 0; j < i; ++j) pairs.push_back(i * vectors + j);
  pairs_ = at::tensor(pairs, at::kLong);

  top_ = tn::Sequential();
  in = o.embedding_dim + static_cast<int64_t>(pairs.size());
  for (int64_t h : o.top_mlp) {
    if (o.dropout > 0) top_->push_back(tn::Dropout(o.dropout));
    top_->push_back(tn::Linear(in, h));
    top_->push_back(tn::ReLU());
    in = h;
  }
  top_->push_back(tn::Linear(in, 1));
  register_module("top", top_);
}

at::Tensor DlrmImpl::forward(const at::Tensor& dense, const at::Tensor& sparse) {
  const int64_t n = dense.size(0);
  at::Tensor x = bottom_->forward(dense);
  const int64_t tables = table_offsets_.size(1);
  // One id per bag (a Criteo field holds one value), so bag i starts at id i.
  const at::Tensor ids = (sparse + table_offsets_).view(-1);
  const at::Tensor bags = tables_->forward(ids, at::arange(n * tables, ids.options()));
  const at::Tensor stacked = at::cat({x.unsqueeze(1), bags.view({n, tables, -1})}, 1);  // [n, F, d]
  const at::Tensor dots = at::bmm(stacked, stacked.transpose(1, 2));                    // [n, F, F]
  const at::Tensor flat = dots.flatten(1).index_select(1, pairs_);
  return top_->forward(at::cat({x, flat}, 1)).squeeze(1);
}

}  // namespace tandem::nn
