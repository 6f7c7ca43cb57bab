// Between LibTorch tensors and kernels/' raw-pointer API: dtype tags, device
// checks, the current CUDA stream and device workspace. CUDA tensors are only
// dispatched when LibTorch itself was built with CUDA (TANDEM_TORCH_CUDA); with a
// CPU-only LibTorch they cannot exist, and the CUDA kernels are only compiled.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "kernels/types.h"

namespace tandem::nn {

/// The kernels' tag for a tensor's dtype; throws naming `what` if unsupported.
kernels::DType kernel_dtype(const at::Tensor& t, const std::string& what);

/// at::ScalarType of a kernels dtype.
c10::ScalarType scalar_type(kernels::DType t);

/// Throws unless `t` is defined, contiguous and on `device`.
void require_on(const at::Tensor& t, const c10::Device& device, const std::string& what);

/// Whether CUDA tensors can be dispatched to Tandem's CUDA kernels in this build.
bool cuda_kernels_available();

/// The current CUDA stream of `device` (a CUDA device); throws in a build that
/// cannot dispatch CUDA tensors.
cudaStream_t cuda_stream(const c10::Device& device);

}  // namespace tandem::nn
