// The meta-learning core: MAML (Finn et al. 2017), first-order MAML and Reptile
// (Nichol et al. 2018), for any FunctionalModel and any TaskFamily.
//
// Each returns an objective whose gradient with respect to the meta-parameters is
// the sum over the tasks of each task's meta-gradient, so that one backward()
// feeds the same gradient reduction as data-parallel training:
//   MAML     d/dphi L_query(phi'(phi)), phi' = k SGD steps on the support set,
//            differentiated through the steps (second order, create_graph);
//   FOMAML   dL_query/dphi' at phi', the steps treated as constants;
//   Reptile  phi - phi' (the outer step moves phi towards the adapted weights).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/meta/functional_model.h"
#include "tandem/meta/task_family.h"

namespace tandem::meta {

enum class Algorithm { kMaml, kFomaml, kReptile };
/// "maml", "fomaml" or "reptile"; ConfigError otherwise.
Algorithm parse_algorithm(const std::string& name);

/// One copy of each parameter per task: [T, *shape]. `differentiable` keeps them
/// functions of `params` (MAML); otherwise they are fresh leaves that require
/// grad, detached from `params`.
std::vector<at::Tensor> per_task(const std::vector<at::Tensor>& params, int64_t tasks,
                                 bool differentiable);

/// One SGD step of every task on its own (x, y): fast - lr * dL/dfast. With
/// `create_graph` the step stays differentiable (second order); otherwise the
/// result is a set of fresh leaves.
std::vector<at::Tensor> sgd_step(const FunctionalModel& model, const TaskFamily& family,
                                 const std::vector<at::Tensor>& fast, const at::Tensor& x,
                                 const at::Tensor& y, double lr, bool create_graph);

struct InnerLoop {
  int64_t steps = 1;
  double lr = 0.01;
};

struct MetaObjective {
  at::Tensor objective;   ///< scalar; d objective / d params = sum of the tasks' meta-gradients
  at::Tensor query_loss;  ///< [T]: each task's query loss after adaptation (detached)
};

/// The meta-objective of `tasks` (T >= 1) at meta-parameters `params`.
MetaObjective meta_objective(Algorithm algorithm, const FunctionalModel& model,
                             const TaskFamily& family, const std::vector<at::Tensor>& params,
                             const Tasks& tasks, const InnerLoop& inner);

/// The joint-training baseline's objective: each task's loss at `params` itself on
/// all its examples (support and query), no adaptation; returns [T].
at::Tensor joint_loss(const FunctionalModel& model, const TaskFamily& family,
                      const std::vector<at::Tensor>& params, const Tasks& tasks);

/// Few-shot evaluation: adapts a copy of `params` to each task with SGD on its
/// support set and records the query loss (and accuracy, for families that have
/// one) after each number of steps in `steps` (increasing; 0 = unadapted).
/// Returns loss [T, steps.size()] and, for families that classify, accuracy.
struct FewShotScores {
  at::Tensor loss, accuracy;
};
FewShotScores few_shot(const FunctionalModel& model, const TaskFamily& family,
                       const std::vector<at::Tensor>& params, const Tasks& tasks,
                       const std::vector<int64_t>& steps, double lr);

}  // namespace tandem::meta
