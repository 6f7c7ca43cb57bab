// Which compiled variant of the CPU kernels' hot loops runs: baseline x86-64,
// AVX2 (x86-64-v3) or AVX-512 (x86-64-v4). By default the best this CPU has;
// TANDEM_CPU_ISA=baseline|avx2|avx512 forces one, so that every variant can be
// run and tested on one machine. The variants give the same bits (see cpu_simd.h).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace tandem::kernels {

enum class CpuIsa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

/// "baseline", "avx2" or "avx512": the names TANDEM_CPU_ISA takes.
const char* cpu_isa_name(CpuIsa isa);

/// The variant of a name ("baseline", "avx2", "avx512"), or none.
std::optional<CpuIsa> cpu_isa_from_name(const std::string& name);

/// Whether this CPU can run the variant.
bool cpu_isa_supported(CpuIsa isa);

/// The variants this CPU can run, baseline first.
std::vector<CpuIsa> supported_cpu_isas();

/// The variant in use. Read from TANDEM_CPU_ISA at the first call (unset, empty or
/// "auto": the best supported). Throws std::invalid_argument, with one line naming
/// the variable, for an unknown name or a variant this CPU lacks.
CpuIsa cpu_isa();

/// Forces the variant from now on (tests, benchmarks); throws std::invalid_argument
/// if this CPU lacks it.
void set_cpu_isa(CpuIsa isa);

/// "avx512 (x86-64-v4), forced by TANDEM_CPU_ISA" or "avx2 (x86-64-v3), the best
/// this CPU has": for version and start-up lines.
std::string cpu_isa_description();

}  // namespace tandem::kernels
