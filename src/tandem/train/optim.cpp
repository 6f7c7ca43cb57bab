#include "tandem/train/optim.h"

#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "tandem/util/error.h"

namespace tandem::train {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const config::OptimSection& o,
                                                        std::vector<at::Tensor> params) {
  namespace to = torch::optim;
  if (o.name == "sgd")
    return std::make_unique<to::SGD>(
        params, to::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
  if (o.name == "adagrad")
    return std::make_unique<to::Adagrad>(
        params, to::AdagradOptions(o.lr).weight_decay(o.weight_decay).eps(o.eps));
  if (o.name == "adam")
    return std::make_unique<to::Adam>(
        params,
        to::AdamOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
  if (o.name == "adamw")
    return std::make_unique<to::AdamW>(
        params,
        to::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
  throw ConfigError("optim.name: unknown optimizer '" + o.name + "'");
}

double learning_rate(const config::OptimSection& o, int64_t step, int64_t total_steps) {
  if (step < o.warmup_steps)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.decay == "none") return o.lr;
  const int64_t span = std::max<int64_t>(1, total_steps - o.warmup_steps - 1);
  const double t = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  const double f = o.decay == "linear" ? 1.0 - t : 0.5 * (1.0 + std::cos(M_PI * t));
  return o.min_lr + (o.lr - o.min_lr) * f;
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

}  // namespace tandem::train
