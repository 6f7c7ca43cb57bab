// Tandem's table-batched embedding bag (kernels/embedding_bag.h) on LibTorch
// tensors: the ops, an autograd function, and the module the DLRM model uses.
//
// Backward gives the weight a row-wise sparse gradient (a coalesced sparse COO
// tensor: the touched rows and one summed row each), never a dense one. With a
// fused optimizer it instead updates the touched rows during backward and leaves
// no gradient at all. Per-sample weights are constants (they get no gradient).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/embedding_bag.h"
#include "tandem/nn/row_snapshot.h"

namespace tandem::nn {

/// Where each table's rows sit in the table-batched weight.
struct TableLayout {
  at::Tensor row_offsets;  ///< [tables] int64, on the weight's device
  at::Tensor rows;         ///< [tables] int64, on the weight's device
  bool ascending = true;   ///< offsets increase, so touched rows come out sorted

  /// Tables stacked in order; the tensors are created on `device`.
  static TableLayout stacked(const std::vector<int64_t>& table_rows, const c10::Device& device);
  int64_t tables() const { return row_offsets.numel(); }
};

/// The bags of one call (see kernels/embedding_bag.h for the layout).
struct Bags {
  at::Tensor indices;             ///< table-local rows, int32 or int64
  at::Tensor offsets;             ///< [tables * batch + 1], same dtype as indices
  at::Tensor per_sample_weights;  ///< undefined, or [indices] of the output dtype
  int64_t batch = 0;
  kernels::Pooling pooling = kernels::Pooling::kSum;
};

/// A row-wise optimizer step on the touched rows (kNone: produce gradients).
struct RowOptimizer {
  kernels::RowUpdate update = kernels::RowUpdate::kNone;
  double lr = 0.01;
  double eps = 1e-10;
  at::Tensor state;  ///< [total rows], row-wise Adagrad only
};

/// The bad-bag check of a GPU forward, deferred. Reading the kernel's flag at once
/// would make the host wait for the GPU on every call, so training could not queue
/// the next step while this one runs. Instead the flag is copied to page-locked
/// host memory behind the kernel, and the next deferred call, or check(), reads it
/// once that copy has landed (not waiting for the work queued after it) and throws
/// the same one-line error, naming that call's table, bag and index. The kernel
/// skipped the bad indices: nothing outside the tables was read.
class DeferredBagCheck {
 public:
  DeferredBagCheck();
  ~DeferredBagCheck();
  /// Throws the error of the pending call, if its check failed; then none is pending.
  void check();

 private:
  friend at::Tensor embedding_bag_forward(const at::Tensor&, const TableLayout&, const Bags&,
                                          DeferredBagCheck*);
  struct Pending;
  void defer(const at::Tensor& flag, const kernels::EmbeddingBags& e, const Bags& bags,
             const TableLayout& layout);
  std::unique_ptr<Pending> pending_;
  at::Tensor host_;  ///< [1] int64, page-locked: the pending call's flag
};

/// Pooled bags, [batch, tables * dim], of the weight's accumulate dtype. An index
/// outside its table throws, naming the table, bag and index: at once, or with
/// `deferred` (GPU only; ignored on the CPU) at its next call or check().
at::Tensor embedding_bag_forward(const at::Tensor& weight, const TableLayout& layout,
                                 const Bags& bags, DeferredBagCheck* deferred = nullptr);

/// The row-wise sparse gradient: (touched rows [U] int64, their gradients [U, dim]).
std::pair<at::Tensor, at::Tensor> embedding_bag_backward(const at::Tensor& grad_out,
                                                         const at::Tensor& weight,
                                                         const TableLayout& layout,
                                                         const Bags& bags);

/// Backward fused with `opt` (update != kNone): updates the touched rows of
/// `weight` (and opt.state) in place.
void embedding_bag_backward_update(const at::Tensor& grad_out, at::Tensor& weight,
                                   const TableLayout& layout, const Bags& bags,
                                   const RowOptimizer& opt);

/// Applies `opt` to distinct `rows` of `weight` given their gradients [rows, dim].
void rowwise_update(at::Tensor& weight, const RowOptimizer& opt, const at::Tensor& rows,
                    const at::Tensor& grads);

/// The distinct values of 1-D integer CPU ids, ascending (int64), and for each id
/// the index of its value among them: at::_unique(sorted, return_inverse), by a
/// sort instead of LibTorch 1.13's hash set, which was most of a parameter server's
/// time per push (benchmarks/RESULTS.md).
std::pair<at::Tensor, at::Tensor> unique_inverse(const at::Tensor& ids);

/// Sums gradient rows that share a row id, each sum taken in the order the rows are
/// given (a sort's tie order would make 3 or more contributions round differently
/// from one split of the work to another); returns (the distinct rows ascending
/// [U] int64, their sums [U, dim]). On a GPU it is LibTorch's coalesce().
std::pair<at::Tensor, at::Tensor> sum_rows_in_order(const at::Tensor& rows,
                                                    const at::Tensor& values, int64_t total_rows);

/// Differentiable forward. With `fused` (update != kNone) backward applies it to
/// `weight` instead of producing a gradient.
at::Tensor embedding_bag(const at::Tensor& weight, const TableLayout& layout, const Bags& bags,
                         const RowOptimizer& fused = {}, DeferredBagCheck* deferred = nullptr);

/// Which implementation a module runs: Tandem's kernels or LibTorch's own ops.
enum class KernelChoice { kTandem, kAten };
KernelChoice parse_kernel_choice(const std::string& name);

/// DLRM's initialisation of embedding rows, U(-sqrt(1/table_rows), sqrt(1/table_rows)),
/// drawn per row from (seed, table, row): any subset of a table's rows (a parameter
/// server's shard) starts exactly as it would in the whole table. `rows` [n] int64
/// are table-local; `out` is [n, dim], float32 or float64.
void init_embedding_rows(at::Tensor& out, uint64_t seed, int64_t table, const at::Tensor& rows,
                         int64_t table_rows);

/// Each id slot's table, [sum of bag_sizes] int64 on the CPU: table t owns
/// bag_sizes[t] consecutive slots (see TableBatchedEmbeddingImpl::forward).
at::Tensor slot_tables(const std::vector<int64_t>& bag_sizes);

struct TableBatchedEmbeddingOptions {
  std::vector<int64_t> table_rows;
  int64_t dim = 16;
  KernelChoice kernels = KernelChoice::kTandem;
  bool sparse = true;      ///< row-wise sparse gradients (Tandem's kernels need it)
  uint64_t init_seed = 0;  ///< see init_embedding_rows
  /// The tables live elsewhere (on parameter servers): the module holds only the
  /// rows set by set_working_rows(), no table and no optimizer state.
  bool remote = false;
  /// Multi-hot tables: the most ids one sample has in each table (empty: one each),
  /// and whether its bag is the mean of its rows rather than their sum (empty: sums).
  std::vector<int64_t> bag_sizes;
  std::vector<bool> mean_bags;
};

/// The embedding tables of a model, stacked into one weight ("weight") and looked
/// up with one call. Row-wise optimizer state ("rowwise_state", one value per row)
/// lives beside the table, so it moves and is saved with the module.
class TableBatchedEmbeddingImpl : public torch::nn::Module {
 public:
  explicit TableBatchedEmbeddingImpl(TableBatchedEmbeddingOptions options);

  /// sparse is [n, slots] table-local rows: bag_sizes[t] slots for table t, one
  /// each by default, after those of the tables before it. A slot of -1 holds no id
  /// (a shorter multi-hot bag; an empty bag pools to zeros). Returns the pooled
  /// vectors, [n, tables, dim]: each table's sum, or mean for mean_bags.
  at::Tensor forward(const at::Tensor& sparse);

  /// The optimizer for the weight's rows. With `fused`, backward applies it (only
  /// valid when the local gradient is the final one: one rank, no accumulation);
  /// otherwise apply_gradient() applies it to the (reduced) sparse gradient.
  void set_optimizer(kernels::RowUpdate update, double eps, bool fused);
  void set_learning_rate(double lr) { optimizer_.lr = lr; }
  /// Applies the optimizer to weight's sparse gradient, if any (Tandem kernels).
  void apply_gradient();
  /// Training forwards on a GPU check their indices one call late (see
  /// DeferredBagCheck); this throws the last one's error, if any. Call it before
  /// relying on the weights: at a checkpoint, an evaluation, the end of training.
  void check_bags() { bag_check_->check(); }
  /// Starts a copy of weight and rowwise_state (CPU only) into `weight_copy` and
  /// `state_copy` (reused if their shape fits) that is exact as of now although
  /// training goes on: the caller's thread runs its complete() (see RowSnapshot).
  std::shared_ptr<RowSnapshot> snapshot_rows(at::Tensor weight_copy, at::Tensor state_copy);

  /// Remote tables: `rows` [U, dim] become the weight, holding counts[t] rows of
  /// table t after those of the tables before it; forward() then takes ids into
  /// those rows. Backward leaves the sparse gradient of these rows in weight.grad().
  void set_working_rows(const at::Tensor& rows, const std::vector<int64_t>& counts);
  bool remote() const { return options_.remote; }
  const std::vector<int64_t>& bag_sizes() const { return options_.bag_sizes; }
  int64_t dim() const { return options_.dim; }

  at::Tensor weight;
  at::Tensor table_offsets;  ///< [tables] first row of each table
  at::Tensor table_sizes;    ///< [tables]
  at::Tensor rowwise_state;  ///< [total rows]

 private:
  /// Multi-hot ids [n, slots] as (rows, weights): each empty slot row 0 weighing 0,
  /// each id of a mean bag weighing 1 / its bag's ids, the others 1.
  std::pair<at::Tensor, at::Tensor> slot_rows(const at::Tensor& sparse);

  TableBatchedEmbeddingOptions options_;
  int64_t slots_ = 0;       ///< id slots per sample: the sum of bag_sizes
  bool multi_hot_ = false;  ///< a table has several slots, or means its bag
  bool any_mean_ = false;
  /// Multi-hot layout, on the device of the last forward: each slot's table, first
  /// slot and slot count of each table, the same of each slot's table, and which
  /// slots are averaged.
  at::Tensor slot_table_, table_first_slot_, table_slots_, slot_first_, slot_width_, mean_slot_;
  RowOptimizer optimizer_;
  bool fused_ = false;
  std::shared_ptr<DeferredBagCheck> bag_check_ = std::make_shared<DeferredBagCheck>();
  std::shared_ptr<RowSnapshot> snapshot_;  ///< the last one begun
};
TORCH_MODULE(TableBatchedEmbedding);

}  // namespace tandem::nn
