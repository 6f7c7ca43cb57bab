// CPU LayerNorm: OpenMP over rows; within a row, 8 Welford lanes that the compiler
// can vectorize (they share one count, so one division per 8 elements).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/cpu_simd.h"
#include "kernels/dispatch.h"
#include "kernels/layer_norm.h"

namespace tandem::kernels {
namespace {

constexpr int kSumLanes = 16;  // partial sums of backward's row reductions

// Welford on values shifted by the row's first element: far from zero (1e8 + N(0,1))
// the shifted values are O(spread), so the mean's rounding no longer scales with
// the offset. kLanes independent lanes fill the vector units (16 for long rows; 8
// for short ones, where merging 16 lanes costs more than it gains); the choice
// depends on the row length only, so every CPU variant sums in the same order.
template <typename T, int kLanes>
[[gnu::always_inline]] inline void row_moments(const T* x, int64_t n, T& mean_out, T& var_out) {
  const T shift = x[0];
  T mean[kLanes] = {}, m2[kLanes] = {};
  const int64_t groups = n / kLanes;
  for (int64_t g = 0; g < groups; ++g) {
    const T inv = T(1) / static_cast<T>(g + 1);
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const T v = x[g * kLanes + l] - shift;
      const T d = v - mean[l];
      mean[l] += d * inv;
      m2[l] += d * (v - mean[l]);
    }
  }
  // Chan's merge of lanes with equal counts, pairwise.
  T count = static_cast<T>(groups);
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) {
      const T d = mean[l + width] - mean[l];
      mean[l] += d * T(0.5);
      m2[l] += m2[l + width] + d * d * count * T(0.5);
    }
    count *= 2;
  }
  T mu = mean[0], m = m2[0];
  int64_t c = groups * kLanes;
  for (int64_t j = c; j < n; ++j) {
    const T v = x[j] - shift;
    const T d = v - mu;
    mu += d / static_cast<T>(++c);
    m += d * (v - mu);
  }
  mean_out = shift + mu;
  var_out = m / static_cast<T>(n);
}

// One row: statistics, saved mean/rstd, normalized output.
template <typename T>
[[gnu::always_inline]] inline void normalize_row(const T* xr, int64_t C, const T* gamma,
                                                 const T* beta, T eps, T* yr, T& mean, T& rstd) {
  T mu, var;
  if (C >= 128)
    row_moments<T, 16>(xr, C, mu, var);
  else
    row_moments<T, 8>(xr, C, mu, var);
  const T rs = T(1) / std::sqrt(var + eps);
  mean = mu;
  rstd = rs;
#pragma omp simd
  for (int64_t j = 0; j < C; ++j) {
    const T v = (xr[j] - mu) * rs;
    yr[j] = v * (gamma ? gamma[j] : T(1)) + (beta ? beta[j] : T(0));
  }
}

// Rows [r0, r1): dx, and this chunk's gamma/beta partial sums (when pg is set).
template <typename T>
[[gnu::always_inline]] inline void backward_rows(int64_t r0, int64_t r1, int64_t C, const T* dy,
                                                 const T* x, const T* mean, const T* rstd,
                                                 const T* gamma, T* dx, T* pg, T* pb) {
  for (int64_t r = r0; r < r1; ++r) {
    const T *xr = x + r * C, *dyr = dy + r * C;
    const T mu = mean[r], rs = rstd[r];
    // kSumLanes partial sums in a fixed order (column j goes to lane j % kSumLanes),
    // merged pairwise: the same bits for every vector width.
    T la[kSumLanes] = {}, lb[kSumLanes] = {};
    int64_t j0 = 0;
    for (; j0 + kSumLanes <= C; j0 += kSumLanes) {
#pragma omp simd
      for (int l = 0; l < kSumLanes; ++l) {
        const int64_t j = j0 + l;
        const T gy = dyr[j] * (gamma ? gamma[j] : T(1));
        la[l] += gy;
        lb[l] += gy * (xr[j] - mu) * rs;
      }
    }
    for (int64_t j = j0; j < C; ++j) {
      const T gy = dyr[j] * (gamma ? gamma[j] : T(1));
      la[j - j0] += gy;
      lb[j - j0] += gy * (xr[j] - mu) * rs;
    }
    for (int width = kSumLanes / 2; width >= 1; width /= 2)
      for (int l = 0; l < width; ++l) {
        la[l] += la[l + width];
        lb[l] += lb[l + width];
      }
    const T a = la[0] / static_cast<T>(C), b = lb[0] / static_cast<T>(C);
    T* dxr = dx + r * C;
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) {
      const T xhat = (xr[j] - mu) * rs;
      dxr[j] = rs * (dyr[j] * (gamma ? gamma[j] : T(1)) - a - xhat * b);
    }
    if (pg) {
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) {
        pg[j] += dyr[j] * (xr[j] - mu) * rs;
        pb[j] += dyr[j];
      }
    }
  }
}

template <typename T>
[[gnu::always_inline]] inline void normalize_rows_impl(int64_t r0, int64_t r1, int64_t C,
                                                       const T* x, const T* gamma, const T* beta,
                                                       T eps, T* y, T* mean, T* rstd) {
  for (int64_t r = r0; r < r1; ++r)
    normalize_row<T>(x + r * C, C, gamma, beta, eps, y + r * C, mean[r], rstd[r]);
}

// Plain functions per type, each with its CPU variants (cpu_simd.h).
#define TANDEM_LAYER_NORM_ROWS(T)                                                                 \
  TANDEM_CPU_VARIANTS(void, normalize_rows,                                                       \
                      (int64_t r0, int64_t r1, int64_t C, const T* x, const T* gamma,             \
                       const T* beta, T eps, T* y, T* mean, T* rstd),                             \
                      (r0, r1, C, x, gamma, beta, eps, y, mean, rstd), normalize_rows_impl<T>)    \
  TANDEM_CPU_VARIANTS(void, backward_chunk,                                                       \
                      (int64_t r0, int64_t r1, int64_t C, const T* dy, const T* x, const T* mean, \
                       const T* rstd, const T* gamma, T* dx, T* pg, T* pb),                       \
                      (r0, r1, C, dy, x, mean, rstd, gamma, dx, pg, pb), backward_rows<T>)
TANDEM_LAYER_NORM_ROWS(float)
TANDEM_LAYER_NORM_ROWS(double)
#undef TANDEM_LAYER_NORM_ROWS

template <typename T>
void forward(const LayerNormShape& s, const T* x, const T* gamma, const T* beta, double eps, T* y,
             T* mean, T* rstd) {
  // Blocks of rows per call keep the dispatch cost off short rows.
  constexpr int64_t kRows = 16;
  const int64_t blocks = (s.rows + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < blocks; ++k)
    normalize_rows(k * kRows, std::min(s.rows, (k + 1) * kRows), s.cols, x, gamma, beta,
                   static_cast<T>(eps), y, mean, rstd);
}

/// The chunking depends on the row count only, never on the thread count.
int64_t chunk_count(int64_t rows) { return std::clamp<int64_t>(rows / 32, 1, 256); }

template <typename T>
void backward(const LayerNormShape& s, const T* dy, const T* x, const T* mean, const T* rstd,
              const T* gamma, T* dx, T* dgamma, T* dbeta) {
  const int64_t R = s.rows, C = s.cols;
  const bool params = dgamma || dbeta;
  const int64_t chunks = chunk_count(R), per_chunk = (R + chunks - 1) / chunks;
  std::vector<T> partial(params ? 2 * chunks * C : 0, T(0));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; ++k)
    backward_chunk(k * per_chunk, std::min(R, (k + 1) * per_chunk), C, dy, x, mean, rstd, gamma, dx,
                   params ? partial.data() + k * C : nullptr,
                   params ? partial.data() + (chunks + k) * C : nullptr);
  if (!params) return;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < C; ++j) {
    T g = 0, b = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      g += partial[k * C + j];
      b += partial[(chunks + k) * C + j];
    }
    if (dgamma) dgamma[j] = g;
    if (dbeta) dbeta[j] = b;
  }
}

void check(const LayerNormShape& s) {
  if (s.rows < 0 || s.cols < 1) throw std::invalid_argument("layer_norm: rows < 0 or cols < 1");
}

}  // namespace

void layer_norm_forward_cpu(const LayerNormShape& s, const void* x, const void* gamma,
                            const void* beta, double eps, void* y, void* mean, void* rstd) {
  check(s);
  dispatch_float_cpu(s.type, "layer_norm", [&](auto v) {
    using T = decltype(v);
    forward<T>(s, static_cast<const T*>(x), static_cast<const T*>(gamma),
               static_cast<const T*>(beta), eps, static_cast<T*>(y), static_cast<T*>(mean),
               static_cast<T*>(rstd));
    return 0;
  });
}

void layer_norm_backward_cpu(const LayerNormShape& s, const void* dy, const void* x,
                             const void* mean, const void* rstd, const void* gamma, void* dx,
                             void* dgamma, void* dbeta) {
  check(s);
  dispatch_float_cpu(s.type, "layer_norm", [&](auto v) {
    using T = decltype(v);
    backward<T>(s, static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(mean),
                static_cast<const T*>(rstd), static_cast<const T*>(gamma), static_cast<T*>(dx),
                static_cast<T*>(dgamma), static_cast<T*>(dbeta));
    return 0;
  });
}

}  // namespace tandem::kernels
