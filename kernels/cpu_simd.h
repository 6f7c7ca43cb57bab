// CPU code generation for the kernels' hot loops. Each hot loop is compiled three
// times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and baseline x86-64, and
// the variant runs that cpu_isa() names: by default the best this CPU has,
// TANDEM_CPU_ISA forces another. (GCC's target_clones would pick by itself, with
// no way to force a variant, so a test could only ever see one of them.)
//
// The variants give the same bits: the kernels are compiled with
// -ffp-contract=off (no FMA contraction that only some variants could do), and
// every sum runs in an order fixed by the sizes (explicit lanes, never an
// `omp simd reduction`, whose order follows the vector width). Vectorization then
// only computes independent lanes side by side.
#pragma once

#include "kernels/cpu_isa.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TANDEM_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define TANDEM_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#else
#define TANDEM_TARGET_AVX512
#define TANDEM_TARGET_AVX2
#endif

/// Defines `ret name params`, running `impl args` as compiled for the variant that
/// cpu_isa() names. `impl` is an always_inline function (a template is fine), so
/// each variant inlines its own copy.
///   TANDEM_CPU_VARIANTS(void, axpy_f, (float* y, const float* x, float a, int64_t n),
///                       (y, x, a, n), axpy<float>)
#define TANDEM_CPU_VARIANTS(ret, name, params, args, impl)            \
  TANDEM_TARGET_AVX512 ret name##_avx512 params { return impl args; } \
  TANDEM_TARGET_AVX2 ret name##_avx2 params { return impl args; }     \
  ret name##_baseline params { return impl args; }                    \
  ret name params {                                                   \
    switch (::tandem::kernels::cpu_isa()) {                           \
      case ::tandem::kernels::CpuIsa::kAvx512:                        \
        return name##_avx512 args;                                    \
      case ::tandem::kernels::CpuIsa::kAvx2:                          \
        return name##_avx2 args;                                      \
      default:                                                        \
        return name##_baseline args;                                  \
    }                                                                 \
  }
