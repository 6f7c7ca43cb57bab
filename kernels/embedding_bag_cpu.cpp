// CPU embedding bags: OpenMP over bags (forward) and over touched rows (backward).
// Backward sorts each table's (row, position) keys by row, then one thread sums each
// row's contributions in position order, so the bits never depend on the number
// of threads.
#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <omp.h>

#include "kernels/cpu_simd.h"
#include "kernels/dispatch.h"
#include "kernels/embedding_bag.h"

namespace tandem::kernels {
namespace {

void check(const EmbeddingBags& e) {
  if (e.dim <= 0 || e.tables < 0 || e.batch < 0 || e.num_indices < 0)
    throw std::invalid_argument("embedding_bag: negative size or dim < 1");
  if (e.per_sample_weights && e.pooling != Pooling::kSum)
    throw std::invalid_argument("embedding_bag: per-sample weights need sum pooling");
}

// Rows are gathered at random from tables far larger than the caches, so each
// lookup would stall on memory: prefetch the row `ahead` positions ahead (all of
// its cache lines), about 4 KiB of rows in flight. A prefetch never faults, so a
// stale or wrong guess is harmless.
template <typename W>
constexpr int64_t prefetch_distance(int64_t dim) {
  return std::clamp<int64_t>(4096 / (dim * static_cast<int64_t>(sizeof(W))), 4, 64);
}

template <typename W>
inline void prefetch_row(const W* row, int64_t dim) {
  const char* p = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < dim * static_cast<int64_t>(sizeof(W)); b += 64) __builtin_prefetch(p + b);
}

/// y += a * x over n elements.
template <typename W>
[[gnu::always_inline]] inline void axpy_impl(W* __restrict y, const W* __restrict x, W a,
                                             int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += a * x[j];
}
TANDEM_CPU_VARIANTS(void, axpy, (float* y, const float* x, float a, int64_t n), (y, x, a, n),
                    axpy_impl<float>)
TANDEM_CPU_VARIANTS(void, axpy, (double* y, const double* x, double a, int64_t n), (y, x, a, n),
                    axpy_impl<double>)

template <typename I>
bool bag_range(const EmbeddingBags& e, int64_t bag, int64_t& begin, int64_t& end) {
  const I* off = static_cast<const I*>(e.offsets);
  begin = off[bag];
  end = off[bag + 1];
  return begin >= 0 && begin <= end && end <= e.num_indices;
}

// Everything the forward needs, as raw typed pointers.
template <typename W, typename I>
struct PoolJob {
  const W* weight;
  const int64_t* row_offsets;
  const int64_t* rows;
  const I* idx;
  const I* off;
  const W* psw;
  int64_t dim, batch, stride, num_indices;
  bool mean;
  W* out;
};

// Bags [lo, hi), stepping through (table, sample) without dividing per bag. With
// kDim > 0 (the row length known at compile time) a bag's accumulators stay in
// registers and the row loops unroll fully; kDim == 0 handles any length. An index
// outside [0, rows) is skipped; returns the lowest bag holding one (or an offset
// out of order), or INT64_MAX.
template <typename W, typename I, int kDim>
[[gnu::always_inline]] inline int64_t pool_range(const PoolJob<W, I>& j, int64_t lo, int64_t hi) {
  const int64_t D = kDim > 0 ? kDim : j.dim;
  const int64_t ahead = prefetch_distance<W>(D);
  int64_t bad = INT64_MAX;
  int64_t t = j.batch > 0 ? lo / j.batch : 0, b = j.batch > 0 ? lo % j.batch : 0;
  for (int64_t bag = lo; bag < hi; ++bag) {
    int64_t begin = j.off[bag], end = j.off[bag + 1];
    if (begin < 0 || end < begin || end > j.num_indices) {
      bad = std::min(bad, bag);
      begin = end = 0;
    }
    const W* table = j.weight + j.row_offsets[t] * D;
    const int64_t rows = j.rows[t];
    W* __restrict o = j.out + b * j.stride + t * D;
    const W scale = j.mean && end > begin ? W(1) / static_cast<W>(end - begin) : W(1);
    // The two loops are written out on purpose: folded into one generic lambda, the
    // fixed-length loop lost its register accumulators (40% slower when the rows
    // come from cache).
    if constexpr (kDim > 0) {
      W acc[kDim] = {};
      for (int64_t p = begin; p < end; ++p) {
        if (p + ahead < j.num_indices) prefetch_row(table + j.idx[p + ahead] * D, D);
        const int64_t r = j.idx[p];
        if (r < 0 || r >= rows) {
          bad = std::min(bad, bag);
          continue;
        }
        const W s = j.psw ? j.psw[p] : W(1);
        const W* __restrict row = table + r * D;
#pragma GCC unroll 128
        for (int k = 0; k < kDim; ++k) acc[k] += s * row[k];
      }
#pragma GCC unroll 128
      for (int k = 0; k < kDim; ++k) o[k] = acc[k] * scale;
    } else {
      std::fill(o, o + D, W(0));
      for (int64_t p = begin; p < end; ++p) {
        if (p + ahead < j.num_indices) prefetch_row(table + j.idx[p + ahead] * D, D);
        const int64_t r = j.idx[p];
        if (r < 0 || r >= rows) {
          bad = std::min(bad, bag);
          continue;
        }
        const W s = j.psw ? j.psw[p] : W(1);
        const W* __restrict row = table + r * D;
        for (int64_t k = 0; k < D; ++k) o[k] += s * row[k];
      }
      if (scale != W(1))
        for (int64_t k = 0; k < D; ++k) o[k] *= scale;
    }
    if (++b == j.batch) {
      b = 0;
      ++t;
    }
  }
  return bad;
}

// Non-template entry points, one per (type, index type, row length), each with
// its CPU variants.
#define TANDEM_POOL(W, I, D)                                                         \
  TANDEM_CPU_VARIANTS(int64_t, pool_##W##_##I##_##D,                                 \
                      (const PoolJob<W, I>& j, int64_t lo, int64_t hi), (j, lo, hi), \
                      (pool_range<W, I, D>))
#define TANDEM_POOL_DIMS(W, I)                                                  \
  TANDEM_POOL(W, I, 0)                                                          \
  TANDEM_POOL(W, I, 8)                                                          \
  TANDEM_POOL(W, I, 16)                                                         \
  TANDEM_POOL(W, I, 32)                                                         \
  TANDEM_POOL(W, I, 64)                                                         \
  TANDEM_POOL(W, I, 128)                                                        \
  using PoolFn_##W##_##I = int64_t (*)(const PoolJob<W, I>&, int64_t, int64_t); \
  PoolFn_##W##_##I pool_for(const PoolJob<W, I>&, int64_t dim) {                \
    switch (dim) {                                                              \
      case 8:                                                                   \
        return pool_##W##_##I##_8;                                              \
      case 16:                                                                  \
        return pool_##W##_##I##_16;                                             \
      case 32:                                                                  \
        return pool_##W##_##I##_32;                                             \
      case 64:                                                                  \
        return pool_##W##_##I##_64;                                             \
      case 128:                                                                 \
        return pool_##W##_##I##_128;                                            \
      default:                                                                  \
        return pool_##W##_##I##_0;                                              \
    }                                                                           \
  }
TANDEM_POOL_DIMS(float, int32_t)
TANDEM_POOL_DIMS(float, int64_t)
TANDEM_POOL_DIMS(double, int32_t)
TANDEM_POOL_DIMS(double, int64_t)
#undef TANDEM_POOL_DIMS
#undef TANDEM_POOL

// [lo, hi) of `n` items for this OpenMP thread: contiguous, so that a thread steps
// through (table, sample) pairs in order.
inline void thread_range(int64_t n, int64_t& lo, int64_t& hi) {
  const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
  lo = n * me / threads;
  hi = n * (me + 1) / threads;
}

template <typename W, typename I>
int64_t forward(const EmbeddingBags& e, W* out) {
  const PoolJob<W, I> job{static_cast<const W*>(e.weight),
                          e.row_offsets,
                          e.rows,
                          static_cast<const I*>(e.indices),
                          static_cast<const I*>(e.offsets),
                          static_cast<const W*>(e.per_sample_weights),
                          e.dim,
                          e.batch,
                          e.tables * e.dim,
                          e.num_indices,
                          e.pooling == Pooling::kMean,
                          out};
  const auto fn = pool_for(job, e.dim);
  int64_t bad = INT64_MAX;
#pragma omp parallel reduction(min : bad)
  {
    int64_t lo, hi;
    thread_range(e.bags(), lo, hi);
    bad = std::min(bad, fn(job, lo, hi));
  }
  return bad == INT64_MAX ? -1 : bad;
}

/// One row's optimizer step: w -= lr * g (SGD), or row-wise Adagrad with its
/// accumulator *state.
template <typename W>
[[gnu::always_inline]] inline void update_row_impl(W* __restrict w, const W* __restrict g,
                                                   int64_t dim, W lr, W eps, W* state) {
  W step = lr;
  if (state) {
    W sq = 0;
    for (int64_t j = 0; j < dim; ++j) sq += g[j] * g[j];
    *state += sq / static_cast<W>(dim);
    step /= std::sqrt(*state) + eps;
  }
  for (int64_t j = 0; j < dim; ++j) w[j] -= step * g[j];
}
#define TANDEM_UPDATE_ROW(W)                                                                     \
  TANDEM_CPU_VARIANTS(void, update_row, (W * w, const W* g, int64_t dim, W lr, W eps, W* state), \
                      (w, g, dim, lr, eps, state), update_row_impl<W>)
TANDEM_UPDATE_ROW(float)
TANDEM_UPDATE_ROW(double)
#undef TANDEM_UPDATE_ROW

template <typename W>
void apply_row(const RowOptimizer& opt, int64_t dim, int64_t row, const W* g) {
  W* state = opt.update == RowUpdate::kRowwiseAdagrad ? static_cast<W*>(opt.state) + row : nullptr;
  update_row(static_cast<W*>(opt.weight) + row * dim, g, dim, static_cast<W>(opt.lr),
             static_cast<W>(opt.eps), state);
}

// Sorts one table's keys (row << 32 | k), pushed in increasing k, by row: a stable
// LSD radix sort on the row's bytes, as many as the largest row needs. Ties keep
// their increasing k, so the order is std::sort's on the whole keys, in O(n) per
// byte instead of O(n log n) (a batch's keys: 2-4 bytes of rows).
void sort_by_row(std::vector<uint64_t>& keys, std::vector<uint64_t>& scratch) {
  const size_t n = keys.size();
  uint64_t rows_or = 0;
  for (uint64_t k : keys) rows_or |= k;
  rows_or >>= 32;
  scratch.resize(n);
  for (int shift = 32; rows_or != 0; shift += 8, rows_or >>= 8) {
    size_t start[257] = {};
    for (uint64_t k : keys) ++start[((k >> shift) & 255) + 1];
    if (std::find(start + 1, start + 257, n) != start + 257) continue;  // one digit: in order
    for (int d = 0; d < 256; ++d) start[d + 1] += start[d];
    for (uint64_t k : keys) scratch[start[(k >> shift) & 255]++] = k;
    keys.swap(scratch);
  }
}

template <typename W, typename I>
int64_t backward(const EmbeddingBags& e, const W* grad_out, const RowOptimizer& opt,
                 int64_t* unique_rows, W* grad_rows) {
  const I* idx = static_cast<const I*>(e.indices);
  const W* psw = static_cast<const W*>(e.per_sample_weights);
  const int64_t T = e.tables, B = e.batch, D = e.dim;

  // Per table: key = (table-local row << 32) | k, where k numbers the table's valid
  // positions in order; sample[k] and scale[k] say where k's gradient comes from
  // and with what weight (per-sample weight, 1 / bag length for mean pooling).
  struct Table {
    std::vector<uint64_t> keys;
    std::vector<int64_t> sample;
    std::vector<W> scale;
    std::vector<int64_t> segments;  ///< start of each run of equal rows in keys
  };
  std::vector<Table> tables(T);
  const I* off = static_cast<const I*>(e.offsets);
#pragma omp parallel
  {
    std::vector<uint64_t> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < T; ++t) {
      Table& tb = tables[t];
      if (e.rows[t] >= (int64_t{1} << 32)) continue;  // checked below, outside the region
      const int64_t n = off[(t + 1) * B] - off[t * B];
      if (n > 0 && n < (int64_t{1} << 32)) {
        tb.keys.reserve(n);
        tb.sample.reserve(n);
        tb.scale.reserve(n);
      }
      for (int64_t b = 0; b < B; ++b) {
        int64_t begin, end;
        if (!bag_range<I>(e, t * B + b, begin, end)) continue;
        const W mean = e.pooling == Pooling::kMean ? W(1) / static_cast<W>(end - begin) : W(1);
        for (int64_t p = begin; p < end; ++p) {
          const int64_t r = idx[p];
          // A weight of 0 (an empty multi-hot slot) adds nothing: no row to sum into.
          if (r < 0 || r >= e.rows[t] || (psw && psw[p] == W(0))) continue;
          tb.keys.push_back((static_cast<uint64_t>(r) << 32) | tb.sample.size());
          tb.sample.push_back(b);
          tb.scale.push_back(psw ? psw[p] * mean : mean);
        }
      }
      sort_by_row(tb.keys, scratch);
      for (size_t k = 0; k < tb.keys.size(); ++k)
        if (k == 0 || (tb.keys[k] >> 32) != (tb.keys[k - 1] >> 32)) tb.segments.push_back(k);
      tb.segments.push_back(tb.keys.size());
    }
  }
  for (int64_t t = 0; t < T; ++t)
    if (e.rows[t] >= (int64_t{1} << 32) || tables[t].keys.size() >= (size_t{1} << 32))
      throw std::invalid_argument("embedding_bag: a table has 2^32 or more rows or indices");

  // Flatten the segments so that threads share the rows, not the tables.
  std::vector<int64_t> seg_table, seg_first{0};
  for (int64_t t = 0; t < T; ++t) {
    const int64_t n = static_cast<int64_t>(tables[t].segments.size()) - 1;
    seg_table.insert(seg_table.end(), n, t);
    seg_first.push_back(seg_first.back() + n);
  }
  const int64_t segments = seg_first.back();
  const int64_t stride = T * D;
  const auto row_of = [&](int64_t s) {
    const int64_t t = seg_table[s];
    const Table& tb = tables[t];
    return e.row_offsets[t] + static_cast<int64_t>(tb.keys[tb.segments[s - seg_first[t]]] >> 32);
  };
  const int64_t ahead = prefetch_distance<W>(D);
#pragma omp parallel
  {
    std::vector<W> acc(D);
#pragma omp for schedule(static)
    for (int64_t s = 0; s < segments; ++s) {
      const int64_t t = seg_table[s];
      const Table& tb = tables[t];
      const int64_t local = s - seg_first[t];
      // The update reads and writes a random table row (and its state).
      if (opt.update != RowUpdate::kNone && s + ahead < segments) {
        const int64_t next = row_of(s + ahead);
        prefetch_row(static_cast<const W*>(opt.weight) + next * D, D);
        if (opt.state) __builtin_prefetch(static_cast<const W*>(opt.state) + next);
      }
      std::fill(acc.begin(), acc.end(), W(0));
      for (int64_t k = tb.segments[local]; k < tb.segments[local + 1]; ++k) {
        // Sorted by row, the positions read grad_out's samples in random order:
        // its rows (batch x tables x dim, beyond the caches at large batches) are
        // fetched ahead too.
        if (k + ahead < static_cast<int64_t>(tb.keys.size()))
          prefetch_row(
              grad_out + tb.sample[static_cast<uint32_t>(tb.keys[k + ahead])] * stride + t * D, D);
        const uint32_t n = static_cast<uint32_t>(tb.keys[k]);
        axpy(acc.data(), grad_out + tb.sample[n] * stride + t * D, tb.scale[n], D);
      }
      const int64_t row = row_of(s);
      if (opt.update == RowUpdate::kNone) {
        unique_rows[s] = row;
        std::copy(acc.begin(), acc.end(), grad_rows + s * D);
      } else {
        apply_row<W>(opt, D, row, acc.data());
      }
    }
  }
  return segments;
}

template <typename W>
void update(const RowOptimizer& opt, int64_t dim, const int64_t* rows, const W* grads, int64_t n) {
  // The rows are scattered over the table: each would miss the cache, so the
  // rows (and accumulators) a few positions ahead are already on their way.
  const int64_t ahead = prefetch_distance<W>(dim);
  const W* weight = static_cast<const W*>(opt.weight);
  const W* state =
      opt.update == RowUpdate::kRowwiseAdagrad ? static_cast<const W*>(opt.state) : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    if (i + ahead < n) {
      prefetch_row(weight + rows[i + ahead] * dim, dim);
      if (state) __builtin_prefetch(state + rows[i + ahead]);
    }
    apply_row<W>(opt, dim, rows[i], grads + i * dim);
  }
}

void check_optimizer(const RowOptimizer& opt) {
  if (opt.update != RowUpdate::kNone && !opt.weight)
    throw std::invalid_argument("embedding_bag: an update needs the weight");
  if (opt.update == RowUpdate::kRowwiseAdagrad && !opt.state)
    throw std::invalid_argument("embedding_bag: row-wise Adagrad needs its state");
}

}  // namespace

int64_t embedding_bag_forward_cpu(const EmbeddingBags& e, void* out) {
  check(e);
  return dispatch_float_cpu(e.weight_type, "embedding_bag", [&](auto w) {
    using W = decltype(w);
    return dispatch_index(e.index_type, "embedding_bag",
                          [&](auto i) { return forward<W, decltype(i)>(e, static_cast<W*>(out)); });
  });
}

int64_t embedding_bag_backward_cpu(const EmbeddingBags& e, const void* grad_out,
                                   const RowOptimizer& opt, int64_t* unique_rows, void* grad_rows) {
  check(e);
  check_optimizer(opt);
  return dispatch_float_cpu(e.weight_type, "embedding_bag", [&](auto w) {
    using W = decltype(w);
    return dispatch_index(e.index_type, "embedding_bag", [&](auto i) {
      return backward<W, decltype(i)>(e, static_cast<const W*>(grad_out), opt, unique_rows,
                                      static_cast<W*>(grad_rows));
    });
  });
}

void rowwise_update_cpu(const RowOptimizer& opt, DType weight_type, int64_t dim,
                        const int64_t* rows, const void* grads, int64_t n) {
  check_optimizer(opt);
  dispatch_float_cpu(weight_type, "rowwise_update", [&](auto w) {
    using W = decltype(w);
    update<W>(opt, dim, rows, static_cast<const W*>(grads), n);
    return 0;
  });
}

}  // namespace tandem::kernels
