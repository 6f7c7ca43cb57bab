#include "kernels/harness.h"

#include <torch/cuda.h>

#include "tandem/nn/kernel_bridge.h"

namespace tandem::testing {

std::string cuda_unavailable_reason() {
  if (!nn::cuda_kernels_available())
    return "this build has no CUDA kernel dispatch (LibTorch without CUDA, or "
           "TANDEM_WITH_CUDA=OFF)";
  if (!torch::cuda::is_available()) return "no CUDA device on this machine";
  return "";
}

std::vector<Backend> kernel_backends() {
  std::vector<Backend> out{{"cpu", c10::Device(at::kCPU)}};
  if (cuda_unavailable_reason().empty()) out.push_back({"cuda", c10::Device(at::kCUDA, 0)});
  return out;
}

double normalised_error(const at::Tensor& a, const at::Tensor& ref, double floor) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble), r = ref.to(at::kCPU, at::kDouble);
  if (x.sizes() != r.sizes()) return std::numeric_limits<double>::infinity();
  if (r.numel() == 0) return 0.0;
  const double scale = std::max(r.abs().max().item<double>(), floor);
  return (x - r).abs().max().item<double>() / scale;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor x = a.to(at::kCPU).contiguous(), y = b.to(at::kCPU).contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

}  // namespace tandem::testing
