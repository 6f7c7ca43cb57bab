// Welford's update and Chan's merge on shifted moments, for host and device code:
// the one definition the column-moments kernels and the rank merge share.
// A partial holds n present values, a reference value `shift` (the first value it
// saw), the mean and M2 of (x - shift), min, max and the number of missing values.
#pragma once

#if defined(__CUDACC__)
#define TANDEM_HD __host__ __device__ inline
#else
#define TANDEM_HD inline
#endif

namespace tandem::kernels {

struct ChanPartial {
  double n = 0, shift = 0, mean = 0, m2 = 0;
  double min = __builtin_huge_val(), max = -__builtin_huge_val();
  double missing = 0;
};

/// Adds one present value.
TANDEM_HD void welford_add(ChanPartial& p, double v) {
  if (p.n == 0) p.shift = v;
  const double d = v - p.shift;
  p.n += 1;
  const double delta = d - p.mean;
  p.mean += delta / p.n;
  p.m2 += delta * (d - p.mean);
  p.min = v < p.min ? v : p.min;
  p.max = v > p.max ? v : p.max;
}

/// a <- a merged with b (Chan et al.). The means' difference is formed from the
/// shifts' difference first, so partials centred far from zero merge exactly.
TANDEM_HD void chan_merge(ChanPartial& a, const ChanPartial& b) {
  a.missing += b.missing;
  a.min = b.min < a.min ? b.min : a.min;
  a.max = b.max > a.max ? b.max : a.max;
  if (b.n == 0) return;
  if (a.n == 0) {
    a.n = b.n;
    a.shift = b.shift;
    a.mean = b.mean;
    a.m2 = b.m2;
    return;
  }
  const double n = a.n + b.n;
  const double delta = (b.shift - a.shift) + (b.mean - a.mean);
  const double wb = b.n / n;
  a.mean += delta * wb;
  a.m2 += b.m2 + delta * delta * a.n * wb;
  a.n = n;
}

}  // namespace tandem::kernels
