#include "tandem/nn/dlrm.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <string>

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

  for (size_t t = 0; t < o.table_rows.size(); ++t) {
    auto bag = tn::EmbeddingBag(
        tn::EmbeddingBagOptions(o.table_rows[t], o.embedding_dim).mode(torch::kSum).sparse(o.sparse_embeddings));
    const double bound = std::sqrt(1.0 / static_cast<double>(o.table_rows[t]));
    {
      at::NoGradGuard no_grad;
      bag->weight.uniform_(-bound, bound);
    }
    tables_.push_back(register_module("emb" + std::to_string(t), bag));
  }

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

std::vector<at::Tensor> DlrmImpl::embedding_weights() const {
  std::vector<at::Tensor> out;
  for (const auto& t : tables_) out.push_back(t->weight);
  return out;
}

at::Tensor DlrmImpl::forward(const at::Tensor& dense, const at::Tensor& sparse) {
  const int64_t n = dense.size(0);
  at::Tensor x = bottom_->forward(dense);
  std::vector<at::Tensor> vectors{x};
  // One id per bag (a Criteo field holds one value), so the offsets are 0..n-1.
  const at::Tensor offsets = at::arange(n, sparse.options());
  for (size_t t = 0; t < tables_.size(); ++t)
    vectors.push_back(tables_[t]->forward(sparse.select(1, static_cast<int64_t>(t)).contiguous(),
                                          offsets));
  const at::Tensor stacked = at::stack(vectors, 1);                   // [n, F, d]
  const at::Tensor dots = at::bmm(stacked, stacked.transpose(1, 2));  // [n, F, F]
  const at::Tensor flat = dots.flatten(1).index_select(1, pairs_);
  return top_->forward(at::cat({x, flat}, 1)).squeeze(1);
}

}  // namespace tandem::nn
