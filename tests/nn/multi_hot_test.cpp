// Multi-hot tables (TableBatchedEmbedding with bag_sizes): the pooled vectors and
// the tables' gradient equal ATen's embedding_bag over the same ids, bag by bag,
// for sum and mean bags, on Tandem's kernels and on ATen's path.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tandem/data/schema.h"
#include "tandem/nn/embedding_bag.h"

namespace {

using tandem::nn::KernelChoice;
using tandem::nn::TableBatchedEmbedding;
using tandem::nn::TableBatchedEmbeddingOptions;

struct Case {
  std::vector<int64_t> rows{7, 50, 9};  ///< table rows
  std::vector<int64_t> bags{1, 4, 3};   ///< slots per table
  std::vector<bool> mean{false, false, true};
};

// [n, slots] ids: every bag holds 0..bags[t] ids (table 0 always 1), repeats
// allowed, the rest of its slots kNoId.
at::Tensor random_ids(const Case& c, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t slots = 0;
  for (int64_t b : c.bags) slots += b;
  at::Tensor ids = at::full({n, slots}, tandem::data::Schema::kNoId, at::kLong);
  for (int64_t i = 0; i < n; ++i) {
    int64_t s = 0;
    for (size_t t = 0; t < c.rows.size(); ++t) {
      const int64_t k = c.bags[t] == 1 ? 1 : static_cast<int64_t>(rng() % (c.bags[t] + 1));
      for (int64_t j = 0; j < k; ++j)
        ids[i][s + j] = static_cast<int64_t>(rng() % static_cast<uint64_t>(c.rows[t]));
      s += c.bags[t];
    }
  }
  return ids;
}

// ATen's embedding_bag, one table at a time, over the ids present: [n, tables, dim],
// and the gradient of (out * grad_out).sum() for the stacked weight.
std::pair<at::Tensor, at::Tensor> reference(const Case& c, const at::Tensor& weight,
                                            const at::Tensor& ids, const at::Tensor& grad_out) {
  const at::Tensor w = weight.detach().clone().requires_grad_(true);
  std::vector<at::Tensor> pooled;
  int64_t slot = 0, first_row = 0;
  for (size_t t = 0; t < c.rows.size(); ++t) {
    const at::Tensor part = ids.narrow(1, slot, c.bags[t]);
    std::vector<int64_t> flat, offsets;
    for (int64_t i = 0; i < ids.size(0); ++i) {
      offsets.push_back(static_cast<int64_t>(flat.size()));
      for (int64_t j = 0; j < c.bags[t]; ++j)
        if (part[i][j].item<int64_t>() != tandem::data::Schema::kNoId)
          flat.push_back(part[i][j].item<int64_t>());
    }
    pooled.push_back(std::get<0>(
        at::embedding_bag(w.narrow(0, first_row, c.rows[t]), at::tensor(flat, at::kLong),
                          at::tensor(offsets, at::kLong), false, c.mean[t] ? 1 : 0)));
    slot += c.bags[t];
    first_row += c.rows[t];
  }
  const at::Tensor out = at::stack(pooled, 1);
  (out * grad_out).sum().backward();
  return {out.detach(), w.grad()};
}

void expect_matches_aten(KernelChoice kernels, at::ScalarType type, double tol,
                         const at::Device& device = at::kCPU) {
  SCOPED_TRACE(::testing::Message() << (kernels == KernelChoice::kTandem ? "tandem" : "aten")
                                    << " kernels, " << at::toString(type) << ", " << device);
  const Case c;
  TableBatchedEmbeddingOptions o;
  o.table_rows = c.rows;
  o.dim = 5;
  o.kernels = kernels;
  o.init_seed = 3;
  o.bag_sizes = c.bags;
  o.mean_bags = c.mean;
  TableBatchedEmbedding tables(o);
  tables->to(device);
  tables->weight.set_data(tables->weight.to(type));  // Module::to would convert the int64 buffers
  const int64_t n = 41;
  const at::Tensor ids = random_ids(c, n, 17);
  // Some bags are empty, some repeat an id: the cases that differ from one id each.
  ASSERT_TRUE((ids.narrow(1, 1, 4) == tandem::data::Schema::kNoId).all(1).any().item<bool>());
  const at::Tensor grad_out = at::randn({n, 3, 5}, at::TensorOptions().dtype(type));
  const at::Tensor out_on = tables->forward(ids.to(device));
  (out_on * grad_out.to(device)).sum().backward();
  const at::Tensor out = out_on.cpu();
  const auto [want, want_grad] = reference(c, tables->weight.cpu(), ids, grad_out);
  EXPECT_TRUE(at::allclose(out, want, tol, tol)) << (out - want).abs().max();
  // An empty bag pools to exactly zero.
  for (int64_t i = 0; i < n; ++i)
    if ((ids[i].narrow(0, 1, 4) == tandem::data::Schema::kNoId).all().item<bool>())
      EXPECT_TRUE(at::equal(out[i][1], at::zeros({5}, out.options()))) << "sample " << i;
  const at::Tensor g = tables->weight.grad().cpu();
  ASSERT_TRUE(g.defined());
  const at::Tensor dense = g.is_sparse() ? g.to_dense() : g;
  EXPECT_TRUE(at::allclose(dense, want_grad, tol, tol)) << (dense - want_grad).abs().max();
}

}  // namespace

TEST(EmbeddingBagMultiHot, SumAndMeanBagsMatchAtenEmbeddingBag) {
  at::manual_seed(5);
  for (KernelChoice k : {KernelChoice::kTandem, KernelChoice::kAten}) {
    expect_matches_aten(k, at::kDouble, 1e-12);
    expect_matches_aten(k, at::kFloat, 1e-5);
    if (at::hasCUDA()) {  // the GPU machine's run (launch/gpu-check.sh)
      expect_matches_aten(k, at::kDouble, 1e-12, at::kCUDA);
      expect_matches_aten(k, at::kFloat, 1e-5, at::kCUDA);
    }
  }
}

TEST(EmbeddingBagMultiHot, BadIdsAndShapesAreRefused) {
  const Case c;
  TableBatchedEmbeddingOptions o;
  o.table_rows = c.rows;
  o.dim = 2;
  o.bag_sizes = c.bags;
  o.mean_bags = c.mean;
  TableBatchedEmbedding tables(o);
  at::Tensor ids = random_ids(c, 4, 1);
  EXPECT_THROW(tables->forward(ids.narrow(1, 0, 7)), std::exception);  // 7 slots, not 8
  ids[2][1] = 50;                                                      // table 1 has rows 0-49
  EXPECT_THROW(tables->forward(ids), std::exception);
  ids[2][1] = -2;  // only -1 marks an empty slot
  EXPECT_THROW(tables->forward(ids), std::exception);
  o.bag_sizes = {1, 2};
  EXPECT_THROW(TableBatchedEmbedding{o}, std::exception);
}
