// Tandem's embedding bag against ATen's (at::embedding_bag, float64 on the CPU) on
// every backend: forward, the row-wise sparse backward, the fused optimizers, edge
// cases, bad input, finite differences and bit-for-bit determinism.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "kernels/embedding_bag.h"
#include "kernels/harness.h"
#include "tandem/nn/embedding_bag.h"
#include "tandem/util/error.h"

namespace {

using tandem::kernels::Pooling;
using tandem::kernels::RowUpdate;
using tandem::testing::Backend;
using tandem::testing::kernel_backends;
using tandem::testing::normalised_error;
using tandem::testing::same_bits;
using tandem::testing::tolerance;
namespace tk = tandem::kernels;
namespace tn = tandem::nn;

// One call's inputs, on the CPU: table-major bags of table-local indices.
struct Problem {
  std::vector<int64_t> table_rows;
  int64_t dim = 4;
  int64_t batch = 0;
  at::Tensor indices;  // int64
  at::Tensor offsets;  // int64 [T * batch + 1]
  at::Tensor psw;      // float64 [indices] or undefined
  Pooling pooling = Pooling::kSum;

  int64_t tables() const { return static_cast<int64_t>(table_rows.size()); }
  int64_t total_rows() const {
    int64_t n = 0;
    for (int64_t r : table_rows) n += r;
    return n;
  }
};

// Bags from explicit per-bag lists (table-major).
Problem from_bags(std::vector<int64_t> table_rows, int64_t dim, int64_t batch,
                  const std::vector<std::vector<int64_t>>& bags) {
  Problem p{std::move(table_rows), dim, batch};
  std::vector<int64_t> idx, off{0};
  for (const auto& bag : bags) {
    idx.insert(idx.end(), bag.begin(), bag.end());
    off.push_back(static_cast<int64_t>(idx.size()));
  }
  p.indices = at::tensor(idx, at::kLong);
  p.offsets = at::tensor(off, at::kLong);
  return p;
}

// Random bag lengths in [0, max_len], random rows; optional per-sample weights.
Problem random_problem(std::vector<int64_t> table_rows, int64_t dim, int64_t batch, int64_t max_len,
                       uint32_t seed, bool weighted = false, Pooling pooling = Pooling::kSum) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int64_t>> bags;
  for (size_t t = 0; t < table_rows.size(); ++t)
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<int64_t> bag(std::uniform_int_distribution<int64_t>(0, max_len)(rng));
      for (auto& i : bag) i = std::uniform_int_distribution<int64_t>(0, table_rows[t] - 1)(rng);
      bags.push_back(bag);
    }
  Problem p = from_bags(std::move(table_rows), dim, batch, bags);
  p.pooling = pooling;
  if (weighted) p.psw = at::rand({p.indices.numel()}, at::kDouble) + 0.5;
  return p;
}

at::Tensor random_weight(const Problem& p, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({p.total_rows(), p.dim}, at::kDouble);
}

// ATen's embedding bag in float64 on the CPU, laid out as Tandem's output.
at::Tensor reference_forward(const Problem& p, const at::Tensor& weight) {
  const int64_t T = p.tables(), B = p.batch;
  if (T * B == 0) return at::zeros({B, T * p.dim}, at::kDouble);
  std::vector<int64_t> first;
  int64_t at = 0;
  for (int64_t r : p.table_rows) {
    first.push_back(at);
    at += r;
  }
  const at::Tensor lengths = p.offsets.narrow(0, 1, T * B) - p.offsets.narrow(0, 0, T * B);
  const at::Tensor table_of_bag = at::arange(T, at::kLong).repeat_interleave(B);
  const at::Tensor base = at::tensor(first, at::kLong).index_select(0, table_of_bag);
  const at::Tensor ids = p.indices + base.repeat_interleave(lengths);
  const at::Tensor out =
      std::get<0>(at::embedding_bag(weight, ids, p.offsets.narrow(0, 0, T * B), false,
                                    p.pooling == Pooling::kMean ? 1 : 0, false, p.psw));
  return out.view({T, B, p.dim}).permute({1, 0, 2}).reshape({B, T * p.dim});
}

// The dense float64 gradient of sum(forward * grad_out), by ATen's autograd.
at::Tensor reference_grad(const Problem& p, const at::Tensor& weight, const at::Tensor& grad_out) {
  const at::Tensor w = weight.detach().clone().requires_grad_();
  const at::Tensor loss = (reference_forward(p, w) * grad_out).sum();
  if (!loss.requires_grad()) return at::zeros_like(weight);  // no bags or no indices
  loss.backward();
  return w.grad().defined() ? w.grad() : at::zeros_like(weight);
}

// The problem's tensors on a backend, with the chosen weight and index dtypes.
struct OnDevice {
  at::Tensor weight;
  tn::TableLayout layout;
  tn::Bags bags;
};

OnDevice on(const Problem& p, const at::Tensor& weight, const Backend& b,
            at::ScalarType wtype = at::kFloat, at::ScalarType itype = at::kLong) {
  OnDevice d{weight.to(b.device, wtype).contiguous(),
             tn::TableLayout::stacked(p.table_rows, b.device),
             {}};
  d.bags.indices = p.indices.to(b.device, itype);
  d.bags.offsets = p.offsets.to(b.device, itype);
  if (p.psw.defined())
    d.bags.per_sample_weights = p.psw.to(b.device, wtype == at::kDouble ? at::kDouble : at::kFloat);
  d.bags.batch = p.batch;
  d.bags.pooling = p.pooling;
  return d;
}

// Sparse (rows, grads) -> dense [total_rows, dim] float64 on the CPU.
at::Tensor densify(const std::pair<at::Tensor, at::Tensor>& g, int64_t rows, int64_t dim) {
  return at::zeros({rows, dim}, at::kDouble)
      .index_add_(0, g.first.to(at::kCPU), g.second.to(at::kCPU, at::kDouble));
}

// Forward and sparse backward on every backend against ATen; rows must be the
// touched rows, unique and ascending.
void check_against_aten(const Problem& p, at::ScalarType wtype = at::kFloat,
                        at::ScalarType itype = at::kLong) {
  const at::Tensor w = random_weight(p, 7);
  const at::Tensor ref = reference_forward(p, w);
  at::manual_seed(8);
  const at::Tensor gout = at::randn(ref.sizes(), at::kDouble);
  const at::Tensor ref_grad = reference_grad(p, w, gout);
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    OnDevice d = on(p, w, b, wtype, itype);
    const at::Tensor out = tn::embedding_bag_forward(d.weight, d.layout, d.bags);
    EXPECT_LE(normalised_error(out, ref), tolerance(wtype));
    const auto g = tn::embedding_bag_backward(gout.to(b.device, out.scalar_type()), d.weight,
                                              d.layout, d.bags);
    EXPECT_LE(normalised_error(densify(g, p.total_rows(), p.dim), ref_grad), tolerance(wtype));
    // Exactly the rows that some valid position touched, once each, ascending.
    const at::Tensor rows = g.first.to(at::kCPU);
    if (p.indices.numel() > 0 && p.tables() * p.batch > 0) {
      const at::Tensor touched = std::get<0>(
          at::_unique(reference_grad(p, w, at::ones_like(ref)).abs().sum(1).nonzero().view(-1)));
      // (A touched row whose gradient cancels to exactly zero would break this;
      // random float64 weights make that impossible in practice.)
      EXPECT_TRUE(at::equal(rows, touched));
    }
  }
}

// Every CPU variant (baseline, AVX2, AVX-512) gives the same bits: forward for a
// compile-time row length and the generic one, sum and mean, weighted bags, float
// and double; the sparse backward; the fused row-wise Adagrad.
TEST(EmbeddingBag, CpuVariantsGiveTheSameBits) {
  const Backend cpu{"cpu", c10::Device(at::kCPU)};
  for (int64_t dim : {8, 13})
    for (at::ScalarType wtype : {at::kFloat, at::kDouble})
      for (Pooling pooling : {Pooling::kSum, Pooling::kMean}) {
        SCOPED_TRACE(::testing::Message() << "dim " << dim << " " << c10::toString(wtype)
                                          << (pooling == Pooling::kMean ? " mean" : " sum"));
        const Problem p =
            random_problem({300, 70, 5}, dim, 64, 6, 21, pooling == Pooling::kSum, pooling);
        const at::Tensor w = random_weight(p, 22);
        at::manual_seed(23);
        const at::Tensor gout = at::randn({p.batch, p.tables() * dim}, wtype);
        const int variants = tandem::testing::expect_same_bits_on_every_cpu_isa([&] {
          OnDevice d = on(p, w.clone(), cpu, wtype);  // the update writes the weight
          const at::Tensor out = tn::embedding_bag_forward(d.weight, d.layout, d.bags);
          const auto g = tn::embedding_bag_backward(gout, d.weight, d.layout, d.bags);
          tn::RowOptimizer opt{RowUpdate::kRowwiseAdagrad, 0.1, 1e-8,
                               at::full({p.total_rows()}, 0.25, wtype)};
          tn::embedding_bag_backward_update(gout, d.weight, d.layout, d.bags, opt);
          return std::vector<at::Tensor>{out, g.first, g.second, d.weight, opt.state};
        });
        EXPECT_GE(variants, 1);
      }
}

TEST(EmbeddingBag, MatchesAtenOnRandomBags) {
  for (Pooling pooling : {Pooling::kSum, Pooling::kMean})
    for (at::ScalarType itype : {at::kLong, at::kInt}) {
      SCOPED_TRACE(::testing::Message()
                   << "mean " << (pooling == Pooling::kMean) << " itype " << c10::toString(itype));
      check_against_aten(random_problem({50, 7, 300}, 16, 33, 6, 1, false, pooling), at::kFloat,
                         itype);
    }
}

TEST(EmbeddingBag, PerSampleWeights) {
  check_against_aten(random_problem({40, 40}, 8, 20, 5, 2, /*weighted=*/true));
}

TEST(EmbeddingBag, Float64) {
  check_against_aten(random_problem({30, 9}, 5, 12, 4, 3, true), at::kDouble);
}

TEST(EmbeddingBag, EdgeCases) {
  {
    SCOPED_TRACE("empty bags, bags of one, duplicates in a bag and across bags");
    check_against_aten(from_bags({10, 10}, 4, 3, {{}, {3}, {3, 3, 3}, {0, 9, 0}, {}, {5}}));
  }
  {
    SCOPED_TRACE("one row hit by every bag (heavy contention)");
    std::vector<std::vector<int64_t>> bags(2 * 500, std::vector<int64_t>{4, 4});
    check_against_aten(from_bags({8, 8}, 16, 500, bags));
  }
  for (int64_t dim : {1, 3, 1000}) {
    SCOPED_TRACE(::testing::Message() << "dim " << dim);
    check_against_aten(random_problem({20, 31}, dim, 9, 4, 4));
  }
  {
    SCOPED_TRACE("zero batch");
    check_against_aten(random_problem({20, 31}, 4, 0, 4, 5));
  }
  {
    SCOPED_TRACE("every bag empty");
    check_against_aten(random_problem({20, 31}, 4, 6, 0, 6));
  }
  {
    SCOPED_TRACE("mean of empty and weighted-by-one bags");
    Problem p = from_bags({6}, 3, 4, {{}, {1}, {1, 2}, {}});
    p.pooling = Pooling::kMean;
    check_against_aten(p);
  }
}

TEST(EmbeddingBag, IndexOutOfRangeNamesTableBagAndIndex) {
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    for (int64_t bad : {10, -1}) {
      // Table 1 has 10 rows; bag 1 * 2 + 1 (sample 1) holds the bad index.
      const Problem p = from_bags({5, 10}, 4, 2, {{0}, {4}, {9}, {3, bad}});
      OnDevice d = on(p, random_weight(p, 1), b);
      try {
        tn::embedding_bag_forward(d.weight, d.layout, d.bags);
        ADD_FAILURE() << "no error for index " << bad;
      } catch (const tandem::DataError& e) {
        EXPECT_STREQ(e.what(), ("embedding_bag: table 1, bag 3 (sample 1), position 4: index " +
                                std::to_string(bad) + " is outside the table's 10 rows")
                                   .c_str());
      }
    }
    // Offsets out of order or past the indices: named, never read.
    Problem p = from_bags({5}, 4, 2, {{0}, {1}});
    p.offsets = at::tensor({0, 5, 2}, at::kLong);
    OnDevice d = on(p, random_weight(p, 1), b);
    EXPECT_THROW(
        {
          try {
            tn::embedding_bag_forward(d.weight, d.layout, d.bags);
          } catch (const tandem::DataError& e) {
            EXPECT_NE(std::string(e.what()).find("table 0, bag 0 (sample 0): offsets [0, 5)"),
                      std::string::npos)
                << e.what();
            throw;
          }
        },
        tandem::DataError);
  }
}

TEST(EmbeddingBag, BadShapesAndDtypesAreErrors) {
  const Problem p = random_problem({5, 5}, 4, 3, 2, 9);
  OnDevice d = on(p, random_weight(p, 1), kernel_backends()[0]);
  tn::Bags wrong = d.bags;
  wrong.batch = 4;  // offsets no longer match
  EXPECT_THROW(tn::embedding_bag_forward(d.weight, d.layout, wrong), tandem::Error);
  wrong = d.bags;
  wrong.offsets = wrong.offsets.to(at::kInt);  // mixed index dtypes
  EXPECT_THROW(tn::embedding_bag_forward(d.weight, d.layout, wrong), tandem::Error);
  wrong = d.bags;
  wrong.per_sample_weights = at::ones({p.indices.numel()}, at::kFloat);
  wrong.pooling = Pooling::kMean;  // weights need sum pooling
  EXPECT_THROW(tn::embedding_bag_forward(d.weight, d.layout, wrong), tandem::Error);
  EXPECT_THROW(tn::embedding_bag_forward(d.weight.to(at::kInt), d.layout, d.bags), tandem::Error);
}

// The fused optimizers against their closed forms on the dense reference
// gradient; untouched rows keep their exact bits; the unfused path
// (sparse gradient, then rowwise_update) gives the same bits as the fused one.
TEST(EmbeddingBag, FusedSgdAndRowwiseAdagrad) {
  const Problem p = random_problem({40, 25}, 12, 30, 3, 11);
  const at::Tensor w0 = random_weight(p, 3);
  at::manual_seed(4);
  const at::Tensor gout = at::randn({p.batch, p.tables() * p.dim}, at::kDouble);
  const at::Tensor g = reference_grad(p, w0, gout);
  const at::Tensor touched = g.abs().sum(1) > 0;
  const double lr = 0.3, eps = 1e-8;
  const at::Tensor s0 = at::rand({p.total_rows()}, at::kDouble);
  for (const Backend& b : kernel_backends()) {
    for (RowUpdate update : {RowUpdate::kSgd, RowUpdate::kRowwiseAdagrad}) {
      SCOPED_TRACE(b.name + (update == RowUpdate::kSgd ? " sgd" : " rowwise adagrad"));
      at::Tensor expected_w = w0.clone(), expected_s = s0.clone();
      if (update == RowUpdate::kSgd) {
        expected_w -= lr * g;
      } else {
        expected_s += touched.to(at::kDouble) * g.pow(2).mean(1);
        expected_w -= lr * g / (expected_s.sqrt() + eps).unsqueeze(1);
      }
      OnDevice fused = on(p, w0, b);
      tn::RowOptimizer opt{update, lr, eps, s0.to(b.device, at::kFloat)};
      tn::embedding_bag_backward_update(gout.to(b.device, at::kFloat), fused.weight, fused.layout,
                                        fused.bags, opt);
      EXPECT_LE(normalised_error(fused.weight, expected_w), 1e-6);
      const at::Tensor untouched = touched.logical_not().to(b.device);
      EXPECT_TRUE(same_bits(fused.weight.index({untouched}),
                            w0.to(b.device, at::kFloat).index({untouched})));
      if (update == RowUpdate::kRowwiseAdagrad) {
        EXPECT_LE(normalised_error(opt.state, expected_s), 1e-6);
      }

      OnDevice split = on(p, w0, b);
      tn::RowOptimizer opt2{update, lr, eps, s0.to(b.device, at::kFloat)};
      const auto sparse = tn::embedding_bag_backward(gout.to(b.device, at::kFloat), split.weight,
                                                     split.layout, split.bags);
      tn::rowwise_update(split.weight, opt2, sparse.first, sparse.second);
      EXPECT_TRUE(same_bits(split.weight, fused.weight));
      EXPECT_TRUE(same_bits(opt2.state, opt.state));
    }
  }
}

// Central differences of L = sum(forward(w) * R) in float64 against the sparse
// gradient, for sum and mean pooling and per-sample weights.
TEST(EmbeddingBag, FiniteDifferenceGradient) {
  for (bool mean : {false, true}) {
    SCOPED_TRACE(mean ? "mean" : "sum");
    const Problem p = random_problem({6, 5}, 3, 4, 3, 21, /*weighted=*/!mean,
                                     mean ? Pooling::kMean : Pooling::kSum);
    const at::Tensor w = random_weight(p, 5);
    at::manual_seed(6);
    const at::Tensor r = at::randn({p.batch, p.tables() * p.dim}, at::kDouble);
    for (const Backend& b : kernel_backends()) {
      SCOPED_TRACE(b.name);
      OnDevice d = on(p, w, b, at::kDouble);
      const at::Tensor analytic =
          densify(tn::embedding_bag_backward(r.to(b.device), d.weight, d.layout, d.bags),
                  p.total_rows(), p.dim);
      const auto loss = [&](const at::Tensor& wt) {
        OnDevice x = on(p, wt, b, at::kDouble);
        return (tn::embedding_bag_forward(x.weight, x.layout, x.bags).to(at::kCPU) * r)
            .sum()
            .item<double>();
      };
      const double h = 1e-6;
      at::Tensor numeric = at::zeros_like(w);
      for (int64_t i = 0; i < w.numel(); ++i) {
        at::Tensor plus = w.clone(), minus = w.clone();
        plus.view(-1)[i] += h;
        minus.view(-1)[i] -= h;
        numeric.view(-1)[i] = (loss(plus) - loss(minus)) / (2 * h);
      }
      EXPECT_LE((analytic - numeric).abs().max().item<double>(), 1e-7);
    }
  }
}

// The same inputs give the same bits twice, and (CPU) with 1 or 2 threads.
TEST(EmbeddingBag, BackwardIsDeterministic) {
  // Heavy duplication: few rows, long bags, so many contributions per row.
  const Problem p = random_problem({7, 3}, 33, 400, 20, 31);
  const at::Tensor w = random_weight(p, 1);
  at::manual_seed(2);
  const at::Tensor gout = at::randn({p.batch, p.tables() * p.dim}, at::kDouble);
  const int threads = at::get_num_threads();
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    OnDevice d = on(p, w, b);
    const at::Tensor go = gout.to(b.device, at::kFloat);
    at::set_num_threads(1);
    const auto first = tn::embedding_bag_backward(go, d.weight, d.layout, d.bags);
    at::set_num_threads(2);
    const auto second = tn::embedding_bag_backward(go, d.weight, d.layout, d.bags);
    const auto third = tn::embedding_bag_backward(go, d.weight, d.layout, d.bags);
    EXPECT_TRUE(same_bits(first.first, second.first));
    EXPECT_TRUE(same_bits(first.second, second.second));
    EXPECT_TRUE(same_bits(second.second, third.second));
  }
  at::set_num_threads(threads);
}

// The CPU backward sorts each table's positions by row with a radix sort over the
// bytes the largest row needs, skipping a byte all rows share. Rows spread over
// all four bytes of a 2^32 - 1 row table (no weight is read without an update)
// come out ascending, each summed in position order: the same bits as a plain sum
// in that order. The second table's rows share their high bytes.
TEST(EmbeddingBag, CpuBackwardSortsRowsOfEveryByteInPositionOrder) {
  const int64_t rows[] = {(int64_t{1} << 32) - 1, 70000};
  const int64_t row_offsets[] = {0, rows[0]};
  const int64_t B = 300, D = 5;
  std::mt19937_64 rng(5);
  std::vector<int64_t> idx, off{0};
  const int64_t picks[] = {0, 1, 255, 256, 65535, 65536, 0x00FF0000, 0x12345678, rows[0] - 1};
  for (int t = 0; t < 2; ++t)
    for (int64_t b = 0; b < B; ++b) {
      for (uint64_t k = rng() % 5; k > 0; --k)
        idx.push_back(t == 0
                          ? (rng() % 2 ? picks[rng() % 9] : static_cast<int64_t>(rng() % rows[0]))
                          : 65536 + static_cast<int64_t>(rng() % 8));
      off.push_back(static_cast<int64_t>(idx.size()));
    }
  at::manual_seed(6);
  const at::Tensor gout = at::randn({B, 2 * D});
  tk::EmbeddingBags e;
  e.total_rows = rows[0] + rows[1];
  e.dim = D;
  e.tables = 2;
  e.batch = B;
  e.row_offsets = row_offsets;
  e.rows = rows;
  e.indices = idx.data();
  e.offsets = off.data();
  e.num_indices = static_cast<int64_t>(idx.size());
  std::vector<int64_t> unique(idx.size());
  std::vector<float> grads(idx.size() * D);
  const int64_t n =
      tk::embedding_bag_backward_cpu(e, gout.data_ptr<float>(), {}, unique.data(), grads.data());
  // The reference: per table, rows ascending, each row's contributions in position order.
  std::vector<int64_t> want_rows;
  std::vector<float> want;
  const float* go = gout.data_ptr<float>();
  for (int t = 0; t < 2; ++t) {
    std::map<int64_t, std::vector<float>> sums;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = off[t * B + b]; p < off[t * B + b + 1]; ++p) {
        std::vector<float>& acc = sums[idx[p]];
        acc.resize(D, 0.f);
        for (int64_t j = 0; j < D; ++j) acc[j] += go[b * 2 * D + t * D + j];
      }
    for (const auto& [row, acc] : sums) {
      want_rows.push_back(row_offsets[t] + row);
      want.insert(want.end(), acc.begin(), acc.end());
    }
  }
  ASSERT_EQ(n, static_cast<int64_t>(want_rows.size()));
  EXPECT_EQ(std::vector<int64_t>(unique.begin(), unique.begin() + n), want_rows);
  EXPECT_EQ(std::vector<float>(grads.begin(), grads.begin() + n * D), want);
}

// The autograd function: a coalesced sparse COO gradient on the weight, or with a
// fused optimizer no gradient and updated rows.
TEST(EmbeddingBag, AutogradGivesSparseGradientOrFusedUpdate) {
  const Problem p = random_problem({9, 9}, 4, 5, 3, 41);
  const at::Tensor w0 = random_weight(p, 1).to(at::kFloat);
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    OnDevice d = on(p, w0, b);
    const at::Tensor w = d.weight.clone().requires_grad_();
    tn::embedding_bag(w, d.layout, d.bags).sum().backward();
    ASSERT_TRUE(w.grad().is_sparse());
    // (LibTorch 1.13's gradient accumulation drops the coalesced flag that the
    // function sets; the rows are unique and sorted all the same.)
    const auto expected = tn::embedding_bag_backward(
        at::ones({p.batch, p.tables() * p.dim}, d.weight.options()), d.weight, d.layout, d.bags);
    EXPECT_TRUE(same_bits(w.grad()._indices().view(-1), expected.first));
    EXPECT_TRUE(same_bits(w.grad()._values(), expected.second));

    const at::Tensor wf = d.weight.clone().requires_grad_();
    tn::embedding_bag(wf, d.layout, d.bags, tn::RowOptimizer{RowUpdate::kSgd, 0.5})
        .sum()
        .backward();
    EXPECT_FALSE(wf.grad().defined());
    const at::Tensor dense = densify(expected, p.total_rows(), p.dim).to(b.device, at::kFloat);
    EXPECT_LE(normalised_error(wf.detach(), d.weight - 0.5 * dense), 1e-6);
  }
}

TEST(EmbeddingBagCuda, HalfAndBFloat16Weights) {
  const std::string why = tandem::testing::cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "CUDA: " << why;
  const Problem p = random_problem({100, 50}, 64, 32, 8, 51);
  for (at::ScalarType t : {at::kHalf, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(t));
    // The reference sees the weights after rounding to the storage type.
    const at::Tensor w = random_weight(p, 2).to(t).to(at::kDouble);
    const Backend cuda{"cuda", c10::Device(at::kCUDA, 0)};
    OnDevice d = on(p, w, cuda, t);
    const at::Tensor out = tn::embedding_bag_forward(d.weight, d.layout, d.bags);
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    EXPECT_LE(normalised_error(out, reference_forward(p, w)), 1e-5);  // float32 accumulation
  }
}

TEST(EmbeddingBag, DeferredCheckReportsABadCallAtTheNextOne) {
  // Table 1 has 10 rows; bag 3 (sample 1) holds index 10.
  const Problem bad = from_bags({5, 10}, 4, 2, {{0}, {4}, {9}, {3, 10}});
  const Problem good = from_bags({5, 10}, 4, 2, {{0}, {4}, {9}, {3, 8}});
  const std::string message =
      "embedding_bag: table 1, bag 3 (sample 1), position 4: index 10 is outside the table's 10 "
      "rows";
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    OnDevice g = on(good, random_weight(good, 1), b), d = on(bad, random_weight(bad, 1), b);
    tn::DeferredBagCheck check;
    auto forward = [&](const OnDevice& x) {
      try {
        tn::embedding_bag_forward(x.weight, x.layout, x.bags, &check);
      } catch (const tandem::DataError& e) {
        return std::string(e.what());
      }
      return std::string();
    };
    if (b.device.is_cpu()) {  // nothing to wait for: checked at once
      EXPECT_EQ(forward(d), message);
      continue;
    }
    EXPECT_EQ(forward(g), "");
    EXPECT_EQ(forward(d), "");
    EXPECT_EQ(forward(g), message);  // the previous call's error
    EXPECT_EQ(forward(d), "");
    EXPECT_THROW(check.check(), tandem::DataError);
    EXPECT_NO_THROW(check.check());  // reported once
    // The bad index was skipped: the bag holds row 3 of table 1 (row 5 + 3) alone.
    const at::Tensor out = tn::embedding_bag_forward(d.weight, d.layout, d.bags, &check).cpu();
    EXPECT_TRUE(at::equal(out[1].narrow(0, 4, 4), d.weight[8].cpu()));
    EXPECT_THROW(check.check(), tandem::DataError);
  }
}

TEST(EmbeddingBagCuda, MatchesCpuBitsForFloat32Sums) {
  const std::string why = tandem::testing::cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "CUDA: " << why;
  // Both sum each row's contributions in position order.
  const Problem p = random_problem({30, 20}, 40, 64, 6, 61);
  const at::Tensor w = random_weight(p, 3);
  at::manual_seed(4);
  const at::Tensor gout = at::randn({p.batch, p.tables() * p.dim}, at::kFloat);
  const auto cpu_d = on(p, w, kernel_backends()[0]);
  const auto cuda_d = on(p, w, {"cuda", c10::Device(at::kCUDA, 0)});
  const auto a = tn::embedding_bag_backward(gout, cpu_d.weight, cpu_d.layout, cpu_d.bags);
  const auto c = tn::embedding_bag_backward(gout.cuda(), cuda_d.weight, cuda_d.layout, cuda_d.bags);
  EXPECT_TRUE(same_bits(a.first, c.first));
  EXPECT_LE(normalised_error(c.second, a.second), 1e-6);
}

}  // namespace
