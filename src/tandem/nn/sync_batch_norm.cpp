#include "tandem/nn/sync_batch_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdint>

#include "tandem/stats/moments.h"
#include "tandem/util/error.h"

namespace tandem::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y = (x - mean) * invstd * weight + bias with the global mean/invstd given;
// backward needs the global sums of dy and dy * xhat over all ranks' rows.
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& mean,
                            const at::Tensor& invstd, double total, comm::Communicator* comm) {
    const at::Tensor xhat = (x - mean) * invstd;
    ctx->save_for_backward({xhat, weight, invstd});
    ctx->saved_data["total"] = total;
    // The communicator travels as an integer: saved_data holds IValues only.
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    return xhat * weight + bias;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor& xhat = s[0];
    const at::Tensor& weight = s[1];
    const at::Tensor& invstd = s[2];
    const at::Tensor dy = grads[0];
    const double total = ctx->saved_data["total"].toDouble();
    auto* comm = reinterpret_cast<comm::Communicator*>(
        static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
    const at::Tensor sum_dy = dy.sum(0), sum_dy_xhat = (dy * xhat).sum(0);
    // Both sums over every rank's rows, in float64, one collective.
    at::Tensor global = at::cat({sum_dy, sum_dy_xhat}).to(at::kCPU, at::kDouble);
    if (comm && comm->size() > 1) comm->allreduce(global, comm::ReduceOp::kSum);
    global = global.to(dy.options());
    const int64_t c = sum_dy.numel();
    const at::Tensor g_dy = global.narrow(0, 0, c), g_dy_xhat = global.narrow(0, c, c);
    const at::Tensor dx = weight * invstd / total * (total * dy - g_dy - xhat * g_dy_xhat);
    // Local parameter gradients: the reducer sums them across ranks.
    return {dx, sum_dy_xhat, sum_dy, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

SyncBatchNormImpl::SyncBatchNormImpl(int64_t features, comm::Communicator* comm, double momentum,
                                     double eps)
    : comm_(comm), momentum_(momentum), eps_(eps) {
  weight = register_parameter("weight", at::ones({features}));
  bias = register_parameter("bias", at::zeros({features}));
  running_mean = register_buffer("running_mean", at::zeros({features}));
  running_var = register_buffer("running_var", at::ones({features}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor SyncBatchNormImpl::forward(const at::Tensor& x) {
  if (x.dim() != 2 || x.size(1) != weight.numel())
    throw Error("sync_batch_norm: input must be [rows, features]");
  if (!is_training()) return (x - running_mean) / at::sqrt(running_var + eps_) * weight + bias;

  stats::Moments m = stats::Moments::of(x.detach());
  if (comm_ && comm_->size() > 1) m = stats::allmerge(m, *comm_);
  const double total = static_cast<double>(m.count[0].item<int64_t>());
  if (total == 0) throw Error("sync_batch_norm: no rows on any rank in a training step");
  const at::Tensor mean = m.global_mean(), var = m.variance();
  {
    at::NoGradGuard no_grad;
    const at::Tensor unbiased = total > 1 ? var * (total / (total - 1)) : var;
    running_mean.mul_(1 - momentum_).add_(mean.to(running_mean.options()), momentum_);
    running_var.mul_(1 - momentum_).add_(unbiased.to(running_var.options()), momentum_);
    num_batches_tracked.add_(1);
  }
  // The moments come back on the CPU; the normalization runs on x's device.
  const at::Tensor invstd = (1.0 / at::sqrt(var + eps_)).to(x.options());
  return SyncBatchNormFunction::apply(x, weight, bias, mean.to(x.options()), invstd, total, comm_);
}

}  // namespace tandem::nn
