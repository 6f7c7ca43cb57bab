// Choosing the CPU kernels' variant: names, what this CPU supports, forcing one,
// and refusing one the CPU lacks.
#include "kernels/cpu_isa.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace {

using tandem::kernels::CpuIsa;
namespace tk = tandem::kernels;

TEST(CpuIsa, NamesRoundTripAndBaselineIsAlwaysThere) {
  for (CpuIsa isa : {CpuIsa::kBaseline, CpuIsa::kAvx2, CpuIsa::kAvx512})
    EXPECT_EQ(tk::cpu_isa_from_name(tk::cpu_isa_name(isa)), isa);
  EXPECT_FALSE(tk::cpu_isa_from_name("avx9"));
  EXPECT_FALSE(tk::cpu_isa_from_name("auto"));  // a choice, not a variant
  const auto supported = tk::supported_cpu_isas();
  ASSERT_FALSE(supported.empty());
  EXPECT_EQ(supported.front(), CpuIsa::kBaseline);
  // AVX-512 (x86-64-v4) implies AVX2 (x86-64-v3).
  if (tk::cpu_isa_supported(CpuIsa::kAvx512)) EXPECT_TRUE(tk::cpu_isa_supported(CpuIsa::kAvx2));
}

TEST(CpuIsa, ForcesEverySupportedVariant) {
  const CpuIsa in_use = tk::cpu_isa();
  for (CpuIsa isa : tk::supported_cpu_isas()) {
    tk::set_cpu_isa(isa);
    EXPECT_EQ(tk::cpu_isa(), isa);
    EXPECT_NE(tk::cpu_isa_description().find(std::string(tk::cpu_isa_name(isa)) + " ("),
              std::string::npos);
  }
  tk::set_cpu_isa(in_use);
}

TEST(CpuIsa, RefusesAVariantThisCpuLacks) {
  const CpuIsa in_use = tk::cpu_isa();
  int missing = 0;
  for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (tk::cpu_isa_supported(isa)) continue;
    ++missing;
    try {
      tk::set_cpu_isa(isa);
      ADD_FAILURE() << cpu_isa_name(isa) << " was accepted on a CPU that lacks it";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("this CPU lacks ") + tk::cpu_isa_name(isa)),
                std::string::npos)
          << e.what();
    }
    EXPECT_EQ(tk::cpu_isa(), in_use);  // nothing changed
  }
  if (missing == 0) GTEST_SKIP() << "this CPU has every variant: nothing to refuse here";
}

}  // namespace
