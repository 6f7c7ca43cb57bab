// CUDA pairwise interaction: one thread per output. Forward: a thread per (row,
// output) sums its dot over dim in order, or copies an element of the first
// vector; backward: a thread per (row, vector, element) sums the pairs that hold
// its vector, in order of the other vector, so the bits do not depend on the
// launch configuration.
#include "kernels/cuda_common.cuh"
#include "kernels/interaction.h"

namespace tandem::kernels {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void forward_kernel(int64_t rows, int64_t F, int64_t D, bool first, const T* x, T* out) {
  const int64_t P = F * (F - 1) / 2, W = (first ? D : 0) + P;
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= rows * W) return;
  const int64_t r = t / W;
  if (first && t % W < D) {  // the row's first vector
    out[t] = x[r * F * D + t % W];
    return;
  }
  const int64_t k = t % W - (first ? D : 0);
  // k = i (i - 1) / 2 + j with j < i: the largest i with i (i - 1) / 2 <= k.
  int64_t i = static_cast<int64_t>((1.0 + sqrt(1.0 + 8.0 * static_cast<double>(k))) / 2.0);
  while (i * (i - 1) / 2 > k) --i;
  while ((i + 1) * i / 2 <= k) ++i;
  const int64_t j = k - i * (i - 1) / 2;
  const T* a = x + (r * F + i) * D;
  const T* b = x + (r * F + j) * D;
  T sum = 0;
  for (int64_t c = 0; c < D; ++c) sum += a[c] * b[c];
  out[t] = sum;
}

template <typename T>
__global__ void backward_kernel(int64_t rows, int64_t F, int64_t D, bool first, const T* dout,
                                const T* x, T* dx) {
  const int64_t P = F * (F - 1) / 2, W = (first ? D : 0) + P;
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= rows * F * D) return;
  const int64_t r = t / (F * D), i = (t / D) % F, c = t % D;
  const T* own = dout + r * W;  // with `first`: x[r, 0]'s gradient
  const T* g = own + (first ? D : 0);
  const T* xr = x + r * F * D;
  T sum = first && i == 0 ? own[c] : T(0);
  for (int64_t j = 0; j < F; ++j) {
    if (j == i) continue;
    const int64_t k = i > j ? i * (i - 1) / 2 + j : j * (j - 1) / 2 + i;
    sum += g[k] * xr[j * D + c];
  }
  dx[t] = sum;
}

int64_t blocks_for(int64_t n) { return (n + kBlock - 1) / kBlock; }

void check(const InteractionShape& s) {
  if (s.rows < 0 || s.vectors < 1 || s.dim < 1)
    throw std::invalid_argument("interaction: rows < 0, vectors < 1 or dim < 1");
}

}  // namespace

void interaction_forward_cuda(const InteractionShape& s, const void* x, void* out,
                              cudaStream_t stream) {
  check(s);
  const int64_t n = s.rows * s.width();
  if (n == 0) return;
  dispatch_float_cpu(s.type, "interaction", [&](auto v) {
    using T = decltype(v);
    forward_kernel<T><<<blocks_for(n), kBlock, 0, stream>>>(
        s.rows, s.vectors, s.dim, s.with_first, static_cast<const T*>(x), static_cast<T*>(out));
    return 0;
  });
  TANDEM_CUDA_CHECK_LAUNCH("interaction forward");
}

void interaction_backward_cuda(const InteractionShape& s, const void* dout, const void* x, void* dx,
                               cudaStream_t stream) {
  check(s);
  const int64_t n = s.rows * s.vectors * s.dim;
  if (n == 0) return;
  dispatch_float_cpu(s.type, "interaction", [&](auto v) {
    using T = decltype(v);
    backward_kernel<T><<<blocks_for(n), kBlock, 0, stream>>>(
        s.rows, s.vectors, s.dim, s.with_first, static_cast<const T*>(dout),
        static_cast<const T*>(x), static_cast<T*>(dx));
    return 0;
  });
  TANDEM_CUDA_CHECK_LAUNCH("interaction backward");
}

}  // namespace tandem::kernels
