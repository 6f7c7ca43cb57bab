// DLRM-style CTR model (Naumov et al., 2019): dense features through a bottom MLP,
// one pooled embedding bag per categorical field (one id, or a multi-hot list
// summed or averaged), pairwise dot-product interaction of all those vectors, then
// a top MLP down to one logit.
//
// The tables are stored table-batched, as FBGEMM's TBE does: one [sum of rows, dim]
// weight with table t starting at row table_offsets[t], so the 26 lookups, their
// gradients and their optimizer updates are one op each instead of 26. The lookups
// run on Tandem's kernels (kernels/) unless `kernels` selects ATen's ops; so do the
// pairwise interaction and the optional LayerNorm after each hidden layer of both
// MLPs.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "tandem/comm/communicator.h"
#include "tandem/nn/embedding_bag.h"
#include "tandem/nn/standardize.h"

namespace tandem::nn {

/// The embedding tables' module name: a checkpoint holds them as "tables.weight",
/// "tables.rowwise_state", "tables.table_offsets" and "tables.table_sizes".
inline constexpr const char* kTablesModule = "tables";

struct DlrmOptions {
  int64_t dense_features = 13;
  std::vector<int64_t> bottom_mlp;  ///< hidden sizes; a layer to embedding_dim follows
  std::vector<int64_t> top_mlp;     ///< hidden sizes; a 1-unit logit layer follows
  std::vector<int64_t> table_rows;  ///< one embedding table per entry
  /// Multi-hot tables (see TableBatchedEmbeddingOptions); empty: one id per table.
  std::vector<int64_t> bag_sizes;
  std::vector<bool> mean_bags;
  int64_t embedding_dim = 16;
  double dropout = 0.0;
  bool sparse_embeddings = false;  ///< tables produce sparse (row-wise) gradients
  uint64_t embedding_seed = 0;     ///< the tables' initialisation (init_embedding_rows)
  bool remote_tables = false;      ///< the tables live on parameter servers
  KernelChoice kernels = KernelChoice::kTandem;
  bool layer_norm = false;  ///< LayerNorm after each hidden Linear, before its ReLU
  /// SyncBatchNorm after each bottom-MLP Linear, over the global batch of `comm`.
  bool sync_batch_norm = false;
  comm::Communicator* comm = nullptr;
  /// Standardize the dense features with frozen global statistics (see
  /// standardize.h); otherwise a missing value enters as 0.
  bool standardize = false;
  bool missing_indicator = false;  ///< with standardize: one 0/1 column per feature
};

class DlrmImpl : public torch::nn::Module {
 public:
  explicit DlrmImpl(const DlrmOptions& options);
  /// dense: [n, dense_features] float; sparse: [n, slots] int64 rows (one slot per
  /// table, bag_sizes[t] for a multi-hot one). Returns [n] logits.
  at::Tensor forward(const at::Tensor& dense, const at::Tensor& sparse);
  /// The table-batched embedding weight (all tables, stacked by rows).
  const at::Tensor& embedding_weight() const { return tables_->weight; }
  TableBatchedEmbedding& embeddings() { return tables_; }
  /// The Standardize layer, or empty when off.
  Standardize& standardize() { return standardize_; }

 private:
  /// The top MLP's input: x (the bottom MLP's output, stacked[:, 0]) beside the
  /// pairwise dots of the stacked vectors.
  at::Tensor interact(const at::Tensor& x, const at::Tensor& stacked);

  torch::nn::Sequential bottom_{nullptr}, top_{nullptr};
  TableBatchedEmbedding tables_{nullptr};
  Standardize standardize_{nullptr};
  at::Tensor pairs_;  ///< flat indices of the strictly lower triangle of the interaction
  KernelChoice kernels_;  ///< the interaction on Tandem's kernel, or bmm + index_select
};
TORCH_MODULE(Dlrm);

}  // namespace tandem::nn
