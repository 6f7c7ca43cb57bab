// DLRM's pairwise interaction on Tandem's kernels (kernels/interaction.h): the dot
// products of every pair of distinct vectors of each row, i > j in row-major order,
// as autograd. The same values as ATen's bmm(x, x^T) followed by index_select of
// the lower triangle, without the products the triangle throws away.
#pragma once

#include <ATen/core/Tensor.h>

namespace tandem::nn {

/// [n, vectors, dim] float32/float64 (CPU, or CUDA where Tandem's CUDA kernels
/// run) -> [n, vectors * (vectors - 1) / 2], differentiable in `x`. With
/// `with_first`, [n, dim + pairs]: each row's first vector, then its dots (DLRM's
/// top-MLP input, formed in place rather than concatenated).
at::Tensor pairwise_dots(const at::Tensor& x, bool with_first = false);

}  // namespace tandem::nn
