// The meta-learning core against closed forms and finite differences, and the
// distributed meta-batch against one rank running it all:
// - second-order MAML's meta-gradient equals central finite differences of the
//   meta-objective (float64, two inner steps);
// - first-order MAML equals MAML minus its second-order term alpha * H v, the
//   Hessian-vector product computed independently by double backward;
// - a Reptile step on a linear model equals the closed-form least-squares updates;
// - task sampling is counter-based: any split of a meta-batch draws the same tasks;
// - MetaLearner over the job's ranks (uneven shares, a rank without tasks) ends
//   where one rank ends, for maml, fomaml and reptile (relative 1e-5).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/sgd.h>

#include "tandem/comm/single_communicator.h"
#include "tandem/config/meta_config.h"
#include "tandem/meta/maml.h"
#include "tandem/meta/meta_learner.h"
#include "test_util.h"

namespace {

namespace tm = tandem::meta;

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

std::vector<at::Tensor> double_params(const tm::FunctionalModel& model, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<at::Tensor> params = model.init(gen);
  for (at::Tensor& p : params) p = p.to(at::kDouble).requires_grad_(true);
  return params;
}

tm::Tasks double_tasks(const tm::TaskFamily& family, int64_t count, int64_t shots) {
  tm::Tasks t = tm::sample_tasks(family, tm::Split::kTrain, 11, tm::Stream::kTrain, 0, 0, count,
                                 shots, shots);
  for (at::Tensor* x : {&t.support_x, &t.support_y, &t.query_x, &t.query_y})
    *x = x->to(at::kDouble);
  return t;
}

std::vector<at::Tensor> grad_of(const at::Tensor& scalar, const std::vector<at::Tensor>& params) {
  return torch::autograd::grad({scalar}, params);
}

TEST(Maml, SecondOrderGradientMatchesFiniteDifferences) {
  const tm::Mlp model({1, 6, 1});
  const tm::SinusoidTasks family;
  std::vector<at::Tensor> params = double_params(model, 3);
  const tm::Tasks tasks = double_tasks(family, 3, 5);
  const tm::InnerLoop inner{2, 0.05};
  const auto objective = [&] {
    return tm::meta_objective(tm::Algorithm::kMaml, model, family, params, tasks, inner).objective;
  };
  const std::vector<at::Tensor> analytic = grad_of(objective(), params);
  const double eps = 1e-6;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor numeric = at::zeros_like(params[i]);
    for (int64_t j = 0; j < params[i].numel(); ++j) {
      auto at_offset = [&](double d) {
        {
          at::NoGradGuard no_grad;
          params[i].view(-1)[j] += d;
        }
        const double v = objective().item<double>();
        at::NoGradGuard no_grad;
        params[i].view(-1)[j] -= d;
        return v;
      };
      numeric.view(-1)[j] = (at_offset(eps) - at_offset(-eps)) / (2 * eps);
    }
    EXPECT_LT(rel_err(analytic[i], numeric), 1e-6) << "parameter " << i;
  }
}

TEST(Maml, FirstOrderIsMamlWithoutTheSecondOrderTerm) {
  // One inner step: d/dphi L_q(phi - a g_s(phi)) = (I - a H_s) g_q(phi'), and
  // first-order MAML keeps g_q(phi') alone. So MAML = FOMAML - a H_s g_q(phi').
  const tm::Mlp model({1, 8, 8, 1});
  const tm::SinusoidTasks family;
  const std::vector<at::Tensor> params = double_params(model, 5);
  const tm::Tasks tasks = double_tasks(family, 1, 10);
  const double alpha = 0.1;
  const tm::InnerLoop inner{1, alpha};
  const auto maml = grad_of(
      tm::meta_objective(tm::Algorithm::kMaml, model, family, params, tasks, inner).objective,
      params);
  const auto fomaml = grad_of(
      tm::meta_objective(tm::Algorithm::kFomaml, model, family, params, tasks, inner).objective,
      params);
  // H_s v by double backward at phi, with v = FOMAML's gradient.
  const std::vector<at::Tensor> fast = tm::per_task(params, 1, true);
  const at::Tensor support = family.loss(model.forward(fast, tasks.support_x), tasks.support_y).sum();
  const auto g = torch::autograd::grad({support}, params, {}, true, true);
  at::Tensor gv = at::zeros({}, at::kDouble);
  for (size_t i = 0; i < g.size(); ++i) gv = gv + (g[i] * fomaml[i]).sum();
  const auto hv = grad_of(gv, params);
  double second_order = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_LT(rel_err(maml[i], fomaml[i] - alpha * hv[i]), 1e-10) << "parameter " << i;
    second_order = std::max(second_order, rel_err(maml[i], fomaml[i]));
  }
  EXPECT_GT(second_order, 1e-3) << "the second-order term vanished: the test proves nothing";
}

TEST(Reptile, StepMatchesClosedFormOnLinearModel) {
  const tm::Mlp model({3, 1});  // y = w x + b
  const tm::SinusoidTasks mse;  // its loss is the mean squared error
  const std::vector<at::Tensor> params = double_params(model, 9);
  at::manual_seed(4);
  tm::Tasks tasks;
  const int64_t t = 2, n = 6, steps = 3;
  tasks.support_x = at::randn({t, n, 3}, at::kDouble);
  tasks.support_y = at::randn({t, n, 1}, at::kDouble);
  tasks.query_x = tasks.support_x;
  tasks.query_y = tasks.support_y;
  const double alpha = 0.07, epsilon = 0.5;

  // Closed form: gradient descent on 1/n |X w + b - y|^2, per task, then
  // phi <- phi + epsilon * mean_t (phi_t - phi).
  at::Tensor w_move = at::zeros({1, 3}, at::kDouble), b_move = at::zeros({1}, at::kDouble);
  for (int64_t k = 0; k < t; ++k) {
    at::Tensor w = params[0].detach().clone(), b = params[1].detach().clone();
    const at::Tensor x = tasks.support_x[k], y = tasks.support_y[k];
    for (int64_t s = 0; s < steps; ++s) {
      const at::Tensor r = at::matmul(x, w.t()) + b - y;  // [n, 1]
      const at::Tensor gw = 2.0 / n * at::matmul(r.t(), x), gb = 2.0 / n * r.sum(0);
      w = w - alpha * gw;
      b = b - alpha * gb;
    }
    w_move += (w - params[0].detach()) / t;
    b_move += (b - params[1].detach()) / t;
  }
  const at::Tensor w_expected = params[0].detach() + epsilon * w_move;
  const at::Tensor b_expected = params[1].detach() + epsilon * b_move;

  torch::optim::SGD sgd(params, torch::optim::SGDOptions(epsilon));
  const auto objective =
      tm::meta_objective(tm::Algorithm::kReptile, model, mse, params, tasks, {steps, alpha});
  (objective.objective / static_cast<double>(t)).backward();
  sgd.step();
  EXPECT_LT(rel_err(params[0], w_expected), 1e-12);
  EXPECT_LT(rel_err(params[1], b_expected), 1e-12);
}

TEST(TaskSampling, AnySplitDrawsTheSameTasks) {
  const tm::SinusoidTasks sinusoid;
  const tm::ClusterTasks clusters(20, 4, 3, 7);
  for (const tm::TaskFamily* family : {static_cast<const tm::TaskFamily*>(&sinusoid),
                                       static_cast<const tm::TaskFamily*>(&clusters)}) {
    const auto draw = [&](int64_t first, int64_t count) {
      return tm::sample_tasks(*family, tm::Split::kTrain, 5, tm::Stream::kTrain, 17, first, count,
                              4, 3);
    };
    const tm::Tasks all = draw(0, 5), part = draw(2, 3);
    EXPECT_TRUE(at::equal(all.support_x.slice(0, 2), part.support_x)) << family->name();
    EXPECT_TRUE(at::equal(all.query_y.slice(0, 2), part.query_y)) << family->name();
    EXPECT_FALSE(at::equal(all.support_x[0], all.support_x[1])) << family->name();
  }
  EXPECT_EQ(tm::share(25, 0, 2), (std::pair<int64_t, int64_t>{0, 12}));
  EXPECT_EQ(tm::share(25, 1, 2), (std::pair<int64_t, int64_t>{12, 13}));
  EXPECT_EQ(tm::share(2, 0, 3).second, 0);  // more ranks than tasks: one rank idles
}

TEST(TaskSampling, ClustersHoldOutTheirLastFifth) {
  // Classes 0..15 train, 16..19 evaluate. Inputs are noisy, so the test counts how
  // often an input's nearest centre is a held-out class: 1/5 if the split were
  // ignored, far more for evaluation tasks, far less for training tasks.
  const tm::ClusterTasks clusters(20, 6, 4, 3);
  const auto held_out_share = [&](tm::Split split) {
    const tm::Tasks t = tm::sample_tasks(clusters, split, 1, tm::Stream::kTrain, 0, 0, 50, 2, 2);
    const at::Tensor x = t.support_x.reshape({-1, 6});
    const at::Tensor nearest = at::cdist(x, clusters.centres()).argmin(1);
    return nearest.ge(16).to(at::kDouble).mean().item<double>();
  };
  EXPECT_GT(held_out_share(tm::Split::kEval), 0.5);
  EXPECT_LT(held_out_share(tm::Split::kTrain), 0.1);

  const tm::Tasks eval =
      tm::sample_tasks(clusters, tm::Split::kEval, 1, tm::Stream::kEval, 0, 0, 50, 2, 2);
  EXPECT_EQ(eval.support_x.sizes(), (std::vector<int64_t>{50, 8, 6}));
  EXPECT_EQ(eval.support_y.max().item<int64_t>(), 3);
  const tm::Mlp model({6, 4});
  at::Generator gen = at::detail::createCPUGenerator(1);
  const tm::FewShotScores s = tm::few_shot(model, clusters, model.init(gen), eval, {0, 3}, 0.5);
  EXPECT_EQ(s.loss.sizes(), (std::vector<int64_t>{50, 2}));
  ASSERT_TRUE(s.accuracy.defined());
  EXPECT_GE(s.accuracy.min().item<float>(), 0.0f);
  EXPECT_LE(s.accuracy.max().item<float>(), 1.0f);
  // Adapting on the support set lowers the query loss on average.
  EXPECT_LT(s.loss.select(1, 1).mean().item<float>(), s.loss.select(1, 0).mean().item<float>());
}

tandem::config::MetaConfig small_config(const std::string& algorithm, int64_t meta_batch) {
  tandem::config::MetaConfig cfg;
  cfg.run.dir = "";  // no files
  cfg.run.seed = 21;
  cfg.meta.algorithm = algorithm;
  cfg.meta.meta_batch = meta_batch;
  cfg.meta.shots = 5;
  cfg.meta.queries = 5;
  cfg.meta.inner_steps = 2;
  cfg.meta.hidden = "16,16";
  cfg.meta.meta_lr = 0.01;
  return cfg;
}

TEST(MetaDistributed, EqualsOneRankRunningTheWholeMetaBatch) {
  auto world = tandem::testing::world();
  auto single = tandem::comm::make_single_communicator();
  // 7 tasks: uneven shares on 2, 3 and 4 ranks; 2 tasks: a rank without any on 3.
  for (const char* algorithm : {"maml", "fomaml", "reptile"})
    for (int64_t meta_batch : {7, 2}) {
      tm::MetaLearner distributed(small_config(algorithm, meta_batch), *world);
      tm::MetaLearner reference(small_config(algorithm, meta_batch), *single);
      for (int i = 0; i < 6; ++i) {
        distributed.step();
        reference.step();
      }
      for (size_t p = 0; p < reference.parameters().size(); ++p) {
        EXPECT_LT(rel_err(distributed.parameters()[p], reference.parameters()[p]), 1e-5)
            << algorithm << " meta_batch " << meta_batch << " parameter " << p;
        EXPECT_LT(rel_err(distributed.baseline_parameters()[p],
                          reference.baseline_parameters()[p]),
                  1e-5)
            << algorithm << " baseline parameter " << p;
      }
      // Training moved the parameters: the comparison is not of two initial states.
      tm::MetaLearner fresh(small_config(algorithm, meta_batch), *single);
      EXPECT_GT(rel_err(reference.parameters()[0], fresh.parameters()[0]), 1e-4);
    }
}

}  // namespace
