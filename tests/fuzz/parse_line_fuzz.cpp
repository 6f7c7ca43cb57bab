// libFuzzer target for the TSV line parser (data::parse_line), which every byte of
// user data goes through. Any input must give either a parsed row whose values are
// in range, or a one-line, printable reason; never a crash or an invalid access
// (AddressSanitizer + UndefinedBehaviorSanitizer). Built and run by tests/fuzz/run.sh.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "reason.h"
#include "tandem/data/criteo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<int64_t> tables(tandem::data::kNumCategorical, 1000);
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  float dense[tandem::data::kNumDense];
  int64_t sparse[tandem::data::kNumCategorical];
  float label = -1;
  std::string why;
  if (tandem::data::parse_line(line, tables, dense, sparse, &label, &why)) {
    if (label != 0 && label != 1) std::abort();
    for (int64_t s : sparse)
      if (s < 0 || s >= 1000) std::abort();
    for (float d : dense)
      if (!std::isnan(d) && (d < 0 || std::isinf(d))) std::abort();  // log1p of counts >= 0
  } else {
    expect_printable_reason(why);
  }
  return 0;
}
