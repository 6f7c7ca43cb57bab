// Column moments of a row-major [rows, cols] matrix in one pass: per column the
// count of present values, their mean and M2 (sum of squared deviations), min,
// max, and the count of missing values (NaN). Accumulators are float64.
//
// Each column's values are shifted by a reference value K (the first present value
// of the chunk) before Welford's update, so data far from zero (1e9 + N(0,1)) keeps
// its digits; partials are merged with Chan's formula in the same shifted form.
// Rows go in fixed chunks merged in order, so the result depends on the sizes only,
// never on threads or launch configuration.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/chan.h"
#include "kernels/types.h"

namespace tandem::kernels {

/// Column partials: arrays of `cols` entries (device memory for the CUDA version).
/// mean is relative to shift: the column mean is shift + mean.
struct Moments {
  int64_t* count = nullptr;
  double* shift = nullptr;
  double* mean = nullptr;
  double* m2 = nullptr;
  double* min = nullptr;
  double* max = nullptr;
  int64_t* missing = nullptr;
};

/// Column j of `m` as a partial, and back: the one place the layout is spelled out.
TANDEM_HD ChanPartial load_partial(const Moments& m, int64_t j) {
  return {static_cast<double>(m.count[j]),  m.shift[j], m.mean[j], m.m2[j], m.min[j], m.max[j],
          static_cast<double>(m.missing[j])};
}
TANDEM_HD void store_partial(const Moments& m, int64_t j, const ChanPartial& p) {
  m.count[j] = static_cast<int64_t>(p.n);
  m.shift[j] = p.shift;
  m.mean[j] = p.mean;
  m.m2[j] = p.m2;
  m.min[j] = p.min;
  m.max[j] = p.max;
  m.missing[j] = static_cast<int64_t>(p.missing);
}

/// x: float32 or float64. An all-missing column gets count 0, mean 0, m2 0,
/// min +inf and max -inf.
void column_moments_cpu(const void* x, DType type, int64_t rows, int64_t cols, const Moments& out);

size_t column_moments_cuda_workspace(int64_t rows, int64_t cols);
void column_moments_cuda(const void* x, DType type, int64_t rows, int64_t cols, const Moments& out,
                         void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace tandem::kernels
