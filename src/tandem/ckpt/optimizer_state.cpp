#include "tandem/ckpt/optimizer_state.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <sstream>
#include <type_traits>

#include "tandem/util/error.h"

namespace tandem::ckpt {
namespace to = torch::optim;
namespace {

// LibTorch keys optimizer state by the parameter's TensorImpl: as a string in 1.x,
// as the pointer in 2.x.
template <typename Map>
auto state_key(const at::Tensor& p) {
  using Key = typename std::decay_t<Map>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << static_cast<const void*>(p.unsafeGetTensorImpl());
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

at::Tensor scalar(int64_t v) { return at::tensor({v}, at::kLong); }

// Adam and AdamW keep the same state under different types.
template <typename State, typename Put>
void put_adam(const State& a, const Put& put) {
  put("exp_avg", a.exp_avg());
  put("exp_avg_sq", a.exp_avg_sq());
  put("max_exp_avg_sq", a.max_exp_avg_sq());
}

template <typename State, typename Take>
std::unique_ptr<State> adam_state(const Take& take, int64_t step) {
  auto a = std::make_unique<State>();
  a->exp_avg(take("exp_avg"));
  a->exp_avg_sq(take("exp_avg_sq"));
  a->max_exp_avg_sq(take("max_exp_avg_sq"));
  a->step(step);
  return a;
}

}  // namespace

void copy_into(at::Tensor& dst, const at::Tensor& src) {
  if (dst.defined() && dst.sizes().equals(src.sizes()) && dst.dtype() == src.dtype() &&
      dst.device().is_cpu())
    dst.copy_(src.detach());
  else
    dst = src.detach().to(at::TensorOptions().device(at::kCPU), /*non_blocking=*/false,
                          /*copy=*/true);
}

void save_optimizer(to::Optimizer& opt, const NamedTensors& params,
                    std::map<std::string, at::Tensor>& out) {
  std::map<std::string, at::Tensor> reuse;
  reuse.swap(out);
  auto& state = opt.state();
  for (const auto& [name, p] : params) {
    const auto it = state.find(state_key<decltype(state)>(p));
    if (it == state.end()) continue;
    const to::OptimizerParamState* s = it->second.get();
    const auto put = [&](const char* key, const at::Tensor& t) {
      if (!t.defined()) return;
      at::Tensor& dst = out[name + "/" + key];
      dst = reuse[name + "/" + key];
      copy_into(dst, t);
    };
    if (const auto* a = dynamic_cast<const to::AdagradParamState*>(s)) {
      put("sum", a->sum());
      out[name + "/step"] = scalar(a->step());
    } else if (const auto* m = dynamic_cast<const to::AdamParamState*>(s)) {
      put_adam(*m, put);
      out[name + "/step"] = scalar(m->step());
    } else if (const auto* w = dynamic_cast<const to::AdamWParamState*>(s)) {
      put_adam(*w, put);
      out[name + "/step"] = scalar(w->step());
    } else if (const auto* g = dynamic_cast<const to::SGDParamState*>(s)) {
      put("momentum_buffer", g->momentum_buffer());
    } else {
      throw Error(fmt::format("checkpoint: unknown optimizer state type for {}", name));
    }
  }
}

void load_optimizer(to::Optimizer& opt, const NamedTensors& params,
                    const std::map<std::string, at::Tensor>& state) {
  // Group the saved tensors by parameter.
  std::map<std::string, std::map<std::string, at::Tensor>> by_param;
  for (const auto& [key, t] : state) {
    const size_t slash = key.rfind('/');
    by_param[key.substr(0, slash)][key.substr(slash + 1)] = t;
  }
  auto& live = opt.state();
  live.clear();
  const bool adagrad = dynamic_cast<to::Adagrad*>(&opt) != nullptr;
  const bool adam = dynamic_cast<to::Adam*>(&opt) != nullptr;
  const bool adamw = dynamic_cast<to::AdamW*>(&opt) != nullptr;
  for (const auto& [name, p] : params) {
    const auto it = by_param.find(name);
    if (it == by_param.end()) continue;
    auto values = it->second;
    by_param.erase(it);
    const auto take = [&](const char* key) {
      const auto v = values.find(key);
      if (v == values.end()) return at::Tensor();
      at::Tensor t = v->second.to(p.device());
      values.erase(v);
      return t;
    };
    const auto step = [&] {
      const at::Tensor t = take("step");
      return t.defined() ? t.item<int64_t>() : int64_t{0};
    };
    std::unique_ptr<to::OptimizerParamState> s;
    if (adagrad) {
      auto a = std::make_unique<to::AdagradParamState>();
      a->sum(take("sum"));
      a->step(step());
      s = std::move(a);
    } else if (adam) {
      s = adam_state<to::AdamParamState>(take, step());
    } else if (adamw) {
      s = adam_state<to::AdamWParamState>(take, step());
    } else {
      auto g = std::make_unique<to::SGDParamState>();
      g->momentum_buffer(take("momentum_buffer"));
      s = std::move(g);
    }
    if (!values.empty())
      throw DataError(fmt::format("checkpoint: optimizer state {}/{} does not fit this optimizer",
                                  name, values.begin()->first));
    live[state_key<decltype(live)>(p)] = std::move(s);
  }
  if (!by_param.empty())
    throw DataError(fmt::format("checkpoint: optimizer state for unknown parameter {}",
                                by_param.begin()->first));
}

}  // namespace tandem::ckpt
