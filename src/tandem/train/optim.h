// LibTorch's optimizers built from the [optim] section, and the learning-rate
// schedule: linear warm-up to optim.lr, then none/linear/cosine decay to
// optim.min_lr at the last step.
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "tandem/config/train_config.h"

namespace tandem::train {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const config::OptimSection& o,
                                                        std::vector<at::Tensor> params);

/// Learning rate for (0-based) `step` of `total_steps`.
double learning_rate(const config::OptimSection& o, int64_t step, int64_t total_steps);

void set_learning_rate(torch::optim::Optimizer& opt, double lr);

}  // namespace tandem::train
