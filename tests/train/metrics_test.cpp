#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tandem/comm/single_communicator.h"
#include "tandem/train/metrics.h"
#include "tandem/train/optim.h"
#include "tandem/train/reducer.h"
#include "test_util.h"

using namespace tandem::train;

namespace {

// AUC by definition: P(score_pos > score_neg) + 0.5 P(equal), over all pairs.
double brute_auc(const at::Tensor& s, const at::Tensor& y) {
  double num = 0, pairs = 0;
  for (int64_t i = 0; i < s.numel(); ++i)
    for (int64_t j = 0; j < s.numel(); ++j) {
      if (y[i].item<float>() != 1 || y[j].item<float>() != 0) continue;
      const float a = s[i].item<float>(), b = s[j].item<float>();
      num += a > b ? 1 : a == b ? 0.5 : 0;
      ++pairs;
    }
  return num / pairs;
}

TEST(Metrics, AucMatchesPairwiseDefinitionWithTies) {
  at::manual_seed(3);
  const at::Tensor s = at::randint(0, 5, {300}).to(at::kFloat);  // many ties
  const at::Tensor y = (at::rand({300}) < 0.3).to(at::kFloat);
  EXPECT_NEAR(roc_auc(s, y), brute_auc(s, y), 1e-12);
  EXPECT_DOUBLE_EQ(roc_auc(at::tensor({1.f, 2.f, 3.f}), at::tensor({0.f, 1.f, 1.f})), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(at::tensor({3.f, 2.f}), at::tensor({0.f, 1.f})), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc(at::tensor({1.f, 1.f}), at::tensor({0.f, 1.f})), 0.5);
  EXPECT_TRUE(std::isnan(roc_auc(at::tensor({1.f, 2.f}), at::tensor({1.f, 1.f}))));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(roc_auc(at::tensor({nan, 2.f, nan}), at::tensor({1.f, 0.f, 1.f}))));
}

TEST(Metrics, LoglossNeAndBaseline) {
  auto single = tandem::comm::make_single_communicator();
  const at::Tensor z = at::tensor({0.f, 0.f, 0.f, 0.f});
  const at::Tensor y = at::tensor({1.f, 0.f, 0.f, 0.f});
  const EvalMetrics m = reduce_metrics(z, y, *single);
  EXPECT_NEAR(m.logloss, std::log(2.0), 1e-12);  // p = 0.5 for every row
  EXPECT_NEAR(m.ne, std::log(2.0) / binary_entropy(0.25), 1e-12);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);  // logit 0 predicts 0
  const EvalMetrics b = baseline_metrics(4, 1);
  EXPECT_NEAR(b.logloss, binary_entropy(0.25), 1e-15);
  EXPECT_DOUBLE_EQ(b.ne, 1.0);
  EXPECT_DOUBLE_EQ(b.auc, 0.5);
}

// Under mpirun: the reduced metrics equal the single-process metrics computed on
// all ranks' predictions together; the AUC exactly.
TEST(Metrics, ReducedAcrossRanksEqualsSingleProcess) {
  auto comm = tandem::testing::world();
  at::manual_seed(17);
  const int64_t n = 1000;
  const at::Tensor all_z = at::randn({n}).round_();  // ties across ranks
  const at::Tensor all_y = (at::rand({n}) < at::sigmoid(all_z)).to(at::kFloat);
  const int w = comm->size(), r = comm->rank();
  // Unequal shards; the last rank gets the remainder.
  const int64_t per = n / (w + 1);
  const int64_t first = r * per, count = r == w - 1 ? n - first : per;
  const EvalMetrics m =
      reduce_metrics(all_z.narrow(0, first, count), all_y.narrow(0, first, count), *comm);
  auto single = tandem::comm::make_single_communicator();
  const EvalMetrics ref = reduce_metrics(all_z, all_y, *single);
  EXPECT_EQ(m.count, n);
  EXPECT_EQ(m.auc, ref.auc);
  EXPECT_NEAR(m.logloss, ref.logloss, 1e-12);
  EXPECT_EQ(m.accuracy, ref.accuracy);
}

TEST(Schedule, WarmupThenDecay) {
  tandem::config::OptimSection o;
  o.lr = 1.0;
  o.warmup_steps = 4;
  o.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0, 14), 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(o, 3, 14), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 10, 14), 1.0);  // decay = none
  o.decay = "linear";
  EXPECT_DOUBLE_EQ(learning_rate(o, 4, 14), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 13, 14), 0.1);
  EXPECT_NEAR(learning_rate(o, 8, 14), 0.1 + 0.9 * (1 - 4.0 / 9), 1e-12);
  o.decay = "cosine";
  EXPECT_NEAR(learning_rate(o, 13, 14), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(o, 4, 14), 1.0, 1e-12);
}

TEST(Optimizers, EveryNameBuildsAndSteps) {
  for (const char* name : {"sgd", "adagrad", "adam", "adamw"}) {
    tandem::config::OptimSection o;
    o.name = name;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    at::Tensor w = at::ones({3}).set_requires_grad(true);
    auto opt = make_optimizer(o, {w});
    (w * w).sum().backward();
    opt->step();
    EXPECT_LT(w.detach().max().item<float>(), 1.0f) << name;
  }
}

TEST(Reducer, BucketLayoutIsReverseOrderAndRespectsSizes) {
  auto single = tandem::comm::make_single_communicator();
  std::vector<at::Tensor> params;
  for (int64_t n : {100000, 300000, 10, 500000, 20})  // float32: 0.4, 1.2, ~0, 2, ~0 MB
    params.push_back(at::zeros({n}).set_requires_grad(true));
  Reducer r(params, *single, ReducerOptions{1.5, 0.5, false, true});
  const auto layout = r.bucket_layout();
  // First bucket (0.5 MiB): {4, 3} does not fit -> {4}, then {3} alone (2 MB > 1.5), then {2, 1},
  // {0}.
  ASSERT_EQ(layout.size(), 4u);
  EXPECT_EQ(layout[0], (std::vector<size_t>{4}));
  EXPECT_EQ(layout[1], (std::vector<size_t>{3}));
  EXPECT_EQ(layout[2], (std::vector<size_t>{2, 1}));
  EXPECT_EQ(layout[3], (std::vector<size_t>{0}));
  Reducer pt(params, *single, ReducerOptions{25, 1, true, true});
  EXPECT_EQ(pt.bucket_layout().size(), params.size());
}

}  // namespace
