#include "tandem/meta/maml.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "tandem/util/error.h"

namespace tandem::meta {

Algorithm parse_algorithm(const std::string& name) {
  if (name == "maml") return Algorithm::kMaml;
  if (name == "fomaml") return Algorithm::kFomaml;
  if (name == "reptile") return Algorithm::kReptile;
  throw ConfigError("meta.algorithm: '" + name + "' is not one of maml, fomaml, reptile");
}

std::vector<at::Tensor> per_task(const std::vector<at::Tensor>& params, int64_t tasks,
                                 bool differentiable) {
  std::vector<at::Tensor> out;
  out.reserve(params.size());
  for (const at::Tensor& p : params) {
    std::vector<int64_t> shape{tasks};
    shape.insert(shape.end(), p.sizes().begin(), p.sizes().end());
    // expand() is a view: its backward sums the tasks' gradients into p.
    at::Tensor e = p.unsqueeze(0).expand(shape);
    out.push_back(differentiable ? e : e.detach().clone().requires_grad_(true));
  }
  return out;
}

std::vector<at::Tensor> sgd_step(const FunctionalModel& model, const TaskFamily& family,
                                 const std::vector<at::Tensor>& fast, const at::Tensor& x,
                                 const at::Tensor& y, double lr, bool create_graph) {
  // Tasks are independent, so the gradient of the summed losses with respect to
  // task t's copy is task t's own gradient.
  const at::Tensor loss = family.loss(model.forward(fast, x), y).sum();
  const std::vector<at::Tensor> grads =
      torch::autograd::grad({loss}, fast, {}, /*retain_graph=*/create_graph, create_graph);
  std::vector<at::Tensor> out;
  out.reserve(fast.size());
  for (size_t i = 0; i < fast.size(); ++i) {
    if (create_graph) {
      out.push_back(fast[i] - lr * grads[i]);
    } else {
      at::NoGradGuard no_grad;
      out.push_back((fast[i] - lr * grads[i]).requires_grad_(true));
    }
  }
  return out;
}

namespace {

std::vector<at::Tensor> adapt(const FunctionalModel& model, const TaskFamily& family,
                              std::vector<at::Tensor> fast, const Tasks& tasks,
                              const InnerLoop& inner, bool second_order) {
  for (int64_t s = 0; s < inner.steps; ++s)
    fast = sgd_step(model, family, fast, tasks.support_x, tasks.support_y, inner.lr,
                    second_order);
  return fast;
}

// sum_i <params[i], directions[i] summed over tasks>: its gradient with respect to
// params[i] is that sum, the meta-gradient the first-order methods compute directly.
at::Tensor linear_surrogate(const std::vector<at::Tensor>& params,
                            const std::vector<at::Tensor>& directions) {
  at::Tensor total = at::zeros({}, params.front().options());
  for (size_t i = 0; i < params.size(); ++i)
    total = total + (params[i] * directions[i].detach().sum(0)).sum();
  return total;
}

}  // namespace

MetaObjective meta_objective(Algorithm algorithm, const FunctionalModel& model,
                             const TaskFamily& family, const std::vector<at::Tensor>& params,
                             const Tasks& tasks, const InnerLoop& inner) {
  const int64_t t = tasks.size();
  if (t == 0) throw Error("meta_objective: no tasks");
  MetaObjective out;
  switch (algorithm) {
    case Algorithm::kMaml: {
      const std::vector<at::Tensor> fast =
          adapt(model, family, per_task(params, t, true), tasks, inner, true);
      const at::Tensor query = family.loss(model.forward(fast, tasks.query_x), tasks.query_y);
      out.objective = query.sum();
      out.query_loss = query.detach();
      break;
    }
    case Algorithm::kFomaml: {
      const std::vector<at::Tensor> fast =
          adapt(model, family, per_task(params, t, false), tasks, inner, false);
      const at::Tensor query = family.loss(model.forward(fast, tasks.query_x), tasks.query_y);
      const std::vector<at::Tensor> grads = torch::autograd::grad({query.sum()}, fast);
      out.objective = linear_surrogate(params, grads);
      out.query_loss = query.detach();
      break;
    }
    case Algorithm::kReptile: {
      const std::vector<at::Tensor> fast =
          adapt(model, family, per_task(params, t, false), tasks, inner, false);
      std::vector<at::Tensor> moves;
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) moves.push_back(params[i].unsqueeze(0) - fast[i]);
      out.query_loss = family.loss(model.forward(fast, tasks.query_x), tasks.query_y);
      {
        at::AutoGradMode enable(true);
        out.objective = linear_surrogate(params, moves);
      }
      break;
    }
  }
  return out;
}

at::Tensor joint_loss(const FunctionalModel& model, const TaskFamily& family,
                      const std::vector<at::Tensor>& params, const Tasks& tasks) {
  const at::Tensor x = at::cat({tasks.support_x, tasks.query_x}, 1);
  const at::Tensor y = at::cat({tasks.support_y, tasks.query_y}, 1);
  return family.loss(model.forward(per_task(params, tasks.size(), true), x), y);
}

FewShotScores few_shot(const FunctionalModel& model, const TaskFamily& family,
                       const std::vector<at::Tensor>& params, const Tasks& tasks,
                       const std::vector<int64_t>& steps, double lr) {
  const int64_t t = tasks.size();
  FewShotScores out;
  if (t == 0) {  // a rank without tasks still contributes its (empty) share
    const auto n = static_cast<int64_t>(steps.size());
    out.loss = at::zeros({0, n});
    if (family.classifies()) out.accuracy = at::zeros({0, n});
    return out;
  }
  std::vector<at::Tensor> loss, accuracy;
  std::vector<at::Tensor> fast = per_task(params, t, false);
  auto score = [&] {
    at::NoGradGuard no_grad;
    const at::Tensor pred = model.forward(fast, tasks.query_x);
    loss.push_back(family.loss(pred, tasks.query_y));
    if (family.classifies()) accuracy.push_back(family.accuracy(pred, tasks.query_y));
  };
  int64_t done = 0;
  for (int64_t target : steps) {
    for (; done < target; ++done)
      fast = sgd_step(model, family, fast, tasks.support_x, tasks.support_y, lr, false);
    score();
  }
  out.loss = at::stack(loss, 1);
  if (!accuracy.empty()) out.accuracy = at::stack(accuracy, 1);
  return out;
}

}  // namespace tandem::meta
