// SyncBatchNorm over the job's ranks equals one process normalizing the whole
// batch: forward outputs, input gradients, weight/bias gradients (summed across
// ranks, as the reducer does) and running statistics, with equal and with uneven
// slices (one rank may hold no rows). Runs as one process and under mpirun.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tandem/comm/single_communicator.h"
#include "tandem/nn/sync_batch_norm.h"
#include "test_util.h"

namespace {

namespace tn = tandem::nn;

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

// Slices of `total` rows for `world` ranks: `pattern` repeated, the last rank
// taking the rest.
std::vector<int64_t> slices(int world, int64_t total, const std::vector<int64_t>& pattern) {
  std::vector<int64_t> sizes;
  int64_t used = 0;
  for (int r = 0; r + 1 < world; ++r) {
    sizes.push_back(std::min(pattern[r % pattern.size()], total - used));
    used += sizes.back();
  }
  sizes.push_back(total - used);
  return sizes;
}

void check(const std::vector<int64_t>& pattern) {
  auto comm = tandem::testing::world();
  const int world = comm->size(), rank = comm->rank();
  const int64_t total = 32, features = 6;
  at::manual_seed(7);  // the same global batch on every rank
  const at::Tensor x = at::randn({total, features}) * 2 + 5;
  const at::Tensor r = at::randn({total, features});  // the loss is sum(y * r)
  const std::vector<int64_t> sizes = slices(world, total, pattern);
  int64_t first = 0;
  for (int k = 0; k < rank; ++k) first += sizes[k];

  auto single = tandem::comm::make_single_communicator();
  tn::SyncBatchNorm ref(features, single.get());
  tn::SyncBatchNorm dist(features, comm.get());
  {
    at::NoGradGuard g;
    for (auto* m : {&ref, &dist}) {
      (*m)->weight.copy_(at::linspace(0.5, 2, features));
      (*m)->bias.copy_(at::linspace(-1, 1, features));
    }
  }
  const at::Tensor xr = x.clone().requires_grad_();
  const at::Tensor yr = ref(xr);
  (yr * r).sum().backward();

  const at::Tensor xd = x.narrow(0, first, sizes[rank]).clone().requires_grad_();
  const at::Tensor yd = dist(xd);
  (yd * r.narrow(0, first, sizes[rank])).sum().backward();

  if (sizes[rank] > 0) EXPECT_LT(rel_err(yd, yr.narrow(0, first, sizes[rank])), 1e-5);
  if (sizes[rank] > 0) EXPECT_LT(rel_err(xd.grad(), xr.grad().narrow(0, first, sizes[rank])), 1e-5);
  at::Tensor dw = dist->weight.grad().clone(), db = dist->bias.grad().clone();
  comm->allreduce(dw, tandem::comm::ReduceOp::kSum);
  comm->allreduce(db, tandem::comm::ReduceOp::kSum);
  EXPECT_LT(rel_err(dw, ref->weight.grad()), 1e-5);
  EXPECT_LT(rel_err(db, ref->bias.grad()), 1e-5);
  EXPECT_LT(rel_err(dist->running_mean, ref->running_mean), 1e-5);
  EXPECT_LT(rel_err(dist->running_var, ref->running_var), 1e-5);
  // Identical running statistics on every rank.
  at::Tensor lo = dist->running_var.clone(), hi = dist->running_var.clone();
  comm->allreduce(lo, tandem::comm::ReduceOp::kMin);
  comm->allreduce(hi, tandem::comm::ReduceOp::kMax);
  EXPECT_TRUE(at::equal(lo, hi));
  // Eval mode uses the running statistics and no communication.
  dist->eval();
  ref->eval();
  at::NoGradGuard g;
  EXPECT_LT(rel_err(dist(x), ref(x)), 1e-5);
}

TEST(SyncBatchNorm, EqualSlicesMatchOneProcess) { check({8}); }

TEST(SyncBatchNorm, UnevenSlicesAndAnEmptyRankMatchOneProcess) { check({5, 11, 0, 16}); }

}  // namespace
