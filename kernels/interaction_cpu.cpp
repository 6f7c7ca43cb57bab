// CPU pairwise interaction: OpenMP over blocks of rows; each row's vectors stay in
// cache while all its pairs are formed.
#include <algorithm>
#include <stdexcept>

#include "kernels/cpu_simd.h"
#include "kernels/dispatch.h"
#include "kernels/interaction.h"

namespace tandem::kernels {
namespace {

constexpr int kLanes = 8;

// <a, b> over n elements in kLanes lanes merged pairwise, then the tail in order.
template <typename T>
[[gnu::always_inline]] inline T dot(const T* a, const T* b, int64_t n) {
  T lane[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) lane[l] += a[c + l] * b[c + l];
  }
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  T sum = lane[0];
  for (; c < n; ++c) sum += a[c] * b[c];
  return sum;
}

template <typename T>
[[gnu::always_inline]] inline void forward_rows_impl(int64_t r0, int64_t r1, int64_t F, int64_t D,
                                                     const T* x, T* out) {
  const int64_t P = F * (F - 1) / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * F * D;
    T* o = out + r * P;
    for (int64_t i = 1; i < F; ++i)
      for (int64_t j = 0; j < i; ++j) *o++ = dot(xr + i * D, xr + j * D, D);
  }
}

template <typename T>
[[gnu::always_inline]] inline void backward_rows_impl(int64_t r0, int64_t r1, int64_t F, int64_t D,
                                                      const T* dout, const T* x, T* dx) {
  const int64_t P = F * (F - 1) / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * F * D;
    const T* g = dout + r * P;
    T* d = dx + r * F * D;
    std::fill(d, d + F * D, T(0));
    for (int64_t i = 1; i < F; ++i)
      for (int64_t j = 0; j < i; ++j) {
        const T w = *g++;
        T *di = d + i * D, *dj = d + j * D;
        const T *xi = xr + i * D, *xj = xr + j * D;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) {
          di[c] += w * xj[c];
          dj[c] += w * xi[c];
        }
      }
  }
}

#define TANDEM_INTERACTION_ROWS(T)                                                        \
  TANDEM_CPU_VARIANTS(void, forward_rows,                                                 \
                      (int64_t r0, int64_t r1, int64_t F, int64_t D, const T* x, T* out), \
                      (r0, r1, F, D, x, out), forward_rows_impl<T>)                       \
  TANDEM_CPU_VARIANTS(                                                                    \
      void, backward_rows,                                                                \
      (int64_t r0, int64_t r1, int64_t F, int64_t D, const T* dout, const T* x, T* dx),   \
      (r0, r1, F, D, dout, x, dx), backward_rows_impl<T>)
TANDEM_INTERACTION_ROWS(float)
TANDEM_INTERACTION_ROWS(double)
#undef TANDEM_INTERACTION_ROWS

// Blocks of rows per call keep the dispatch cost off small rows.
constexpr int64_t kRows = 16;

void check(const InteractionShape& s) {
  if (s.rows < 0 || s.vectors < 1 || s.dim < 1)
    throw std::invalid_argument("interaction: rows < 0, vectors < 1 or dim < 1");
}

// Calls rows(T{}, r0, r1) for blocks of rows in parallel, T the shape's type.
template <typename F>
void for_row_blocks(const InteractionShape& s, F&& rows) {
  check(s);
  dispatch_float_cpu(s.type, "interaction", [&](auto v) {
    const int64_t blocks = (s.rows + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) rows(v, b * kRows, std::min(s.rows, (b + 1) * kRows));
    return 0;
  });
}

}  // namespace

void interaction_forward_cpu(const InteractionShape& s, const void* x, void* out) {
  for_row_blocks(s, [&](auto v, int64_t r0, int64_t r1) {
    using T = decltype(v);
    forward_rows(r0, r1, s.vectors, s.dim, static_cast<const T*>(x), static_cast<T*>(out));
  });
}

void interaction_backward_cpu(const InteractionShape& s, const void* dout, const void* x,
                              void* dx) {
  for_row_blocks(s, [&](auto v, int64_t r0, int64_t r1) {
    using T = decltype(v);
    backward_rows(r0, r1, s.vectors, s.dim, static_cast<const T*>(dout), static_cast<const T*>(x),
                  static_cast<T*>(dx));
  });
}

}  // namespace tandem::kernels
