// Mergeable moments: accurate far from zero (against a float128 reference, where
// the textbook E[x^2] - mean^2 loses every digit), any split merges to the same
// result, missing values are counted, and the distributed merge over the ranks of
// the job equals one process over all the data. Runs as one process and under
// mpirun (2 and 4 ranks).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/harness.h"
#include "tandem/stats/moments.h"
#include "test_util.h"

namespace {

using tandem::stats::Moments;

// Two-pass variance of column 0 in float128: the reference.
double exact_variance(const at::Tensor& x) {
  const at::Tensor c = x.select(1, 0).to(at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  const int64_t n = c.numel();
  __float128 sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += p[i];
  const __float128 mean = sum / n;
  __float128 ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += (p[i] - mean) * (p[i] - mean);
  return static_cast<double>(ss / n);
}

double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

TEST(Moments, FarFromZeroAgainstFloat128AndTheNaiveFormulaFails) {
  at::manual_seed(1);
  const at::Tensor big = at::randn({1000000, 1}, at::kDouble) + 1e9;
  const double exact = exact_variance(big);
  const double ours = Moments::of(big).variance()[0].item<double>();
  EXPECT_LT(rel(ours, exact), 1e-9) << ours << " vs " << exact;
  // The textbook shortcut on the same float64 data.
  const double mean = big.mean().item<double>();
  const double naive = (big * big).mean().item<double>() - mean * mean;
  EXPECT_GT(rel(naive, exact), 1e-2) << "naive " << naive << " vs " << exact;

  const at::Tensor f32 = (at::randn({1000000, 1}, at::kDouble) + 1e4).to(at::kFloat);
  EXPECT_LT(rel(Moments::of(f32).variance()[0].item<double>(), exact_variance(f32)), 1e-6);
}

TEST(Moments, TrendsAndStepsKeepTheirDigits) {
  // A column that drifts (sorted, far from zero) and one that jumps inside a row
  // block: the blocked update shifts by each block's first value, so neither the
  // distance from the chunk's start nor a step within a block costs digits.
  const int64_t n = 100003;
  at::Tensor x = at::empty({n, 2}, at::kDouble);
  x.select(1, 0).copy_(at::arange(n, at::kDouble) * 1e-3 + 1e9);
  x.select(1, 1).copy_(at::where(at::arange(n).remainder(8) < 3, at::full({n}, 1e8, at::kDouble),
                                 at::full({n}, -1e8, at::kDouble)) +
                       at::randn({n}, at::kDouble));
  const at::Tensor v = Moments::of(x).variance();
  EXPECT_LT(rel(v[0].item<double>(), exact_variance(x)), 1e-9);
  EXPECT_LT(rel(v[1].item<double>(), exact_variance(x.slice(1, 1))), 1e-9);
}

TEST(Moments, MatchesAtenAndCountsMissingValues) {
  at::manual_seed(2);
  at::Tensor x = at::randn({5000, 7}, at::kDouble) * 3 + 2;
  x.index_put_({at::rand({5000, 7}) < 0.1}, std::nan(""));
  x.select(1, 6).fill_(std::nan(""));  // a column with no value at all
  const Moments m = Moments::of(x);
  for (int64_t j = 0; j < 6; ++j) {
    const at::Tensor col = x.select(1, j);
    const at::Tensor present = col.index({col.isnan().logical_not()});
    EXPECT_EQ(m.count[j].item<int64_t>(), present.numel());
    EXPECT_EQ(m.missing[j].item<int64_t>(), col.numel() - present.numel());
    EXPECT_NEAR(m.global_mean()[j].item<double>(), present.mean().item<double>(), 1e-12);
    EXPECT_LT(rel(m.variance()[j].item<double>(), present.var(false).item<double>()), 1e-12);
    EXPECT_EQ(m.min[j].item<double>(), present.min().item<double>());
    EXPECT_EQ(m.max[j].item<double>(), present.max().item<double>());
  }
  EXPECT_EQ(m.count[6].item<int64_t>(), 0);
  EXPECT_EQ(m.missing[6].item<int64_t>(), 5000);
  EXPECT_TRUE(std::isnan(m.variance()[6].item<double>()));
}

// Every CPU variant gives the same bits, with and without missing values, in
// float32 and float64, for a row count that leaves a partial block and chunk.
TEST(Moments, CpuVariantsGiveTheSameBits) {
  for (at::ScalarType type : {at::kFloat, at::kDouble})
    for (bool missing : {false, true}) {
      at::manual_seed(5);
      at::Tensor x = (at::randn({3077, 9}, at::kDouble) * 4 + 1e3).to(type);
      if (missing) x.index_put_({at::rand({3077, 9}) < 0.05}, std::nan(""));
      tandem::testing::expect_same_bits_on_every_cpu_isa([&] {
        const Moments m = Moments::of(x);
        return std::vector<at::Tensor>{m.count, m.global_mean(), m.variance(),
                                       m.min,   m.max,           m.missing};
      });
    }
}

// Any split, merged in any grouping, gives the same statistics: 1 to 4 parts,
// empty parts, and a part of one row against the rest.
TEST(Moments, AnySplitMergesToTheSame) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({20001, 5}, at::kDouble) * 0.5 + 1e6;
  const Moments whole = Moments::of(x);
  std::mt19937 rng(4);
  const std::vector<std::vector<int64_t>> fixed = {
      {0, 20001}, {1, 20000}, {20000, 0, 1}, {5000, 0, 5000, 10001}};
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<int64_t> sizes;
    if (trial < static_cast<int>(fixed.size())) {
      sizes = fixed[trial];
    } else {
      const int parts = 1 + trial % 4;
      int64_t left = 20001;
      for (int p = 0; p + 1 < parts; ++p) {
        sizes.push_back(std::uniform_int_distribution<int64_t>(0, left)(rng));
        left -= sizes.back();
      }
      sizes.push_back(left);
    }
    Moments acc = Moments::empty(5);
    int64_t at = 0;
    for (int64_t s : sizes) {
      acc = acc.merged(Moments::of(x.narrow(0, at, s)));
      at += s;
    }
    for (int64_t j = 0; j < 5; ++j) {
      EXPECT_EQ(acc.count[j].item<int64_t>(), 20001);
      EXPECT_LT(rel(acc.variance()[j].item<double>(), whole.variance()[j].item<double>()), 1e-12);
      EXPECT_LT(rel(acc.global_mean()[j].item<double>(), whole.global_mean()[j].item<double>()),
                1e-12);
      EXPECT_EQ(acc.min[j].item<double>(), whole.min[j].item<double>());
      EXPECT_EQ(acc.max[j].item<double>(), whole.max[j].item<double>());
    }
  }
}

// The job's ranks hold very different shards (rank 0 one row, the last rank the
// most, one rank possibly none); the merge equals one process over all of it and
// is identical on every rank.
TEST(Moments, DistributedMergeEqualsOneProcess) {
  auto comm = tandem::testing::world();
  at::manual_seed(5);
  const at::Tensor x = at::randn({30001, 3}, at::kDouble) + 1e9;  // same on every rank
  const int world = comm->size(), rank = comm->rank();
  std::vector<int64_t> bounds{0, 1};  // rank 0: one row
  for (int r = 1; r < world; ++r) bounds.push_back(r + 1 == world ? 30001 : 1 + 7 * r);
  if (world == 1) bounds = {0, 30001};
  const at::Tensor mine = x.narrow(0, bounds[rank], bounds[rank + 1] - bounds[rank]);
  const Moments merged = tandem::stats::allmerge(Moments::of(mine), *comm);
  const Moments whole = Moments::of(x);
  for (int64_t j = 0; j < 3; ++j) {
    EXPECT_EQ(merged.count[j].item<int64_t>(), 30001);
    EXPECT_LT(rel(merged.variance()[j].item<double>(), whole.variance()[j].item<double>()), 1e-12);
    EXPECT_LT(rel(merged.global_mean()[j].item<double>(), whole.global_mean()[j].item<double>()),
              1e-12);
  }
  // Identical bits on every rank.
  at::Tensor v = merged.variance().clone();
  at::Tensor lo = v.clone(), hi = v.clone();
  comm->allreduce(lo, tandem::comm::ReduceOp::kMin);
  comm->allreduce(hi, tandem::comm::ReduceOp::kMax);
  EXPECT_TRUE(at::equal(lo, hi));
}

TEST(MomentsCuda, MatchesCpu) {
  const std::string why = tandem::testing::cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "CUDA: " << why;
  at::manual_seed(6);
  at::Tensor x = at::randn({100003, 64}) + 1e4;
  x.index_put_({at::rand({100003, 64}) < 0.01}, std::nan(""));
  const Moments cpu = Moments::of(x), gpu = Moments::of(x.cuda());
  EXPECT_TRUE(at::equal(cpu.count, gpu.count));
  EXPECT_TRUE(at::equal(cpu.missing, gpu.missing));
  EXPECT_LE(tandem::testing::normalised_error(gpu.variance(), cpu.variance()), 1e-10);
  EXPECT_LE(tandem::testing::normalised_error(gpu.global_mean(), cpu.global_mean()), 1e-12);
}

}  // namespace
