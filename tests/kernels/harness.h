// The kernel test harness: every op runs on every backend this build and machine
// can run (CPU always; CUDA when Tandem has CUDA kernels, LibTorch has CUDA and a
// device is present) and is compared with ATen's own op, computed on the CPU in
// float64, by normalised error: max |result - reference| / max |reference|.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/cpu_isa.h"

namespace tandem::testing {

struct Backend {
  std::string name;
  c10::Device device;
};

/// Why CUDA tests cannot run here, or "" if they can.
std::string cuda_unavailable_reason();

/// CPU, then CUDA if available.
std::vector<Backend> kernel_backends();

/// max |a - ref| / max(max |ref|, floor), both taken to the CPU in float64. The
/// floor keeps a reference that is zero up to rounding from dividing by ~0.
double normalised_error(const at::Tensor& a, const at::Tensor& ref, double floor = 1e-30);

/// Bit-identical (same dtype, shape and bytes).
bool same_bits(const at::Tensor& a, const at::Tensor& b);

/// Runs `f` (returning tensors) under every CPU kernel variant this CPU has, then
/// restores the variant in use, and expects every variant's tensors to have the
/// same bits as baseline's: the CPU variants are bit-identical by design
/// (kernels/cpu_simd.h). Returns how many variants ran.
template <typename F>
int expect_same_bits_on_every_cpu_isa(F f) {
  const kernels::CpuIsa in_use = kernels::cpu_isa();
  std::vector<at::Tensor> first;
  int n = 0;
  for (kernels::CpuIsa isa : kernels::supported_cpu_isas()) {
    kernels::set_cpu_isa(isa);
    const std::vector<at::Tensor> got = f();
    if (n++ == 0) {
      first = got;
      continue;
    }
    EXPECT_EQ(got.size(), first.size());
    for (size_t i = 0; i < got.size() && i < first.size(); ++i)
      EXPECT_TRUE(same_bits(got[i], first[i]))
          << "tensor " << i << ": " << kernels::cpu_isa_name(isa) << " differs from baseline";
  }
  kernels::set_cpu_isa(in_use);
  return n;
}

/// Per-op thresholds by dtype, for results compared with a float64 reference.
inline double tolerance(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return 1e-12;
    case at::kFloat:
      return 2e-6;
    default:
      return 1e-2;  // float16 / bfloat16 storage, float32 accumulation
  }
}

}  // namespace tandem::testing
