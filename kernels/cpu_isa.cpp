#include "kernels/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace tandem::kernels {

namespace {

// Per variant, in CpuIsa order: its TANDEM_CPU_ISA name and the x86-64 level it
// is compiled for (also what __builtin_cpu_supports is asked).
struct Variant {
  const char* name;
  const char* level;
};
constexpr Variant kVariants[] = {
    {"baseline", "x86-64"}, {"avx2", "x86-64-v3"}, {"avx512", "x86-64-v4"}};
constexpr CpuIsa kAll[] = {CpuIsa::kBaseline, CpuIsa::kAvx2, CpuIsa::kAvx512};

const Variant& variant(CpuIsa isa) { return kVariants[static_cast<int>(isa)]; }

}  // namespace

bool cpu_isa_supported(CpuIsa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  switch (isa) {  // __builtin_cpu_supports takes string literals only
    case CpuIsa::kAvx512:
      return __builtin_cpu_supports("x86-64-v4");
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("x86-64-v3");
    case CpuIsa::kBaseline:
      return true;
  }
  return false;
#else
  return isa == CpuIsa::kBaseline;  // the variants are x86-64 code generation
#endif
}

namespace {

constexpr const char* kVariable = "TANDEM_CPU_ISA";

CpuIsa best() {
  for (CpuIsa isa : {CpuIsa::kAvx512, CpuIsa::kAvx2})
    if (cpu_isa_supported(isa)) return isa;
  return CpuIsa::kBaseline;
}

void require_supported(CpuIsa isa, const std::string& origin) {
  if (!cpu_isa_supported(isa))
    throw std::invalid_argument(origin + ": this CPU lacks " + cpu_isa_name(isa) + " (" +
                                variant(isa).level + "); best available is " +
                                cpu_isa_name(best()));
}

// -1 until the first cpu_isa(); then the variant's number. g_forced_by names what
// forced it, or is null for the automatic choice.
std::atomic<int> g_isa{-1};
std::atomic<const char*> g_forced_by{nullptr};

}  // namespace

const char* cpu_isa_name(CpuIsa isa) { return variant(isa).name; }

std::optional<CpuIsa> cpu_isa_from_name(const std::string& name) {
  for (CpuIsa isa : kAll)
    if (name == cpu_isa_name(isa)) return isa;
  return std::nullopt;
}

std::vector<CpuIsa> supported_cpu_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : kAll)
    if (cpu_isa_supported(isa)) out.push_back(isa);
  return out;
}

CpuIsa cpu_isa() {
  const int v = g_isa.load(std::memory_order_relaxed);
  if (v >= 0) return static_cast<CpuIsa>(v);
  const char* env = std::getenv(kVariable);
  const std::string name = env ? env : "";
  CpuIsa isa = best();
  if (!name.empty() && name != "auto") {
    const std::string origin = std::string(kVariable) + "=" + name;
    const std::optional<CpuIsa> named = cpu_isa_from_name(name);
    if (!named) throw std::invalid_argument(origin + ": not one of auto, baseline, avx2, avx512");
    isa = *named;
    require_supported(isa, origin);
    g_forced_by = kVariable;
  }
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
  return isa;
}

void set_cpu_isa(CpuIsa isa) {
  require_supported(isa, std::string("set_cpu_isa(") + cpu_isa_name(isa) + ")");
  g_forced_by = "set_cpu_isa";
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

std::string cpu_isa_description() {
  const CpuIsa isa = cpu_isa();
  return std::string(cpu_isa_name(isa)) + " (" + variant(isa).level + "), " +
         (g_forced_by ? std::string("forced by ") + g_forced_by.load() : "the best this CPU has");
}

}  // namespace tandem::kernels
