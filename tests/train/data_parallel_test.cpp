// Data-parallel equivalence: W ranks with global batch B train exactly like one
// rank with batch B (SGD, no dropout, fixed seed), whatever the bucketing,
// overlap or gradient accumulation. Runs under mpirun with 2, 3 and 4 ranks; the
// one-rank reference is computed in the same process with the single backend.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "tandem/comm/single_communicator.h"
#include "tandem/data/generator.h"
#include "tandem/train/trainer.h"
#include "test_util.h"

using tandem::config::TrainConfig;
using tandem::train::Trainer;

namespace {

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override { data = generate("train.tsv", 2000, 11); }

  // Rank 0 writes generated rows into a directory every rank sees; collective.
  std::string generate(const std::string& name, int64_t rows, uint64_t seed) const {
    const std::string path = tandem::testing::shared_temp_dir(*comm, "dp") + "/" + name;
    if (comm->rank() == 0) {
      tandem::data::GenerateOptions g;
      g.rows = rows;
      g.seed = seed;
      g.out = path;
      g.cardinalities = {40};
      tandem::data::generate(g);
    }
    comm->barrier();
    return path;
  }

  TrainConfig config(int world) const {
    TrainConfig c;
    c.run.dir = "";
    c.train.device = "cpu";  // CPU semantics, also where a GPU exists
    c.run.seed = 99;
    c.data.train = data;
    c.data.eval_fraction = 0.1;
    c.data.block_rows = 64;
    c.model.embedding_dim = 4;
    c.model.bottom_mlp = "16";
    c.model.top_mlp = "16,8";
    c.model.embedding_rows = "37";
    c.model.dropout = 0.0;
    c.optim.name = "sgd";
    c.optim.lr = 0.5;
    c.train.steps = 20;
    c.train.batch_size = 32 - 32 % world;
    c.train.log_every = 0;
    return c;
  }

  // Trains `steps` steps and returns every parameter, in registration order.
  static std::vector<at::Tensor> train(Trainer& t, int64_t steps) {
    const int64_t spe = t.train_loader().steps_per_epoch();
    for (int64_t s = 0; s < steps; ++s) t.train_step(s / spe, s % spe, s);
    std::vector<at::Tensor> out;
    for (const at::Tensor& p : t.model()->parameters()) out.push_back(p.detach().clone());
    return out;
  }

  static void expect_close(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b,
                           double rtol) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      const double err = (a[i] - b[i]).abs().max().item<double>();
      const double scale = b[i].abs().max().item<double>();
      EXPECT_LE(err, rtol * std::max(scale, 1e-3)) << "parameter " << i;
    }
  }

  static void expect_identical(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "parameter " << i;
  }

  std::vector<at::Tensor> reference(TrainConfig c) const {
    auto single = tandem::comm::make_single_communicator();
    Trainer t(c, *single);
    return train(t, c.train.steps);
  }

  std::unique_ptr<tandem::comm::Communicator> comm = tandem::testing::world();
  std::string data;
};

TEST_F(DataParallel, RanksMatchOneRankWithTheWholeBatch) {
  // Both gradient paths: sparse embedding rows (allgatherv) and dense buckets; the
  // sparse rows from Tandem's kernels (whose one-rank reference fuses the update
  // into backward) and from ATen's.
  for (const auto& [kernels, sparse] : std::vector<std::pair<std::string, bool>>{
           {"tandem", true}, {"aten", true}, {"aten", false}}) {
    SCOPED_TRACE(kernels + (sparse ? " sparse embeddings" : " dense embeddings"));
    TrainConfig c = config(comm->size());
    c.model.kernels = kernels;
    c.model.sparse_embeddings = sparse;
    Trainer t(c, *comm);
    const auto params = train(t, c.train.steps);
    expect_close(params, reference(c), 1e-5);
    // Training moved every parameter (the test would be vacuous otherwise).
    Trainer fresh(c, *comm);
    const auto start = fresh.model()->parameters();
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_FALSE(at::equal(params[i], start[i])) << "parameter " << i;
  }
}

TEST_F(DataParallel, AdagradAndAdamMatchOneRank) {
  // Adagrad: row-wise on Tandem's kernels, element-wise on ATen's.
  for (const auto& [name, kernels] : std::vector<std::pair<std::string, std::string>>{
           {"adagrad", "tandem"}, {"adagrad", "aten"}, {"adam", "aten"}}) {
    SCOPED_TRACE(name + " " + kernels);
    TrainConfig c = config(comm->size());
    c.optim.name = name;
    c.optim.lr = 0.01;
    c.model.kernels = kernels;
    c.model.sparse_embeddings = name == "adagrad";
    Trainer t(c, *comm);
    expect_close(train(t, c.train.steps), reference(c), 1e-4);
  }
}

TEST_F(DataParallel, BucketedEqualsPerTensorAndOverlapChangesNothing) {
  TrainConfig c = config(comm->size());
  c.train.bucket_mb = 0.002;  // several buckets even for this small model
  c.train.first_bucket_mb = 0.0005;
  Trainer bucketed(c, *comm);
  const auto a = train(bucketed, c.train.steps);
  c.train.overlap = false;
  Trainer no_overlap(c, *comm);
  const auto b = train(no_overlap, c.train.steps);
  c.train.reduction = "per_tensor";
  Trainer per_tensor(c, *comm);
  const auto p = train(per_tensor, c.train.steps);
  // Two addends sum exactly whatever algorithm MPI picks. With more ranks, MPI
  // chooses its summation order by message size and by blocking/non-blocking call;
  // CTest pins both to recursive doubling (TANDEM_PINNED_ALLREDUCE, see
  // tests/CMakeLists.txt), and then the layouts give identical bits too.
  if (comm->size() <= 2 || std::getenv("TANDEM_PINNED_ALLREDUCE")) {
    expect_identical(a, b);
    expect_identical(a, p);
  } else {
    expect_close(a, b, 1e-6);
    expect_close(a, p, 1e-6);
  }
}

TEST_F(DataParallel, GradientAccumulationMatchesTheWholeBatch) {
  TrainConfig c = config(comm->size());
  c.train.accumulate = 2;
  Trainer t(c, *comm);
  const auto params = train(t, c.train.steps);
  TrainConfig ref = config(comm->size());
  expect_close(params, reference(ref), 1e-5);
}

TEST_F(DataParallel, EpochBoundaryAndShortLastBatch) {
  // 1800 training rows in batches of 32 (or 30): the last batch of the epoch is
  // short, and the ranks hold unequal slices of it.
  TrainConfig c = config(comm->size());
  c.train.steps = 0;
  c.train.epochs = 1;
  Trainer t(c, *comm);
  ASSERT_NE(t.train_loader().rows() % c.train.batch_size, 0);
  const auto params = train(t, t.total_steps());
  TrainConfig r = c;
  auto single = tandem::comm::make_single_communicator();
  Trainer ref(r, *single);
  expect_close(params, train(ref, ref.total_steps()), 1e-4);
}

// 1441 rows: the last global batch (of 32, or 30 with 3 ranks) holds one row, so
// every rank but rank 0 runs no backward in that step and its buckets are all
// launched in finish(). With dense embeddings, several buckets and overlap on,
// every rank must still issue the same collectives (or MPI would mismatch them).
TEST_F(DataParallel, RanksWithoutDataInTheLastBatch) {
  const std::string path = generate("short.tsv", 1441, 12);
  TrainConfig c = config(comm->size());
  c.data.train = c.data.eval = path;
  c.model.kernels = "aten";
  c.model.sparse_embeddings = false;
  c.train.bucket_mb = 0.002;
  c.train.first_bucket_mb = 0.0005;
  c.train.steps = 0;
  c.train.epochs = 1;
  Trainer t(c, *comm);
  ASSERT_EQ(t.train_loader().rows() % c.train.batch_size, 1);
  const auto params = train(t, t.total_steps());
  auto single = tandem::comm::make_single_communicator();
  Trainer ref(c, *single);
  expect_close(params, train(ref, ref.total_steps()), 1e-4);
}

// SyncBatchNorm in the bottom MLP: global-batch statistics, so N ranks still train
// like one rank with the whole batch (the short last batch leaves ranks without
// rows, which still join the statistics).
TEST_F(DataParallel, SyncBatchNormMatchesOneRank) {
  const std::string path = generate("short_bn.tsv", 1441, 13);
  TrainConfig c = config(comm->size());
  c.data.train = c.data.eval = path;
  c.model.sync_batch_norm = true;
  c.optim.lr = 0.1;
  c.train.steps = 0;
  c.train.epochs = 1;
  Trainer t(c, *comm);
  const auto params = train(t, t.total_steps());
  auto single = tandem::comm::make_single_communicator();
  Trainer ref(c, *single);
  expect_close(params, train(ref, ref.total_steps()), 1e-4);
  // The running statistics (buffers) agree too.
  const auto bufs = t.model()->buffers(), ref_bufs = ref.model()->buffers();
  ASSERT_EQ(bufs.size(), ref_bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i)
    if (bufs[i].is_floating_point())
      EXPECT_TRUE(at::allclose(bufs[i], ref_bufs[i], 1e-4, 1e-5)) << "buffer " << i;
}

TEST_F(DataParallel, ParametersStartEqualOnEveryRank) {
  const TrainConfig c = config(comm->size());
  Trainer t(c, *comm);
  for (at::Tensor p : t.model()->parameters()) {
    at::Tensor mx = p.detach().clone(), mn = p.detach().clone();
    comm->allreduce(mx, tandem::comm::ReduceOp::kMax);
    comm->allreduce(mn, tandem::comm::ReduceOp::kMin);
    EXPECT_TRUE(at::equal(mx, mn));
  }
}

TEST_F(DataParallel, EvaluationIsIdenticalOnEveryRankAndMatchesOneRank) {
  const TrainConfig c = config(comm->size());
  Trainer t(c, *comm);
  train(t, 5);
  const auto m = t.evaluate();
  auto single = tandem::comm::make_single_communicator();
  Trainer ref(c, *single);
  train(ref, 5);
  const auto r = ref.evaluate();
  EXPECT_EQ(m.count, r.count);
  EXPECT_EQ(m.positives, r.positives);
  EXPECT_NEAR(m.logloss, r.logloss, 1e-5);
  EXPECT_NEAR(m.auc, r.auc, 1e-4);
  at::Tensor auc = at::full({1}, m.auc, at::kDouble), lo = auc.clone();
  comm->allreduce(auc, tandem::comm::ReduceOp::kMax);
  comm->allreduce(lo, tandem::comm::ReduceOp::kMin);
  EXPECT_EQ(auc.item<double>(), lo.item<double>());
}

}  // namespace
