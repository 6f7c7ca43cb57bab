// CPU pairwise interaction: OpenMP over blocks of rows; each row's vectors stay in
// cache while all its pairs are formed, kBlock outputs at a time in registers.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/cpu_simd.h"
#include "kernels/dispatch.h"
#include "kernels/interaction.h"

namespace tandem::kernels {
namespace {

// Outputs computed side by side: a fixed width, so that the accumulators stay in
// registers (one AVX-512 register of floats) in every variant.
constexpr int64_t kBlock = 16;

// Forward, vectorised over j: for each vector i, the dots with a block of kBlock
// vectors j at once, from x transposed (xt[c][j], zero past F), each dot summed
// over c in order. Blocks past j = i - 1 are not computed.
template <typename T>
[[gnu::always_inline]] inline void forward_rows_impl(int64_t r0, int64_t r1, int64_t F, int64_t D,
                                                     bool first, const T* x, T* out) {
  const int64_t P = F * (F - 1) / 2, Fp = (F + kBlock - 1) / kBlock * kBlock;
  const int64_t W = (first ? D : 0) + P;
  std::vector<T> xt(static_cast<size_t>(D * Fp), T(0));
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * F * D;
    for (int64_t j = 0; j < F; ++j)
      for (int64_t c = 0; c < D; ++c) xt[c * Fp + j] = xr[j * D + c];
    T* o = out + r * W;
    if (first) o = std::copy(xr, xr + D, o);
    for (int64_t i = 1; i < F; ++i) {
      const T* xi = xr + i * D;
      for (int64_t j0 = 0; j0 < i; j0 += kBlock) {
        T acc[kBlock] = {};
        for (int64_t c = 0; c < D; ++c) {
          const T a = xi[c];
          const T* col = xt.data() + c * Fp + j0;
#pragma omp simd
          for (int64_t l = 0; l < kBlock; ++l) acc[l] += a * col[l];
        }
        const int64_t n = std::min(kBlock, i - j0);
        for (int64_t l = 0; l < n; ++l) o[j0 + l] = acc[l];
      }
      o += i;
    }
  }
}

// Backward, per vector i: dx[i] = sum over j != i, in order of j, of the pair's
// gradient times x[j] (the order of k), kBlock columns at once, then the rest; with
// `first`, dx[0] starts from the first vector's own gradient.
template <typename T>
[[gnu::always_inline]] inline void backward_rows_impl(int64_t r0, int64_t r1, int64_t F, int64_t D,
                                                      bool first, const T* dout, const T* x,
                                                      T* dx) {
  const int64_t P = F * (F - 1) / 2, W = (first ? D : 0) + P;
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * F * D;
    const T* own = dout + r * W;  // with `first`: x[r, 0]'s gradient
    const T* g = own + (first ? D : 0);
    T* d = dx + r * F * D;
    for (int64_t i = 0; i < F; ++i) {
      // The pair (i, j) is k = i (i - 1) / 2 + j for j < i, and (j, i) for j > i.
      const auto weight = [&](int64_t j) {
        return j < i ? g[i * (i - 1) / 2 + j] : g[j * (j - 1) / 2 + i];
      };
      int64_t c0 = 0;
      for (; c0 + kBlock <= D; c0 += kBlock) {
        T acc[kBlock] = {};
        if (first && i == 0) std::copy(own + c0, own + c0 + kBlock, acc);
        for (int64_t j = 0; j < F; ++j) {
          if (j == i) continue;
          const T w = weight(j);
          const T* xj = xr + j * D + c0;
#pragma omp simd
          for (int64_t l = 0; l < kBlock; ++l) acc[l] += w * xj[l];
        }
        std::copy(acc, acc + kBlock, d + i * D + c0);
      }
      for (int64_t c = c0; c < D; ++c) {
        T acc = first && i == 0 ? own[c] : T(0);
        for (int64_t j = 0; j < F; ++j)
          if (j != i) acc += weight(j) * xr[j * D + c];
        d[i * D + c] = acc;
      }
    }
  }
}

#define TANDEM_INTERACTION_ROWS(T)                                                              \
  TANDEM_CPU_VARIANTS(                                                                          \
      void, forward_rows,                                                                       \
      (int64_t r0, int64_t r1, int64_t F, int64_t D, bool first, const T* x, T* out),           \
      (r0, r1, F, D, first, x, out), forward_rows_impl<T>)                                      \
  TANDEM_CPU_VARIANTS(void, backward_rows,                                                      \
                      (int64_t r0, int64_t r1, int64_t F, int64_t D, bool first, const T* dout, \
                       const T* x, T* dx),                                                      \
                      (r0, r1, F, D, first, dout, x, dx), backward_rows_impl<T>)
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
    forward_rows(r0, r1, s.vectors, s.dim, s.with_first, static_cast<const T*>(x),
                 static_cast<T*>(out));
  });
}

void interaction_backward_cpu(const InteractionShape& s, const void* dout, const void* x,
                              void* dx) {
  for_row_blocks(s, [&](auto v, int64_t r0, int64_t r1) {
    using T = decltype(v);
    backward_rows(r0, r1, s.vectors, s.dim, s.with_first, static_cast<const T*>(dout),
                  static_cast<const T*>(x), static_cast<T*>(dx));
  });
}

}  // namespace tandem::kernels
