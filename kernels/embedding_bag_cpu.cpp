// CPU embedding bags: OpenMP over bags (forward) and over touched rows (backward).
// Backward sorts each table's (row, position) keys, then one thread sums each
// row's contributions in position order, so the bits never depend on the number
// of threads.
#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

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

template <typename I>
bool bag_range(const EmbeddingBags& e, int64_t bag, int64_t& begin, int64_t& end) {
  const I* off = static_cast<const I*>(e.offsets);
  begin = off[bag];
  end = off[bag + 1];
  return begin >= 0 && begin <= end && end <= e.num_indices;
}

template <typename W, typename I>
int64_t forward(const EmbeddingBags& e, W* out) {
  const W* weight = static_cast<const W*>(e.weight);
  const I* idx = static_cast<const I*>(e.indices);
  const W* psw = static_cast<const W*>(e.per_sample_weights);
  const int64_t D = e.dim, B = e.batch, stride = e.tables * e.dim;
  int64_t bad = INT64_MAX;
#pragma omp parallel for schedule(static) reduction(min : bad)
  for (int64_t bag = 0; bag < e.bags(); ++bag) {
    const int64_t t = bag / B;
    W* o = out + (bag % B) * stride + t * D;
    std::fill(o, o + D, W(0));
    int64_t begin, end;
    if (!bag_range<I>(e, bag, begin, end)) {
      bad = std::min(bad, bag);
      continue;
    }
    const int64_t rows = e.rows[t];
    const W* table = weight + e.row_offsets[t] * D;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t r = idx[p];
      if (r < 0 || r >= rows) {
        bad = std::min(bad, bag);
        continue;
      }
      const W s = psw ? psw[p] : W(1);
      const W* row = table + r * D;
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] += s * row[j];
    }
    if (e.pooling == Pooling::kMean && end > begin) {
      const W inv = W(1) / static_cast<W>(end - begin);
      for (int64_t j = 0; j < D; ++j) o[j] *= inv;
    }
  }
  return bad == INT64_MAX ? -1 : bad;
}

template <typename W>
void apply_row(const RowOptimizer& opt, int64_t dim, int64_t row, const W* g) {
  W* w = static_cast<W*>(opt.weight) + row * dim;
  W step = static_cast<W>(opt.lr);
  if (opt.update == RowUpdate::kRowwiseAdagrad) {
    W sq = 0;
    for (int64_t j = 0; j < dim; ++j) sq += g[j] * g[j];
    W& state = static_cast<W*>(opt.state)[row];
    state += sq / static_cast<W>(dim);
    step /= std::sqrt(state) + static_cast<W>(opt.eps);
  }
#pragma omp simd
  for (int64_t j = 0; j < dim; ++j) w[j] -= step * g[j];
}

template <typename W, typename I>
int64_t backward(const EmbeddingBags& e, const W* grad_out, const RowOptimizer& opt,
                 int64_t* unique_rows, W* grad_rows) {
  const I* idx = static_cast<const I*>(e.indices);
  const W* psw = static_cast<const W*>(e.per_sample_weights);
  const int64_t T = e.tables, B = e.batch, D = e.dim;

  // Per table: key = (table-local row << 32) | k, where k numbers the table's valid
  // positions in order; position[k] and bag[k] remember where k came from.
  struct Table {
    std::vector<uint64_t> keys;
    std::vector<int64_t> position, bag;
    std::vector<int64_t> segments;  ///< start of each run of equal rows in keys
  };
  std::vector<Table> tables(T);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < T; ++t) {
    Table& tb = tables[t];
    if (e.rows[t] >= (int64_t{1} << 32)) continue;  // checked below, outside the region
    for (int64_t bag = t * B; bag < (t + 1) * B; ++bag) {
      int64_t begin, end;
      if (!bag_range<I>(e, bag, begin, end)) continue;
      for (int64_t p = begin; p < end; ++p) {
        const int64_t r = idx[p];
        if (r < 0 || r >= e.rows[t]) continue;
        tb.keys.push_back((static_cast<uint64_t>(r) << 32) | tb.position.size());
        tb.position.push_back(p);
        tb.bag.push_back(bag);
      }
    }
    std::sort(tb.keys.begin(), tb.keys.end());
    for (size_t k = 0; k < tb.keys.size(); ++k)
      if (k == 0 || (tb.keys[k] >> 32) != (tb.keys[k - 1] >> 32)) tb.segments.push_back(k);
    tb.segments.push_back(tb.keys.size());
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
#pragma omp parallel
  {
    std::vector<W> acc(D);
#pragma omp for schedule(static)
    for (int64_t s = 0; s < segments; ++s) {
      const int64_t t = seg_table[s];
      const Table& tb = tables[t];
      const int64_t local = s - seg_first[t];
      std::fill(acc.begin(), acc.end(), W(0));
      for (int64_t k = tb.segments[local]; k < tb.segments[local + 1]; ++k) {
        const uint32_t n = static_cast<uint32_t>(tb.keys[k]);
        const int64_t p = tb.position[n], bag = tb.bag[n];
        W scale = psw ? psw[p] : W(1);
        if (e.pooling == Pooling::kMean) {
          const I* off = static_cast<const I*>(e.offsets);
          scale /= static_cast<W>(off[bag + 1] - off[bag]);
        }
        const W* g = grad_out + (bag % B) * stride + t * D;
#pragma omp simd
        for (int64_t j = 0; j < D; ++j) acc[j] += scale * g[j];
      }
      const int64_t row =
          e.row_offsets[t] + static_cast<int64_t>(tb.keys[tb.segments[local]] >> 32);
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
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) apply_row<W>(opt, dim, rows[i], grads + i * dim);
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
