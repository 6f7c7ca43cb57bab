#include "tandem/nn/kernel_bridge.h"

#include <fmt/format.h>

#if TANDEM_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include "tandem/util/error.h"

namespace tandem::nn {

kernels::DType kernel_dtype(const at::Tensor& t, const std::string& what) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return kernels::DType::kFloat32;
    case at::kDouble:
      return kernels::DType::kFloat64;
    case at::kHalf:
      return kernels::DType::kFloat16;
    case at::kBFloat16:
      return kernels::DType::kBFloat16;
    case at::kInt:
      return kernels::DType::kInt32;
    case at::kLong:
      return kernels::DType::kInt64;
    default:
      throw Error(fmt::format("{}: unsupported dtype {}", what, c10::toString(t.scalar_type())));
  }
}

c10::ScalarType scalar_type(kernels::DType t) {
  switch (t) {
    case kernels::DType::kFloat32:
      return at::kFloat;
    case kernels::DType::kFloat64:
      return at::kDouble;
    case kernels::DType::kFloat16:
      return at::kHalf;
    case kernels::DType::kBFloat16:
      return at::kBFloat16;
    case kernels::DType::kInt32:
      return at::kInt;
    case kernels::DType::kInt64:
      return at::kLong;
  }
  throw Error("unknown kernels dtype");
}

void require_on(const at::Tensor& t, const c10::Device& device, const std::string& what) {
  if (!t.defined()) throw Error(what + ": tensor is undefined");
  if (t.device() != device)
    throw Error(fmt::format("{}: on {}, expected {}", what, t.device().str(), device.str()));
  if (!t.is_contiguous()) throw Error(what + ": must be contiguous");
}

bool cuda_kernels_available() { return TANDEM_TORCH_CUDA != 0; }

cudaStream_t cuda_stream([[maybe_unused]] const c10::Device& device) {
#if TANDEM_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
#else
  throw Error(
      fmt::format("{} tensor: this Tandem build has no CUDA kernels (LibTorch without CUDA, or "
                  "TANDEM_WITH_CUDA=OFF)",
                  device.str()));
#endif
}

}  // namespace tandem::nn
