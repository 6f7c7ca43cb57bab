// libFuzzer target for the delimited [schema] parser (data::Schema::parse), which
// every byte of a CSV's data goes through: a header CSV of a label, dense columns
// under log1p, none and clip, a hashed and a hex column, and two multi-hot lists
// (hashed, summed; hex, averaged). Any input must give either a parsed row whose
// values are in range (every id in its table, empty slots only after a list's ids
// and only in a multi-hot column), or a one-line, printable reason; never a crash or
// an invalid access (AddressSanitizer + UndefinedBehaviorSanitizer). Built and run
// by tests/fuzz/run.sh.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "reason.h"
#include "tandem/data/schema.h"

namespace td = tandem::data;

const td::Schema& schema() {
  static const auto s = [] {
    td::SchemaSpec spec;
    spec.format = "delimited";
    spec.header = true;
    spec.label = "label";
    spec.dense = "a, b:none, c:clip:-1:1";
    spec.categorical = "city, code:hex, tags:sep=|:max=3, codes:hex:sep=;:max=2:mean";
    return td::Schema::from_spec(spec)->bind("label,a,b,c,city,code,tags,codes", "fuzz.csv");
  }();
  return *s;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const td::Schema& s = schema();
  static const std::vector<int64_t> tables{1000, 50, 7, 2};
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  float dense[3];
  int64_t sparse[7];
  float label = -1;
  std::string why;
  if (s.parse(line, tables, dense, sparse, &label, &why, nullptr)) {
    if (label != 0 && label != 1) std::abort();
    if (std::isinf(dense[1])) std::abort();  // none: finite or missing
    if (!std::isnan(dense[0]) && (dense[0] < 0 || std::isinf(dense[0]))) std::abort();
    if (!std::isnan(dense[2]) && (dense[2] < -1 || dense[2] > 1)) std::abort();
    for (const td::Schema::Categorical& c : s.categorical()) {
      const int64_t rows = tables[static_cast<size_t>(&c - s.categorical().data())];
      bool ended = false;  // a list's empty slots come after its ids
      for (int j = 0; j < c.max_ids; ++j) {
        const int64_t id = sparse[c.slot + j];
        if (id == td::Schema::kNoId && c.max_ids > 1) {
          ended = true;
        } else if (ended || id < 0 || id >= rows) {
          std::abort();
        }
      }
    }
  } else {
    expect_printable_reason(why);
  }
  return 0;
}
