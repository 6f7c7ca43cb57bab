#include "tandem/util/cuda_stream.h"

#include <cuda_runtime.h>

#if TANDEM_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace tandem {

cudaStream_t current_cuda_stream() {
#if TANDEM_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream().stream();
#else
  return cudaStreamLegacy;
#endif
}

double cuda_free_bytes() {
  size_t free = 0, total = 0;
  return cudaMemGetInfo(&free, &total) == cudaSuccess ? static_cast<double>(free) : -1;
}

}  // namespace tandem
