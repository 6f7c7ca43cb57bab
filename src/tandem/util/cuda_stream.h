// The CUDA stream LibTorch runs this thread's work on, for code that orders its own
// streams against it (the NCCL backend, the device feeder), and the device's free
// memory, for checks made before allocating. Built with CUDA only.
#pragma once

// The CUDA runtime's own definition, repeated so that this header needs no CUDA include.
typedef struct CUstream_st* cudaStream_t;

namespace tandem {

/// LibTorch's current stream on the current device; with a CPU-only LibTorch (no
/// CUDA tensor can exist) the legacy default stream.
cudaStream_t current_cuda_stream();

/// Bytes free on the current CUDA device (cudaMemGetInfo), or -1 if it cannot say.
double cuda_free_bytes();

}  // namespace tandem
