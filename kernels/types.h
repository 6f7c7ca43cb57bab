// Types shared by every kernel's raw-pointer API. Tensors cross this boundary as
// a pointer plus a DType tag, so the headers compile with or without the CUDA
// toolkit and without LibTorch.
#pragma once

#include <cstdint>

// The CUDA runtime's own definition, repeated so that headers need no CUDA include.
typedef struct CUstream_st* cudaStream_t;

namespace tandem::kernels {

enum class DType : int8_t { kFloat32, kFloat64, kFloat16, kBFloat16, kInt32, kInt64 };

/// Name for error messages ("float32", ...).
const char* dtype_name(DType t);

/// Float types accumulate in float32 except float64, which stays float64. Outputs
/// that are accumulated (pooled bags, gradients, statistics) use this type.
inline DType accumulate_type(DType t) {
  return t == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
}

// Host code throws std::invalid_argument for calls it cannot run (a dtype or size
// it does not support). Errors in the data (an index out of range) are reported
// through the op's own error output instead, so the caller can name the culprit.

}  // namespace tandem::kernels
