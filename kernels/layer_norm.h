// Fused LayerNorm over the last dimension of a row-major [rows, cols] matrix:
// y = (x - mean) / sqrt(var + eps) * gamma + beta, var the population variance.
//
// Forward computes each row's statistics with Welford's update (several lanes
// merged with Chan's formula) on values shifted by the row's first element, so
// rows far from zero keep their digits, in accumulate_type(type), and saves mean and rstd
// = 1 / sqrt(var + eps) per row for backward. Backward gives dx per row and the
// gamma/beta gradients by a two-stage reduction: partial sums over fixed chunks of
// rows, then the chunks summed in order, so the bits do not depend on threads or
// launch configuration. Any cols >= 1 is handled; there is no vector-width
// restriction.
//
// Types: float32 and float64, and on CUDA also float16 and bfloat16. x, y, gamma,
// beta, dy and dx share `type`; mean, rstd, dgamma and dbeta are
// accumulate_type(type).
// gamma and beta may be null (no affine transform); dgamma and dbeta may be null
// when not wanted.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/types.h"

namespace tandem::kernels {

struct LayerNormShape {
  int64_t rows = 0;
  int64_t cols = 0;
  DType type = DType::kFloat32;
};

void layer_norm_forward_cpu(const LayerNormShape& s, const void* x, const void* gamma,
                            const void* beta, double eps, void* y, void* mean, void* rstd);

void layer_norm_backward_cpu(const LayerNormShape& s, const void* dy, const void* x,
                             const void* mean, const void* rstd, const void* gamma, void* dx,
                             void* dgamma, void* dbeta);

void layer_norm_forward_cuda(const LayerNormShape& s, const void* x, const void* gamma,
                             const void* beta, double eps, void* y, void* mean, void* rstd,
                             cudaStream_t stream);

/// Bytes of device workspace the CUDA backward needs (the per-chunk partial sums).
size_t layer_norm_backward_cuda_workspace(const LayerNormShape& s);

void layer_norm_backward_cuda(const LayerNormShape& s, const void* dy, const void* x,
                              const void* mean, const void* rstd, const void* gamma, void* dx,
                              void* dgamma, void* dbeta, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream);

}  // namespace tandem::kernels
