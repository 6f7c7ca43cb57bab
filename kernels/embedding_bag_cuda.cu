// CUDA embedding bags. One warp per bag (forward) or per touched row (backward);
// lane l owns columns l, l + 32, ..., so every row read is coalesced and a row of
// up to 32 * C columns stays in registers (C = 1..32, a template parameter).
// Backward: (row, position) pairs are radix-sorted (stable, so equal rows keep
// position order), run-length encoded, and each run summed by one warp in order:
// deterministic, no floating-point atomics.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <climits>

#include "kernels/cuda_common.cuh"
#include "kernels/embedding_bag.h"

namespace tandem::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kMaxChunks = 32;  // columns per lane held in registers: dim <= 1024

template <typename W, typename I>
struct Bags {
  const W* weight;
  int64_t total_rows, dim, tables, batch, num_indices;
  const int64_t* row_offsets;
  const int64_t* rows;
  const I* indices;
  const I* offsets;
  const acc_t<W>* psw;
  bool mean;

  explicit Bags(const EmbeddingBags& e)
      : weight(static_cast<const W*>(e.weight)),
        total_rows(e.total_rows),
        dim(e.dim),
        tables(e.tables),
        batch(e.batch),
        num_indices(e.num_indices),
        row_offsets(e.row_offsets),
        rows(e.rows),
        indices(static_cast<const I*>(e.indices)),
        offsets(static_cast<const I*>(e.offsets)),
        psw(static_cast<const acc_t<W>*>(e.per_sample_weights)),
        mean(e.pooling == Pooling::kMean) {}

  __device__ bool range(int64_t bag, int64_t& begin, int64_t& end) const {
    begin = offsets[bag];
    end = offsets[bag + 1];
    return begin >= 0 && begin <= end && end <= num_indices;
  }
};

__device__ void report(int64_t* bad_bag, int64_t bag) {
  atomicMin(reinterpret_cast<unsigned long long*>(bad_bag), static_cast<unsigned long long>(bag));
}

// Columns [col0, col0 + 32 * C) of one bag.
template <typename W, typename I, int C>
__global__ void forward_kernel(Bags<W, I> a, acc_t<W>* out, int64_t* bad_bag) {
  using A = acc_t<W>;
  const int lane = threadIdx.x % kWarp;
  const int64_t bag = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (bag >= a.tables * a.batch) return;
  const int64_t t = bag / a.batch;
  A* o = out + (bag % a.batch) * a.tables * a.dim + t * a.dim;
  int64_t begin, end;
  if (!a.range(bag, begin, end)) {
    if (lane == 0) report(bad_bag, bag);
    begin = end = 0;
  }
  const int64_t rows = a.rows[t];
  const W* table = a.weight + a.row_offsets[t] * a.dim;
  for (int64_t col0 = 0; col0 < a.dim; col0 += kWarp * C) {
    A acc[C];
#pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t r = a.indices[p];
      if (r < 0 || r >= rows) {
        if (lane == 0 && col0 == 0) report(bad_bag, bag);
        continue;
      }
      const A s = a.psw ? a.psw[p] : A(1);
      const W* row = table + r * a.dim;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int64_t j = col0 + lane + c * kWarp;
        if (j < a.dim) acc[c] += s * to_acc(row[j]);
      }
    }
    const A scale = a.mean && end > begin ? A(1) / static_cast<A>(end - begin) : A(1);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t j = col0 + lane + c * kWarp;
      if (j < a.dim) o[j] = acc[c] * scale;
    }
  }
}

// Sort keys: the global row of each position, or total_rows (sorts last) for a
// position outside every valid bag, with an invalid index, or of per-sample weight
// 0 (an empty multi-hot slot: it adds nothing, and no row need sum its zeros).
template <typename W, typename I>
__global__ void keys_kernel(Bags<W, I> a, int64_t* keys, int64_t* positions, int64_t* bag_of) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= a.num_indices) return;
  positions[p] = p;
  keys[p] = a.total_rows;
  bag_of[p] = -1;
  const int64_t bags = a.tables * a.batch;
  // The last bag whose start is <= p (offsets are non-decreasing when valid).
  int64_t lo = 0, hi = bags;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (a.offsets[mid] <= p)
      lo = mid;
    else
      hi = mid - 1;
  }
  int64_t begin, end;
  if (lo >= bags || !a.range(lo, begin, end) || p < begin || p >= end) return;
  const int64_t t = lo / a.batch, r = a.indices[p];
  if (r < 0 || r >= a.rows[t] || (a.psw && a.psw[p] == acc_t<W>(0))) return;
  keys[p] = a.row_offsets[t] + r;
  bag_of[p] = lo;
}

template <typename W>
__device__ void apply_row(const RowOptimizer& opt, int64_t dim, int64_t row,
                          const acc_t<W>* g /* this lane's columns, strided */, int chunks,
                          int lane) {
  using A = acc_t<W>;
  W* w = static_cast<W*>(opt.weight) + row * dim;
  A step = static_cast<A>(opt.lr);
  if (opt.update == RowUpdate::kRowwiseAdagrad) {
    A sq = 0;
    for (int c = 0; c < chunks; ++c) sq += g[c] * g[c];
    sq = warp_sum(sq);
    A* state = static_cast<A*>(opt.state) + row;
    const A s = *state + sq / static_cast<A>(dim);
    __syncwarp();
    if (lane == 0) *state = s;
    step /= sqrt(s) + static_cast<A>(opt.eps);
  }
  for (int c = 0; c < chunks; ++c) {
    const int64_t j = lane + c * kWarp;
    if (j < dim) w[j] = from_acc<W>(to_acc(w[j]) - step * g[c]);
  }
}

struct Runs {
  const int64_t* unique_keys;
  const int* counts;
  const int* starts;
  const int* num_runs;
  const int64_t* positions;  // sorted by key
  const int64_t* bag_of;     // by original position
};

template <typename W, typename I, int C>
__global__ void segment_kernel(Bags<W, I> a, const acc_t<W>* grad_out, Runs runs, RowOptimizer opt,
                               int64_t* unique_rows, acc_t<W>* grad_rows, int64_t* num_unique) {
  using A = acc_t<W>;
  const int lane = threadIdx.x % kWarp;
  const int64_t s = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int n = *runs.num_runs;
  if (s == 0 && lane == 0)
    *num_unique = n - (n > 0 && runs.unique_keys[n - 1] == a.total_rows ? 1 : 0);
  if (s >= n) return;
  const int64_t row = runs.unique_keys[s];
  if (row == a.total_rows) return;  // the invalid positions' run
  if (lane == 0 && opt.update == RowUpdate::kNone) unique_rows[s] = row;
  const int64_t stride = a.tables * a.dim;
  // One pass over the columns when the row fits in registers (always so with an
  // update, which needs the whole row); otherwise blocks of 32 * C columns.
  for (int64_t col0 = 0; col0 < a.dim; col0 += kWarp * C) {
    A acc[C];
#pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0;
    for (int k = runs.starts[s]; k < runs.starts[s] + runs.counts[s]; ++k) {
      const int64_t p = runs.positions[k], bag = runs.bag_of[p];
      A scale = a.psw ? a.psw[p] : A(1);
      if (a.mean) scale /= static_cast<A>(a.offsets[bag + 1] - a.offsets[bag]);
      const A* g = grad_out + (bag % a.batch) * stride + (bag / a.batch) * a.dim + col0;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int64_t j = lane + c * kWarp;
        if (col0 + j < a.dim) acc[c] += scale * g[j];
      }
    }
    if (opt.update != RowUpdate::kNone) {
      apply_row<W>(opt, a.dim, row, acc, C, lane);
      continue;
    }
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t j = col0 + lane + c * kWarp;
      if (j < a.dim) grad_rows[s * a.dim + j] = acc[c];
    }
  }
}

// One warp per row, any dim: the gradient is read from memory twice (squares,
// then the update) instead of being held in registers.
template <typename W>
__global__ void update_kernel(RowOptimizer opt, int64_t dim, const int64_t* rows,
                              const acc_t<W>* grads, int64_t n) {
  using A = acc_t<W>;
  const int lane = threadIdx.x % kWarp;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (i >= n) return;
  const A* g = grads + i * dim;
  W* w = static_cast<W*>(opt.weight) + rows[i] * dim;
  A step = static_cast<A>(opt.lr);
  if (opt.update == RowUpdate::kRowwiseAdagrad) {
    A sq = 0;
    for (int64_t j = lane; j < dim; j += kWarp) sq += g[j] * g[j];
    sq = warp_sum(sq);
    A* state = static_cast<A*>(opt.state) + rows[i];
    const A s = *state + sq / static_cast<A>(dim);
    __syncwarp();
    if (lane == 0) *state = s;
    step /= sqrt(s) + static_cast<A>(opt.eps);
  }
  for (int64_t j = lane; j < dim; j += kWarp) w[j] = from_acc<W>(to_acc(w[j]) - step * g[j]);
}

/// Calls f(std::integral_constant<int, C>) with the smallest C in {1,2,4,...,32}
/// that holds `columns` columns per warp.
template <typename F>
void dispatch_chunks(int64_t columns, F&& f) {
  const int64_t need = (std::min<int64_t>(columns, kWarp * kMaxChunks) + kWarp - 1) / kWarp;
  if (need <= 1) return f(std::integral_constant<int, 1>{});
  if (need <= 2) return f(std::integral_constant<int, 2>{});
  if (need <= 4) return f(std::integral_constant<int, 4>{});
  if (need <= 8) return f(std::integral_constant<int, 8>{});
  if (need <= 16) return f(std::integral_constant<int, 16>{});
  return f(std::integral_constant<int, 32>{});
}

void check(const EmbeddingBags& e) {
  if (e.dim <= 0 || e.tables < 0 || e.batch < 0 || e.num_indices < 0 || e.total_rows < 0)
    throw std::invalid_argument("embedding_bag: negative size or dim < 1");
  if (e.per_sample_weights && e.pooling != Pooling::kSum)
    throw std::invalid_argument("embedding_bag: per-sample weights need sum pooling");
  if (e.num_indices >= INT_MAX)
    throw std::invalid_argument("embedding_bag: 2^31 or more indices in one CUDA call");
}

// The backward workspace, carved in a fixed order from one allocation.
struct Workspace {
  int64_t *keys, *sorted_keys, *positions, *sorted_positions, *bag_of, *unique_keys;
  int *counts, *starts, *num_runs;
  void* cub;
  size_t cub_bytes;

  static size_t align(size_t n) { return (n + 255) / 256 * 256; }

  // With base == nullptr, only computes the sizes; returns the bytes needed.
  size_t carve(char* base, const EmbeddingBags& e) {
    const size_t n = static_cast<size_t>(std::max<int64_t>(e.num_indices, 1));
    size_t at = 0;
    auto take = [&](size_t bytes) {
      char* p = base ? base + at : nullptr;
      at += align(bytes);
      return p;
    };
    keys = reinterpret_cast<int64_t*>(take(n * 8));
    sorted_keys = reinterpret_cast<int64_t*>(take(n * 8));
    positions = reinterpret_cast<int64_t*>(take(n * 8));
    sorted_positions = reinterpret_cast<int64_t*>(take(n * 8));
    bag_of = reinterpret_cast<int64_t*>(take(n * 8));
    unique_keys = reinterpret_cast<int64_t*>(take(n * 8));
    counts = reinterpret_cast<int*>(take(n * 4));
    starts = reinterpret_cast<int*>(take(n * 4));
    num_runs = reinterpret_cast<int*>(take(4));
    // CUB's temporary storage: the largest of the three passes.
    size_t sort = 0, rle = 0, scan = 0;
    const int items = static_cast<int>(n);
    cub::DeviceRadixSort::SortPairs(nullptr, sort, keys, sorted_keys, positions, sorted_positions,
                                    items);
    cub::DeviceRunLengthEncode::Encode(nullptr, rle, sorted_keys, unique_keys, counts, num_runs,
                                       items);
    cub::DeviceScan::ExclusiveSum(nullptr, scan, counts, starts, items);
    cub_bytes = std::max({sort, rle, scan});
    cub = take(cub_bytes);
    return at;
  }
};

int end_bit(int64_t total_rows) {
  int bits = 1;
  while (bits < 63 && (int64_t{1} << bits) <= total_rows) ++bits;
  return bits;
}

}  // namespace

void embedding_bag_forward_cuda(const EmbeddingBags& e, void* out, int64_t* bad_bag,
                                cudaStream_t stream) {
  check(e);
  if (e.bags() == 0) return;
  dispatch_float_cuda(e.weight_type, "embedding_bag", [&](auto w) {
    using W = decltype(w);
    return dispatch_index(e.index_type, "embedding_bag", [&](auto i) {
      using I = decltype(i);
      dispatch_chunks(e.dim, [&](auto c) {
        forward_kernel<W, I, decltype(c)::value>
            <<<blocks_for(e.bags(), kWarpsPerBlock), kWarpsPerBlock * kWarp, 0, stream>>>(
                Bags<W, I>(e), static_cast<acc_t<W>*>(out), bad_bag);
      });
      TANDEM_CUDA_CHECK_LAUNCH("embedding_bag forward");
      return 0;
    });
  });
}

size_t embedding_bag_backward_cuda_workspace(const EmbeddingBags& e) {
  return Workspace{}.carve(nullptr, e);
}

void embedding_bag_backward_cuda(const EmbeddingBags& e, const void* grad_out,
                                 const RowOptimizer& opt, int64_t* unique_rows, void* grad_rows,
                                 int64_t* num_unique, void* workspace, size_t workspace_bytes,
                                 cudaStream_t stream) {
  check(e);
  if (workspace_bytes < embedding_bag_backward_cuda_workspace(e))
    throw std::invalid_argument("embedding_bag backward: workspace too small");
  if (opt.update != RowUpdate::kNone && !opt.weight)
    throw std::invalid_argument("embedding_bag: an update needs the weight");
  if (opt.update == RowUpdate::kRowwiseAdagrad && !opt.state)
    throw std::invalid_argument("embedding_bag: row-wise Adagrad needs its state");
  if (opt.update != RowUpdate::kNone && e.dim > kWarp * kMaxChunks)
    throw std::invalid_argument(
        "embedding_bag: a fused update needs dim <= 1024 on CUDA (use the sparse gradient "
        "and rowwise_update)");
  if (e.num_indices == 0) {
    TANDEM_CUDA_CHECK(cudaMemsetAsync(num_unique, 0, sizeof(int64_t), stream));
    return;
  }
  Workspace ws;
  ws.carve(static_cast<char*>(workspace), e);
  const int items = static_cast<int>(e.num_indices);
  dispatch_float_cuda(e.weight_type, "embedding_bag", [&](auto w) {
    using W = decltype(w);
    using A = acc_t<W>;
    return dispatch_index(e.index_type, "embedding_bag", [&](auto i) {
      using I = decltype(i);
      const Bags<W, I> a(e);
      keys_kernel<W, I>
          <<<blocks_for(items, 256), 256, 0, stream>>>(a, ws.keys, ws.positions, ws.bag_of);
      TANDEM_CUDA_CHECK_LAUNCH("embedding_bag keys");
      size_t bytes = ws.cub_bytes;
      TANDEM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(ws.cub, bytes, ws.keys, ws.sorted_keys,
                                                        ws.positions, ws.sorted_positions, items, 0,
                                                        end_bit(e.total_rows), stream));
      // The scan reads counts past the last run, which Encode leaves unwritten.
      TANDEM_CUDA_CHECK(cudaMemsetAsync(ws.counts, 0, sizeof(int) * items, stream));
      bytes = ws.cub_bytes;
      TANDEM_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(
          ws.cub, bytes, ws.sorted_keys, ws.unique_keys, ws.counts, ws.num_runs, items, stream));
      bytes = ws.cub_bytes;
      TANDEM_CUDA_CHECK(
          cub::DeviceScan::ExclusiveSum(ws.cub, bytes, ws.counts, ws.starts, items, stream));
      const Runs runs{ws.unique_keys, ws.counts,           ws.starts,
                      ws.num_runs,    ws.sorted_positions, ws.bag_of};
      dispatch_chunks(e.dim, [&](auto c) {
        segment_kernel<W, I, decltype(c)::value>
            <<<blocks_for(items, kWarpsPerBlock), kWarpsPerBlock * kWarp, 0, stream>>>(
                a, static_cast<const A*>(grad_out), runs, opt, unique_rows,
                static_cast<A*>(grad_rows), num_unique);
      });
      TANDEM_CUDA_CHECK_LAUNCH("embedding_bag backward");
      return 0;
    });
  });
}

void rowwise_update_cuda(const RowOptimizer& opt, DType weight_type, int64_t dim,
                         const int64_t* rows, const void* grads, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float_cuda(weight_type, "rowwise_update", [&](auto w) {
    using W = decltype(w);
    update_kernel<W><<<blocks_for(n, kWarpsPerBlock), kWarpsPerBlock * kWarp, 0, stream>>>(
        opt, dim, rows, static_cast<const acc_t<W>*>(grads), n);
    TANDEM_CUDA_CHECK_LAUNCH("rowwise_update");
    return 0;
  });
}

}  // namespace tandem::kernels
