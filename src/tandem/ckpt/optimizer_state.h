// LibTorch optimizer state <-> named tensors "<parameter name>/<key>", so that a
// checkpoint stores it as ordinary datasets (SGD momentum_buffer; Adagrad sum and
// step; Adam/AdamW step, exp_avg, exp_avg_sq, max_exp_avg_sq).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace tandem::ckpt {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// Copies the state of every parameter in `params` that has one into `out`,
/// reusing the tensors already there when their shape and dtype fit (so that
/// repeated checkpoints do not allocate, and fault in, fresh memory each time).
void save_optimizer(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                    std::map<std::string, at::Tensor>& out);

/// dst = a host copy of src (which may live on a GPU), into dst's memory when it fits.
void copy_into(at::Tensor& dst, const at::Tensor& src);

/// Replaces the optimizer's state with `state`; throws DataError if it names a
/// parameter the optimizer does not have or a key its type does not know.
void load_optimizer(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                    const std::map<std::string, at::Tensor>& state);

}  // namespace tandem::ckpt
