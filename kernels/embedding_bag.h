// Table-batched embedding bags (the layout of FBGEMM's TBE), forward and backward.
//
// T tables share one weight [total_rows, dim], row-major; table t's rows start at
// row_offsets[t] and it has rows[t] of them. There are T * batch bags, table-major:
// bag t * batch + b is sample b's bag in table t, holding the table-local rows
// indices[offsets[bag] .. offsets[bag + 1]). The output is [batch, T * dim]: sample
// b's pooled vector for table t is out[b, t * dim .. (t + 1) * dim), which is the
// [batch, T, dim] tensor that feature interactions want.
//
// Backward never materializes a dense [total_rows, dim] gradient. It sorts the
// (row, position) pairs, so each touched row's contributions are summed in
// position order by one thread (CPU) or one warp (CUDA): the result is bit-identical
// from run to run, with no floating-point atomics. It either writes the row-wise
// sparse gradient (unique rows + one summed row each) or applies an optimizer to
// those rows in place (fused), with row-wise state stored beside the table.
//
// Pointers live on the device of the function: host memory for *_cpu, device
// memory for *_cuda (except where noted). Positions past offsets[T * batch] are
// ignored. Weight types: float32 and float64 on CPU; float32, float64, float16 and
// bfloat16 on CUDA. Pooled outputs, per-sample weights, gradients and optimizer
// state are of accumulate_type(weight type).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/types.h"

namespace tandem::kernels {

enum class Pooling : int8_t { kSum, kMean };

struct EmbeddingBags {
  const void* weight = nullptr;  ///< [total_rows, dim]
  DType weight_type = DType::kFloat32;
  int64_t total_rows = 0;
  int64_t dim = 0;
  int64_t tables = 0;
  int64_t batch = 0;
  const int64_t* row_offsets = nullptr;      ///< [tables] first row of each table
  const int64_t* rows = nullptr;             ///< [tables] rows of each table
  const void* indices = nullptr;             ///< table-local rows
  const void* offsets = nullptr;             ///< [tables * batch + 1], offsets[0] == 0
  DType index_type = DType::kInt64;          ///< of indices and offsets: int32 or int64
  int64_t num_indices = 0;                   ///< length of `indices` (bounds every read)
  const void* per_sample_weights = nullptr;  ///< [num_indices] or null
  Pooling pooling = Pooling::kSum;

  int64_t bags() const { return tables * batch; }
};

/// How the touched rows are updated. kNone: write the sparse gradient instead.
/// kSgd: w -= lr * g. kRowwiseAdagrad (FBGEMM's exact row-wise Adagrad): one
/// accumulator per row, s += mean(g^2) over the row, w -= lr * g / (sqrt(s) + eps).
enum class RowUpdate : int8_t { kNone, kSgd, kRowwiseAdagrad };

struct RowOptimizer {
  RowUpdate update = RowUpdate::kNone;
  double lr = 0.01;
  double eps = 1e-10;
  void* weight = nullptr;  ///< the table to update in place ([total_rows, dim])
  void* state = nullptr;   ///< [total_rows], row-wise Adagrad only
};

/// Forward into `out` ([batch, tables * dim]). Returns the lowest bag holding an
/// index outside [0, rows[t]) or an offset out of order or past num_indices, and
/// -1 if none; such an index or bag is skipped, never read.
int64_t embedding_bag_forward_cpu(const EmbeddingBags& bags, void* out);

/// Backward. grad_out is [batch, tables * dim]. Without an update, writes the
/// touched rows (row_offsets[t] + index, grouped by table, ascending within a
/// table) to unique_rows and their gradient rows to grad_rows (both sized for
/// num_indices rows) and returns how many; with one, applies it to those rows and
/// returns how many were updated. Invalid indices are skipped (forward reports
/// them), and so are positions of per-sample weight 0, which add nothing.
int64_t embedding_bag_backward_cpu(const EmbeddingBags& bags, const void* grad_out,
                                   const RowOptimizer& opt, int64_t* unique_rows, void* grad_rows);

/// Applies `opt` to `n` distinct rows given as (row number, gradient row), e.g. a
/// sparse gradient coalesced across ranks. weight_type as in EmbeddingBags.
void rowwise_update_cpu(const RowOptimizer& opt, DType weight_type, int64_t dim,
                        const int64_t* rows, const void* grads, int64_t n);

// ---- CUDA: the same contracts, asynchronous on `stream`. -------------------------

/// `bad_bag` is one device int64, set beforehand to INT64_MAX by the caller; the
/// kernel lowers it to the lowest bad bag (atomicMin), so one read after the
/// launch reports it without a second pass.
void embedding_bag_forward_cuda(const EmbeddingBags& bags, void* out, int64_t* bad_bag,
                                cudaStream_t stream);

/// Bytes of device workspace the backward needs.
size_t embedding_bag_backward_cuda_workspace(const EmbeddingBags& bags);

/// As the CPU backward, but the count goes to the device int64 `num_unique` (the
/// outputs are sized for num_indices rows, so no host synchronization is needed),
/// and rows come out in ascending global order. A fused update needs dim <= 1024
/// (the row is held in registers); beyond, use the sparse gradient and
/// rowwise_update_cuda. Fewer than 2^31 indices per call.
void embedding_bag_backward_cuda(const EmbeddingBags& bags, const void* grad_out,
                                 const RowOptimizer& opt, int64_t* unique_rows, void* grad_rows,
                                 int64_t* num_unique, void* workspace, size_t workspace_bytes,
                                 cudaStream_t stream);

void rowwise_update_cuda(const RowOptimizer& opt, DType weight_type, int64_t dim,
                         const int64_t* rows, const void* grads, int64_t n, cudaStream_t stream);

}  // namespace tandem::kernels
