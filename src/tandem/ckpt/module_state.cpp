#include "tandem/ckpt/module_state.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "tandem/util/error.h"

namespace tandem::ckpt {

NamedTensors named(const torch::OrderedDict<std::string, at::Tensor>& dict) {
  NamedTensors out;
  for (const auto& item : dict) out.emplace_back(item.key(), item.value());
  return out;
}

void load_tensors(const NamedTensors& live,
                  const std::map<std::string, at::Tensor>& saved, const std::string& what,
                  const std::string& hint) {
  at::NoGradGuard no_grad;
  for (const auto& [name, t] : live) {
    const auto it = saved.find(name);
    if (it == saved.end())
      throw DataError(fmt::format("checkpoint: no {} '{}' ({})", what, name, hint));
    if (!it->second.sizes().equals(t.sizes()))
      throw DataError(fmt::format("checkpoint: {} '{}' has shape {}, the model {} ({})", what,
                                  name, c10::str(it->second.sizes()), c10::str(t.sizes()), hint));
    at::Tensor dst = t.detach();
    dst.copy_(it->second);
  }
  if (saved.size() != live.size())
    for (const auto& [name, t] : saved)
      if (std::none_of(live.begin(), live.end(), [&](const auto& l) { return l.first == name; }))
        throw DataError(
            fmt::format("checkpoint: {} '{}' is not in this model ({})", what, name, hint));
}

void load_module(torch::nn::Module& module, const State& s) {
  load_tensors(named(module.named_parameters()), s.params, "parameter", "a different model?");
  load_tensors(named(module.named_buffers()), s.buffers, "buffer", "a different model?");
}

}  // namespace tandem::ckpt
