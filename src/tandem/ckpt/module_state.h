// Copies a checkpoint's parameters and buffers into live tensors, by name.
#pragma once

#include <torch/nn/module.h>

#include <string>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/ckpt/optimizer_state.h"

namespace tandem::ckpt {

/// Copies saved[name] into each live (name, tensor). A name missing from `saved`, a
/// shape that differs, or a saved name with no live tensor throws DataError naming
/// it; `what` ("parameter", "buffer") and `hint` (what may differ) go in the message.
void load_tensors(const NamedTensors& live,
                  const std::map<std::string, at::Tensor>& saved, const std::string& what,
                  const std::string& hint);

/// A module's named_parameters() / named_buffers() as NamedTensors.
NamedTensors named(const torch::OrderedDict<std::string, at::Tensor>& dict);

/// Every parameter and buffer of `module` must be in `state` with the same shape
/// (a DataError names the first that is not).
void load_module(torch::nn::Module& module, const State& state);

}  // namespace tandem::ckpt
