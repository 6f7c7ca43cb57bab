#include "tandem/nn/interaction.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/interaction.h"
#include "tandem/nn/kernel_bridge.h"
#include "tandem/util/error.h"

namespace tandem::nn {
namespace {

kernels::InteractionShape shape_of(const at::Tensor& x, bool with_first) {
  if (x.dim() != 3 || x.size(1) < 1 || x.size(2) < 1)
    throw Error(fmt::format("interaction: input must be [n, vectors >= 1, dim >= 1], not {}",
                            fmt::join(x.sizes(), "x")));
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
    throw Error(fmt::format("interaction: input must be float32 or float64, not {}",
                            c10::toString(x.scalar_type())));
  return {x.size(0), x.size(1), x.size(2), kernel_dtype(x, "interaction input"), with_first};
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct PairwiseDots : torch::autograd::Function<PairwiseDots> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, bool with_first) {
    const at::Tensor x = input.contiguous();
    const kernels::InteractionShape s = shape_of(x, with_first);
    at::Tensor out = at::empty({s.rows, s.width()}, x.options());
    if (x.is_cpu())
      kernels::interaction_forward_cpu(s, x.data_ptr(), out.data_ptr());
    else
      kernels::interaction_forward_cuda(s, x.data_ptr(), out.data_ptr(), cuda_stream(x.device()));
    ctx->save_for_backward({x});
    ctx->saved_data["with_first"] = with_first;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor dout = grads[0].contiguous();
    const kernels::InteractionShape s = shape_of(x, ctx->saved_data["with_first"].toBool());
    if (dout.dim() != 2 || dout.size(0) != s.rows || dout.size(1) != s.width())
      throw Error("interaction backward: the gradient must be [n, output width]");
    at::Tensor dx = at::empty_like(x);
    if (x.is_cpu())
      kernels::interaction_backward_cpu(s, dout.data_ptr(), x.data_ptr(), dx.data_ptr());
    else
      kernels::interaction_backward_cuda(s, dout.data_ptr(), x.data_ptr(), dx.data_ptr(),
                                         cuda_stream(x.device()));
    return {dx, at::Tensor()};
  }
};

}  // namespace

at::Tensor pairwise_dots(const at::Tensor& x, bool with_first) {
  return PairwiseDots::apply(x, with_first);
}

}  // namespace tandem::nn
