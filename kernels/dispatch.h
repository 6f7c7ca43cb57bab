// Host-side dispatch from a DType tag to a C++ type: f(T{}) is called with a value
// of the matching type, and an unsupported tag throws std::invalid_argument naming
// the op. Shared by the CPU sources and the host parts of the CUDA sources.
#pragma once

#include <stdexcept>
#include <string>

#include "kernels/types.h"

namespace tandem::kernels {

[[noreturn]] inline void unsupported(const char* op, DType t) {
  throw std::invalid_argument(std::string(op) + ": unsupported dtype " + dtype_name(t));
}

/// float32 or float64.
template <typename F>
auto dispatch_float_cpu(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f(float{});
    case DType::kFloat64:
      return f(double{});
    default:
      unsupported(op, t);
  }
}

/// int32 or int64.
template <typename F>
auto dispatch_index(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::kInt32:
      return f(int32_t{});
    case DType::kInt64:
      return f(int64_t{});
    default:
      unsupported(op, t);
  }
}

}  // namespace tandem::kernels
