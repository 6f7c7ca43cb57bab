#include "tandem/stats/moments.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <limits>

#include "kernels/chan.h"
#include "kernels/moments.h"
#include "tandem/nn/kernel_bridge.h"
#include "tandem/util/error.h"

namespace tandem::stats {
namespace {

Moments allocate(int64_t features, const at::TensorOptions& device) {
  const auto d = device.dtype(at::kDouble), l = device.dtype(at::kLong);
  return {at::zeros({features}, l),
          at::zeros({features}, d),
          at::zeros({features}, d),
          at::zeros({features}, d),
          at::full({features}, std::numeric_limits<double>::infinity(), d),
          at::full({features}, -std::numeric_limits<double>::infinity(), d),
          at::zeros({features}, l)};
}

kernels::Moments pointers(const Moments& m) {
  return {m.count.data_ptr<int64_t>(),  m.shift.data_ptr<double>(), m.mean.data_ptr<double>(),
          m.m2.data_ptr<double>(),      m.min.data_ptr<double>(),   m.max.data_ptr<double>(),
          m.missing.data_ptr<int64_t>()};
}

Moments to_cpu(const Moments& m) {
  return {m.count.cpu(), m.shift.cpu(), m.mean.cpu(),   m.m2.cpu(),
          m.min.cpu(),   m.max.cpu(),   m.missing.cpu()};
}

}  // namespace

Moments Moments::empty(int64_t features) { return allocate(features, at::TensorOptions()); }

Moments Moments::of(const at::Tensor& input) {
  if (input.dim() != 2) throw Error("moments: input must be [rows, features]");
  const at::Tensor x = input.contiguous();
  const kernels::DType type = nn::kernel_dtype(x, "moments input");
  if (type != kernels::DType::kFloat32 && type != kernels::DType::kFloat64)
    throw Error("moments: input must be float32 or float64");
  Moments m = allocate(x.size(1), at::TensorOptions().device(x.device()));
  if (x.is_cpu()) {
    kernels::column_moments_cpu(x.data_ptr(), type, x.size(0), x.size(1), pointers(m));
    return m;
  }
  const size_t bytes = kernels::column_moments_cuda_workspace(x.size(0), x.size(1));
  at::Tensor ws = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
  kernels::column_moments_cuda(x.data_ptr(), type, x.size(0), x.size(1), pointers(m), ws.data_ptr(),
                               bytes, nn::cuda_stream(x.device()));
  return to_cpu(m);
}

Moments Moments::merged(const Moments& other) const {
  if (other.features() != features())
    throw Error(fmt::format("moments: merging {} features with {}", features(), other.features()));
  Moments out = empty(features());
  const kernels::Moments a = pointers(*this), b = pointers(other), o = pointers(out);
  for (int64_t j = 0; j < features(); ++j) {
    kernels::ChanPartial p = kernels::load_partial(a, j);
    kernels::chan_merge(p, kernels::load_partial(b, j));
    kernels::store_partial(o, j, p);
  }
  return out;
}

at::Tensor Moments::global_mean() const {
  return at::where(count > 0, shift + mean, at::full_like(mean, std::nan("")));
}

at::Tensor Moments::variance() const {
  return at::where(count > 0, m2 / count.to(at::kDouble), at::full_like(m2, std::nan("")));
}

Moments allmerge(const Moments& local, comm::Communicator& comm) {
  // One [7, features] float64 row per rank (counts are exact in float64 to 2^53).
  const at::Tensor packed =
      at::stack({local.count.to(at::kDouble), local.shift, local.mean, local.m2, local.min,
                 local.max, local.missing.to(at::kDouble)})
          .contiguous();
  const at::Tensor all = comm.allgather(packed);  // [ranks, 7, features]
  Moments acc = Moments::empty(local.features());
  for (int64_t r = 0; r < all.size(0); ++r) {
    const at::Tensor p = all[r];
    const Moments m{p[0].to(at::kLong).contiguous(),
                    p[1].contiguous(),
                    p[2].contiguous(),
                    p[3].contiguous(),
                    p[4].contiguous(),
                    p[5].contiguous(),
                    p[6].to(at::kLong).contiguous()};
    acc = acc.merged(m);
  }
  return acc;
}

}  // namespace tandem::stats
