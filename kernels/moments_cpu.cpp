// CPU column moments: fixed chunks of rows (OpenMP over chunks), one Welford
// partial per column per chunk, chunks merged in order. Within a chunk every
// column sees the same count while no value is missing, so the division of the
// update is one reciprocal per row, shared by all columns (a chunk that holds a
// NaN is redone with per-column counts, from cache).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/chan.h"
#include "kernels/cpu_simd.h"
#include "kernels/dispatch.h"
#include "kernels/moments.h"

namespace tandem::kernels {
namespace {

constexpr int64_t kChunkRows = 1024;
constexpr int64_t kBlockRows = 8;  // the rows spelled out in block_stats

// One block of kBlockRows rows, column j: sum and sum of squares of (x - s0), where
// s0 is the block's first value, with min and max.
template <typename T>
[[gnu::always_inline]] inline void block_stats(const T* __restrict b, int64_t cols, int64_t j,
                                               double& s0, double& sum, double& sq, double& lo,
                                               double& hi) {
  s0 = b[j];
  sum = sq = 0;
  lo = hi = s0;
#define TANDEM_BLOCK_ROW(k)               \
  {                                       \
    const double v = b[(k) * cols + j];   \
    const double d = v - s0;              \
    sum += d;                             \
    sq += d * d;                          \
    lo = v < lo ? v : lo;                 \
    hi = v > hi ? v : hi;                 \
  }
  TANDEM_BLOCK_ROW(1) TANDEM_BLOCK_ROW(2) TANDEM_BLOCK_ROW(3) TANDEM_BLOCK_ROW(4)
  TANDEM_BLOCK_ROW(5) TANDEM_BLOCK_ROW(6) TANDEM_BLOCK_ROW(7)
#undef TANDEM_BLOCK_ROW
}

// Rows [r0, r1) into p[cols]: the shared-count fast path. Returns false (p
// untouched in meaning) if a NaN was seen.
//
// Rows go in blocks of kBlockRows: per column, a block's sum and sum of squares of
// (x - the block's first value) are formed in registers, and the block is merged
// into the chunk's partial with Chan's formula: about 6 operations per element
// instead of Welford's 10. It stays exact in float64: within 8 rows shifted by one
// of them, sum(d^2) - sum(d)^2/8 cancels no more digits than the block's own spread
// allows. A NaN anywhere in a block makes its sum NaN: one test per block and column.
template <typename T>
[[gnu::always_inline]] inline bool chunk_dense(const T* __restrict x, int64_t r0, int64_t r1,
                                               int64_t cols, double* __restrict shift,
                                               double* __restrict mean, double* __restrict m2,
                                               double* __restrict mn, double* __restrict mx) {
  int64_t nans = 0;
  const T* first = x + r0 * cols;
  for (int64_t j = 0; j < cols; ++j) {
    shift[j] = first[j];
    mean[j] = m2[j] = 0;
    mn[j] = mx[j] = first[j];
  }
  int64_t r = r0;
  for (; r + kBlockRows <= r1; r += kBlockRows) {
    const double n = static_cast<double>(r - r0), nb = kBlockRows;
    const double wb = nb / (n + nb), cross = n * wb;
    const T* block = x + r * cols;
#pragma omp simd reduction(+ : nans)
    for (int64_t j = 0; j < cols; ++j) {
      double s0, sum, sq, lo, hi;
      block_stats(block, cols, j, s0, sum, sq, lo, hi);
      nans += sum != sum;
      const double mb = sum * (1.0 / kBlockRows);
      const double delta = (s0 - shift[j]) + (mb - mean[j]);
      mean[j] += delta * wb;
      m2[j] += (sq - sum * mb) + delta * delta * cross;
      mn[j] = lo < mn[j] ? lo : mn[j];
      mx[j] = hi > mx[j] ? hi : mx[j];
    }
  }
  for (; r < r1; ++r) {  // the last rows, one Welford update each
    const T* __restrict row = x + r * cols;
    const double inv = 1.0 / static_cast<double>(r - r0 + 1);
#pragma omp simd reduction(+ : nans)
    for (int64_t j = 0; j < cols; ++j) {
      const double v = row[j];
      nans += v != v;
      const double d = v - shift[j];
      const double delta = d - mean[j];
      const double m = mean[j] + delta * inv;
      mean[j] = m;
      m2[j] += delta * (d - m);
      mn[j] = std::min(v, mn[j]);
      mx[j] = std::max(v, mx[j]);
    }
  }
  return nans == 0;
}

#define TANDEM_CHUNK_DENSE(T)                                                           \
  TANDEM_CPU_VARIANTS(bool, chunk_fast,                                                 \
                      (const T* x, int64_t r0, int64_t r1, int64_t cols, double* shift, \
                       double* mean, double* m2, double* mn, double* mx),               \
                      (x, r0, r1, cols, shift, mean, m2, mn, mx), chunk_dense<T>)
TANDEM_CHUNK_DENSE(float)
TANDEM_CHUNK_DENSE(double)
#undef TANDEM_CHUNK_DENSE

template <typename T>
void moments(const T* x, int64_t rows, int64_t cols, const Moments& out) {
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  std::vector<ChanPartial> partial(static_cast<size_t>(std::max<int64_t>(chunks, 1) * cols));
#pragma omp parallel
  {
    std::vector<double> shift(cols), mean(cols), m2(cols), mn(cols), mx(cols);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * kChunkRows, r1 = std::min(rows, r0 + kChunkRows);
      ChanPartial* p = partial.data() + c * cols;
      if (chunk_fast(x, r0, r1, cols, shift.data(), mean.data(), m2.data(), mn.data(), mx.data())) {
        for (int64_t j = 0; j < cols; ++j)
          p[j] = {static_cast<double>(r1 - r0), shift[j], mean[j], m2[j], mn[j], mx[j], 0};
        continue;
      }
      for (int64_t j = 0; j < cols; ++j) p[j] = ChanPartial{};
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < cols; ++j) {
          const double v = x[r * cols + j];
          if (std::isnan(v))
            p[j].missing += 1;
          else
            welford_add(p[j], v);
        }
    }
  }
  // Chunks merged in order: the same bits whatever the thread count.
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < cols; ++j) {
    ChanPartial acc;
    for (int64_t c = 0; c < chunks; ++c) chan_merge(acc, partial[c * cols + j]);
    store_partial(out, j, acc);
  }
}

}  // namespace

void column_moments_cpu(const void* x, DType type, int64_t rows, int64_t cols, const Moments& out) {
  if (rows < 0 || cols < 0) throw std::invalid_argument("column_moments: negative size");
  dispatch_float_cpu(type, "column_moments", [&](auto v) {
    using T = decltype(v);
    moments<T>(static_cast<const T*>(x), rows, cols, out);
    return 0;
  });
}

}  // namespace tandem::kernels
