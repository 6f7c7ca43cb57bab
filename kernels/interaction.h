// DLRM's pairwise interaction: for each row r of a row-major [rows, vectors, dim]
// array x, the dot product of every pair of distinct vectors i > j,
//   out[r, k] = sum_c x[r, i, c] * x[r, j, c],   k = i * (i - 1) / 2 + j,
// which is the lower triangle of x x^T in row-major order (what bmm + index_select
// gives, without the 729 - 351 products it throws away at 27 vectors). Backward:
//   dx[r, i, c] = sum over pairs k = (i, j) or (j, i) of dout[r, k] * x[r, j, c].
// Each dot sums over c in order, and backward accumulates the pairs in order of k,
// so the bits depend neither on threads nor on the CPU variant; CUDA sums in its
// own fixed order (one thread per output).
// With `with_first`, each output row starts with the row's first vector, x[r, 0, :],
// and its gradient adds to dx[r, 0, :] before the pairs: DLRM's top-MLP input, the
// dense features' vector and the dots side by side, without a concatenation that
// copies the dots (and a gradient split that copies them again).
// Types: float32 and float64; x, out, dout and dx share `type`.
#pragma once

#include <cstdint>

#include "kernels/types.h"

namespace tandem::kernels {

struct InteractionShape {
  int64_t rows = 0;
  int64_t vectors = 0;  ///< >= 1
  int64_t dim = 0;      ///< >= 1
  DType type = DType::kFloat32;
  bool with_first = false;  ///< out rows are [x[r, 0, :], dots]
  int64_t pairs() const { return vectors * (vectors - 1) / 2; }
  /// Elements per row of out and dout.
  int64_t width() const { return (with_first ? dim : 0) + pairs(); }
};

void interaction_forward_cpu(const InteractionShape& s, const void* x, void* out);
void interaction_backward_cpu(const InteractionShape& s, const void* dout, const void* x, void* dx);
void interaction_forward_cuda(const InteractionShape& s, const void* x, void* out,
                              cudaStream_t stream);
void interaction_backward_cuda(const InteractionShape& s, const void* dout, const void* x, void* dx,
                               cudaStream_t stream);

}  // namespace tandem::kernels
