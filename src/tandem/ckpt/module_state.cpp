#include "tandem/ckpt/module_state.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "tandem/util/error.h"

namespace tandem::ckpt {

void load_module(torch::nn::Module& module, const State& s) {
  at::NoGradGuard no_grad;
  const auto load = [&](const torch::OrderedDict<std::string, at::Tensor>& live,
                        const std::map<std::string, at::Tensor>& saved, const char* what) {
    for (const auto& item : live) {
      const auto it = saved.find(item.key());
      if (it == saved.end())
        throw DataError(
            fmt::format("checkpoint: no {} '{}' (a different model?)", what, item.key()));
      if (!it->second.sizes().equals(item.value().sizes()))
        throw DataError(fmt::format("checkpoint: {} '{}' has shape {}, the model {}", what,
                                    item.key(), c10::str(it->second.sizes()),
                                    c10::str(item.value().sizes())));
      at::Tensor dst = item.value().detach();
      dst.copy_(it->second);
    }
  };
  load(module.named_parameters(), s.params, "parameter");
  load(module.named_buffers(), s.buffers, "buffer");
}

}  // namespace tandem::ckpt
