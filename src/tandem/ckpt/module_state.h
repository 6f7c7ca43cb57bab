// Copies a checkpoint's parameters and buffers into a module, by name.
#pragma once

#include <torch/nn/module.h>

#include "tandem/ckpt/checkpoint.h"

namespace tandem::ckpt {

/// Every parameter and buffer of `module` must be in `state` with the same shape
/// (a DataError names the first that is not).
void load_module(torch::nn::Module& module, const State& state);

}  // namespace tandem::ckpt
