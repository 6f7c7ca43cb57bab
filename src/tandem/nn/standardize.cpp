#include "tandem/nn/standardize.h"

#include <ATen/ATen.h>

#include "tandem/util/error.h"

namespace tandem::nn {

StandardizeImpl::StandardizeImpl(int64_t features, bool missing_indicator, double eps)
    : features_(features), missing_indicator_(missing_indicator), eps_(eps) {
  mean = register_buffer("mean", at::zeros({features}));
  inv_std = register_buffer("inv_std", at::ones({features}));
}

void StandardizeImpl::set(const stats::Moments& m) {
  if (m.features() != features_) throw Error("standardize: statistics for another feature count");
  const at::Tensor var = m.variance();
  // No values: mean 0; zero (or undefined) variance: the feature is constant -> 0.
  const at::Tensor mu = at::nan_to_num(m.global_mean(), 0.0, 0.0, 0.0);
  const at::Tensor inv = at::where(var > 0, 1.0 / at::sqrt(var + eps_), at::zeros_like(var));
  at::NoGradGuard no_grad;
  mean.copy_(mu);
  inv_std.copy_(inv);
}

at::Tensor StandardizeImpl::forward(const at::Tensor& x) {
  const at::Tensor missing = x.isnan();
  const at::Tensor z = at::where(missing, at::zeros_like(x), (x - mean) * inv_std);
  if (!missing_indicator_) return z;
  return at::cat({z, missing.to(x.scalar_type())}, 1);
}

}  // namespace tandem::nn
