// CUDA column moments. Stage 1: a block per (32 columns, chunk of rows); thread
// (tx, ty) runs Welford over rows ty, ty + 8, ... of the chunk for column tx; the 8
// partials are merged in ty order. Stage 2: one thread per column merges the chunks
// in order. Fixed chunking: the same bits from run to run.
#include "kernels/chan.h"
#include "kernels/cuda_common.cuh"
#include "kernels/moments.h"

namespace tandem::kernels {
namespace {

constexpr int kRowsPerThreadGroup = 8;
constexpr int64_t kChunkRows = 4096;

template <typename T>
__global__ void partial_kernel(const T* x, int64_t rows, int64_t cols, ChanPartial* partial) {
  __shared__ ChanPartial part[kRowsPerThreadGroup][kWarp];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarp + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * kChunkRows, r1 = r0 + kChunkRows < rows ? r0 + kChunkRows : rows;
  ChanPartial p;
  if (col < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowsPerThreadGroup) {
      const double v = to_acc(x[r * cols + col]);
      if (v != v)
        p.missing += 1;
      else
        welford_add(p, v);
    }
  part[threadIdx.y][threadIdx.x] = p;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int k = 1; k < kRowsPerThreadGroup; ++k) chan_merge(p, part[k][threadIdx.x]);
    partial[chunk * cols + col] = p;
  }
}

__global__ void final_kernel(int64_t chunks, int64_t cols, const ChanPartial* partial,
                             Moments out) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  ChanPartial acc;
  for (int64_t c = 0; c < chunks; ++c) chan_merge(acc, partial[c * cols + col]);
  store_partial(out, col, acc);
}

int64_t chunk_count(int64_t rows) { return rows == 0 ? 1 : (rows + kChunkRows - 1) / kChunkRows; }

}  // namespace

size_t column_moments_cuda_workspace(int64_t rows, int64_t cols) {
  return static_cast<size_t>(chunk_count(rows)) * static_cast<size_t>(cols) * sizeof(ChanPartial);
}

void column_moments_cuda(const void* x, DType type, int64_t rows, int64_t cols, const Moments& out,
                         void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (rows < 0 || cols < 0) throw std::invalid_argument("column_moments: negative size");
  if (cols == 0) return;
  if (workspace_bytes < column_moments_cuda_workspace(rows, cols))
    throw std::invalid_argument("column_moments: workspace too small");
  if (chunk_count(rows) > 65535)
    throw std::invalid_argument("column_moments: more than 65535 * 4096 rows in one call");
  auto* partial = static_cast<ChanPartial*>(workspace);
  dispatch_float_cuda(type, "column_moments", [&](auto v) {
    using T = decltype(v);
    partial_kernel<T><<<dim3(blocks_for(cols, kWarp), static_cast<unsigned>(chunk_count(rows))),
                        dim3(kWarp, kRowsPerThreadGroup), 0, stream>>>(static_cast<const T*>(x),
                                                                       rows, cols, partial);
    TANDEM_CUDA_CHECK_LAUNCH("column_moments partial");
    return 0;
  });
  final_kernel<<<blocks_for(cols, 256), 256, 0, stream>>>(chunk_count(rows), cols, partial, out);
  TANDEM_CUDA_CHECK_LAUNCH("column_moments final");
}

}  // namespace tandem::kernels
