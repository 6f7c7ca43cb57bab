// CUDA LayerNorm. A group of G threads owns a row: G = 32 (a warp, several rows
// per block) for rows of up to 2048 columns, G = 512 (a block) beyond. Each thread
// runs Welford over its strided columns; the group merges with Chan's formula
// through shuffles (and shared memory across warps), in a fixed order. Scalar,
// coalesced loads: no vector-width assumption, so any column count runs the same
// path. Gamma/beta gradients: per-chunk column partials, then the chunks summed in
// order by a second kernel.
#include <algorithm>

#include "kernels/cuda_common.cuh"
#include "kernels/layer_norm.h"

namespace tandem::kernels {
namespace {

constexpr int kBlock = 512;
constexpr int64_t kWarpRowsUpTo = 2048;

template <typename A>
struct Moments {
  A count, mean, m2;
};

template <typename A>
__device__ Moments<A> chan(Moments<A> a, Moments<A> b) {
  const A n = a.count + b.count;
  if (n == 0) return a;
  const A d = b.mean - a.mean, wb = b.count / n;
  return {n, a.mean + d * wb, a.m2 + b.m2 + d * d * a.count * wb};
}

template <typename A>
__device__ Moments<A> warp_merge(Moments<A> m) {
  for (int o = 16; o > 0; o /= 2) {
    Moments<A> other{__shfl_xor_sync(0xffffffffu, m.count, o),
                     __shfl_xor_sync(0xffffffffu, m.mean, o),
                     __shfl_xor_sync(0xffffffffu, m.m2, o)};
    m = chan(m, other);
  }
  return m;
}

// Merges the moments of a group of G threads; every thread of the group gets the
// result. For G > 32 the group is the whole block.
template <int G, typename A>
__device__ Moments<A> group_merge(Moments<A> m) {
  m = warp_merge(m);
  if constexpr (G > kWarp) {
    __shared__ Moments<A> partial[G / kWarp];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    if (lane == 0) partial[warp] = m;
    __syncthreads();
    m = partial[0];
    for (int w = 1; w < G / kWarp; ++w) m = chan(m, partial[w]);
    __syncthreads();  // partial is reused by the next call
  }
  return m;
}

template <int G, typename A>
__device__ void group_sum2(A& a, A& b) {
  a = warp_sum(a);
  b = warp_sum(b);
  if constexpr (G > kWarp) {
    __shared__ A partial[2][G / kWarp];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    if (lane == 0) {
      partial[0][warp] = a;
      partial[1][warp] = b;
    }
    __syncthreads();
    a = b = 0;
    for (int w = 0; w < G / kWarp; ++w) {
      a += partial[0][w];
      b += partial[1][w];
    }
    __syncthreads();
  }
}

template <typename T, int G>
__global__ void forward_kernel(LayerNormShape s, const T* x, const T* gamma, const T* beta,
                               double eps, T* y, acc_t<T>* mean, acc_t<T>* rstd) {
  using A = acc_t<T>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / G) + threadIdx.x / G;
  const int tid = threadIdx.x % G;
  const bool live = row < s.rows;  // a dead group still joins the block's barriers
  const T* xr = x + (live ? row : 0) * s.cols;
  // Shifted by the row's first value, so the offset of data far from zero does not
  // scale the rounding of the mean.
  const A shift = live ? to_acc(xr[0]) : A(0);
  Moments<A> m{0, 0, 0};
  if (live)
    for (int64_t j = tid; j < s.cols; j += G) {
      const A v = to_acc(xr[j]) - shift;
      m.count += 1;
      const A d = v - m.mean;
      m.mean += d / m.count;
      m.m2 += d * (v - m.mean);
    }
  m = group_merge<G>(m);
  if (!live) return;
  const A mu = shift + m.mean,
          rs = A(1) / sqrt(m.m2 / static_cast<A>(s.cols) + static_cast<A>(eps));
  if (tid == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  T* yr = y + row * s.cols;
  for (int64_t j = tid; j < s.cols; j += G) {
    A v = (to_acc(xr[j]) - mu) * rs;
    if (gamma) v *= to_acc(gamma[j]);
    if (beta) v += to_acc(beta[j]);
    yr[j] = from_acc<T>(v);
  }
}

template <typename T, int G>
__global__ void backward_dx_kernel(LayerNormShape s, const T* dy, const T* x, const acc_t<T>* mean,
                                   const acc_t<T>* rstd, const T* gamma, T* dx) {
  using A = acc_t<T>;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / G) + threadIdx.x / G;
  const int tid = threadIdx.x % G;
  const bool live = row < s.rows;
  const int64_t base = (live ? row : 0) * s.cols;
  const A mu = live ? mean[row] : A(0), rs = live ? rstd[row] : A(0);
  A a = 0, b = 0;
  if (live)
    for (int64_t j = tid; j < s.cols; j += G) {
      const A gy = to_acc(dy[base + j]) * (gamma ? to_acc(gamma[j]) : A(1));
      a += gy;
      b += gy * (to_acc(x[base + j]) - mu) * rs;
    }
  group_sum2<G>(a, b);
  if (!live) return;
  a /= static_cast<A>(s.cols);
  b /= static_cast<A>(s.cols);
  for (int64_t j = tid; j < s.cols; j += G) {
    const A xhat = (to_acc(x[base + j]) - mu) * rs;
    const A gy = to_acc(dy[base + j]) * (gamma ? to_acc(gamma[j]) : A(1));
    dx[base + j] = from_acc<T>(rs * (gy - a - xhat * b));
  }
}

// Stage 1: block (column tile of 32, chunk of rows); thread (tx, ty) sums rows
// ty, ty + 16, ... of the chunk for column tx, then the 16 partials are added in
// order. Stage 2 adds the chunks in order.
constexpr int kTileRows = 16;

int64_t chunk_count(int64_t rows) { return std::clamp<int64_t>(rows / 64, 1, 512); }

template <typename T>
__global__ void param_partial_kernel(LayerNormShape s, const T* dy, const T* x,
                                     const acc_t<T>* mean, const acc_t<T>* rstd, int64_t per_chunk,
                                     acc_t<T>* partial_g, acc_t<T>* partial_b) {
  using A = acc_t<T>;
  __shared__ A sg[kTileRows][kWarp + 1], sb[kTileRows][kWarp + 1];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarp + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * per_chunk, r1 = r0 + per_chunk < s.rows ? r0 + per_chunk : s.rows;
  A g = 0, b = 0;
  if (col < s.cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const A d = to_acc(dy[r * s.cols + col]);
      g += d * (to_acc(x[r * s.cols + col]) - mean[r]) * rstd[r];
      b += d;
    }
  sg[threadIdx.y][threadIdx.x] = g;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && col < s.cols) {
    for (int k = 1; k < kTileRows; ++k) {
      g += sg[k][threadIdx.x];
      b += sb[k][threadIdx.x];
    }
    partial_g[chunk * s.cols + col] = g;
    partial_b[chunk * s.cols + col] = b;
  }
}

template <typename T>
__global__ void param_final_kernel(int64_t cols, int64_t chunks, const acc_t<T>* partial_g,
                                   const acc_t<T>* partial_b, acc_t<T>* dgamma, acc_t<T>* dbeta) {
  using A = acc_t<T>;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  A g = 0, b = 0;
  for (int64_t k = 0; k < chunks; ++k) {
    g += partial_g[k * cols + col];
    b += partial_b[k * cols + col];
  }
  if (dgamma) dgamma[col] = g;
  if (dbeta) dbeta[col] = b;
}

void check(const LayerNormShape& s) {
  if (s.rows < 0 || s.cols < 1) throw std::invalid_argument("layer_norm: rows < 0 or cols < 1");
}

/// Calls f(integral_constant<int, G>) with the group size for this row length.
template <typename F>
void dispatch_group(int64_t cols, F&& f) {
  if (cols <= kWarpRowsUpTo)
    f(std::integral_constant<int, kWarp>{});
  else
    f(std::integral_constant<int, kBlock>{});
}

}  // namespace

void layer_norm_forward_cuda(const LayerNormShape& s, const void* x, const void* gamma,
                             const void* beta, double eps, void* y, void* mean, void* rstd,
                             cudaStream_t stream) {
  check(s);
  if (s.rows == 0) return;
  dispatch_float_cuda(s.type, "layer_norm", [&](auto v) {
    using T = decltype(v);
    dispatch_group(s.cols, [&](auto g) {
      constexpr int G = decltype(g)::value;
      forward_kernel<T, G><<<blocks_for(s.rows, kBlock / G), kBlock, 0, stream>>>(
          s, static_cast<const T*>(x), static_cast<const T*>(gamma), static_cast<const T*>(beta),
          eps, static_cast<T*>(y), static_cast<acc_t<T>*>(mean), static_cast<acc_t<T>*>(rstd));
    });
    TANDEM_CUDA_CHECK_LAUNCH("layer_norm forward");
    return 0;
  });
}

size_t layer_norm_backward_cuda_workspace(const LayerNormShape& s) {
  const size_t acc = s.type == DType::kFloat64 ? 8 : 4;
  return 2 * static_cast<size_t>(chunk_count(s.rows)) * static_cast<size_t>(s.cols) * acc;
}

void layer_norm_backward_cuda(const LayerNormShape& s, const void* dy, const void* x,
                              const void* mean, const void* rstd, const void* gamma, void* dx,
                              void* dgamma, void* dbeta, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
  check(s);
  if (s.rows == 0) return;
  if ((dgamma || dbeta) && workspace_bytes < layer_norm_backward_cuda_workspace(s))
    throw std::invalid_argument("layer_norm backward: workspace too small");
  dispatch_float_cuda(s.type, "layer_norm", [&](auto v) {
    using T = decltype(v);
    using A = acc_t<T>;
    const auto* m = static_cast<const A*>(mean);
    const auto* r = static_cast<const A*>(rstd);
    dispatch_group(s.cols, [&](auto g) {
      constexpr int G = decltype(g)::value;
      backward_dx_kernel<T, G><<<blocks_for(s.rows, kBlock / G), kBlock, 0, stream>>>(
          s, static_cast<const T*>(dy), static_cast<const T*>(x), m, r,
          static_cast<const T*>(gamma), static_cast<T*>(dx));
    });
    TANDEM_CUDA_CHECK_LAUNCH("layer_norm backward dx");
    if (!dgamma && !dbeta) return 0;
    const int64_t chunks = chunk_count(s.rows), per_chunk = (s.rows + chunks - 1) / chunks;
    A* pg = static_cast<A*>(workspace);
    A* pb = pg + chunks * s.cols;
    param_partial_kernel<T><<<dim3(blocks_for(s.cols, kWarp), static_cast<unsigned>(chunks)),
                              dim3(kWarp, kTileRows), 0, stream>>>(
        s, static_cast<const T*>(dy), static_cast<const T*>(x), m, r, per_chunk, pg, pb);
    TANDEM_CUDA_CHECK_LAUNCH("layer_norm backward partial");
    param_final_kernel<T><<<blocks_for(s.cols, 256), 256, 0, stream>>>(
        s.cols, chunks, pg, pb, static_cast<A*>(dgamma), static_cast<A*>(dbeta));
    TANDEM_CUDA_CHECK_LAUNCH("layer_norm backward final");
    return 0;
  });
}

}  // namespace tandem::kernels
