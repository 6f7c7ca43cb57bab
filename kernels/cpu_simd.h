// CPU code generation for the kernels' hot loops. They are compiled for
// x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and baseline x86-64 and chosen at
// load time by GCC's function multiversioning, so one binary runs on any x86-64
// CPU and still uses the wide units where they exist. (Clones named by `arch=cpu`
// would be picked by CPU model, not by features, and never match, e.g., AMD
// EPYC.) Templates cannot be multiversioned: wrap an always_inline template in a
// plain function per type.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TANDEM_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TANDEM_CPU_CLONES
#endif
