#include "tandem/nn/layer_norm.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/layer_norm.h"
#include "tandem/nn/kernel_bridge.h"
#include "tandem/util/error.h"

namespace tandem::nn {
namespace {

kernels::LayerNormShape shape_of(const at::Tensor& x) {
  if (x.dim() < 1 || x.size(-1) < 1) throw Error("layer_norm: input needs a last dimension >= 1");
  if (!at::isFloatingType(x.scalar_type()))
    throw Error(fmt::format("layer_norm: input must be floating point, not {}",
                            c10::toString(x.scalar_type())));
  return {x.numel() / x.size(-1), x.size(-1), kernel_dtype(x, "layer_norm input")};
}

const void* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

void require_param(const at::Tensor& p, const at::Tensor& x, const char* what) {
  if (!p.defined()) return;
  require_on(p, x.device(), what);
  if (p.numel() != x.size(-1) || p.scalar_type() != x.scalar_type())
    throw Error(
        fmt::format("layer_norm: {} must have {} elements of the input's dtype", what, x.size(-1)));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_forward(const at::Tensor& input,
                                                                  const at::Tensor& gamma,
                                                                  const at::Tensor& beta,
                                                                  double eps) {
  const at::Tensor x = input.contiguous();
  const kernels::LayerNormShape s = shape_of(x);
  require_param(gamma, x, "gamma");
  require_param(beta, x, "beta");
  at::Tensor y = at::empty_like(x);
  const auto acc = x.options().dtype(scalar_type(kernels::accumulate_type(s.type)));
  at::Tensor mean = at::empty({s.rows}, acc), rstd = at::empty({s.rows}, acc);
  if (x.is_cpu())
    kernels::layer_norm_forward_cpu(s, x.data_ptr(), data_or_null(gamma), data_or_null(beta), eps,
                                    y.data_ptr(), mean.data_ptr(), rstd.data_ptr());
  else
    kernels::layer_norm_forward_cuda(s, x.data_ptr(), data_or_null(gamma), data_or_null(beta), eps,
                                     y.data_ptr(), mean.data_ptr(), rstd.data_ptr(),
                                     cuda_stream(x.device()));
  return {y, mean, rstd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_backward(const at::Tensor& grad_y,
                                                                   const at::Tensor& input,
                                                                   const at::Tensor& mean,
                                                                   const at::Tensor& rstd,
                                                                   const at::Tensor& gamma) {
  const at::Tensor x = input.contiguous(), dy = grad_y.contiguous();
  const kernels::LayerNormShape s = shape_of(x);
  require_param(gamma, x, "gamma");
  if (!dy.sizes().equals(x.sizes()) || dy.scalar_type() != x.scalar_type())
    throw Error("layer_norm backward: the gradient must match the input");
  at::Tensor dx = at::empty_like(x);
  const auto acc = x.options().dtype(scalar_type(kernels::accumulate_type(s.type)));
  at::Tensor dgamma = at::empty({s.cols}, acc), dbeta = at::empty({s.cols}, acc);
  if (x.is_cpu()) {
    kernels::layer_norm_backward_cpu(s, dy.data_ptr(), x.data_ptr(), mean.data_ptr(),
                                     rstd.data_ptr(), data_or_null(gamma), dx.data_ptr(),
                                     dgamma.data_ptr(), dbeta.data_ptr());
  } else {
    const size_t bytes = kernels::layer_norm_backward_cuda_workspace(s);
    at::Tensor ws = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
    kernels::layer_norm_backward_cuda(s, dy.data_ptr(), x.data_ptr(), mean.data_ptr(),
                                      rstd.data_ptr(), data_or_null(gamma), dx.data_ptr(),
                                      dgamma.data_ptr(), dbeta.data_ptr(), ws.data_ptr(), bytes,
                                      cuda_stream(x.device()));
  }
  return {dx, dgamma.to(x.scalar_type()), dbeta.to(x.scalar_type())};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LayerNormFunction : torch::autograd::Function<LayerNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& gamma,
                            const at::Tensor& beta, double eps) {
    auto [y, mean, rstd] = layer_norm_forward(x, gamma, beta, eps);
    ctx->save_for_backward({x, gamma, mean, rstd});
    ctx->saved_data["gamma"] = gamma.defined();
    ctx->saved_data["beta"] = beta.defined();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    auto [dx, dgamma, dbeta] =
        layer_norm_backward(grads[0], saved[0], saved[2], saved[3], saved[1]);
    if (!ctx->saved_data["gamma"].toBool()) dgamma = at::Tensor();
    if (!ctx->saved_data["beta"].toBool()) dbeta = at::Tensor();
    return {dx.view(saved[0].sizes()), dgamma, dbeta, at::Tensor()};
  }
};

}  // namespace

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta,
                      double eps) {
  return LayerNormFunction::apply(x, gamma, beta, eps);
}

LayerNormImpl::LayerNormImpl(int64_t features, KernelChoice kernels, double eps)
    : features_(features), kernels_(kernels), eps_(eps) {
  weight = register_parameter("weight", at::ones({features}));
  bias = register_parameter("bias", at::zeros({features}));
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) {
  if (kernels_ == KernelChoice::kAten) return at::layer_norm(x, {features_}, weight, bias, eps_);
  return layer_norm(x, weight, bias, eps_);
}

}  // namespace tandem::nn
