#include "tandem/data/criteo.h"
#include "tandem/util/hash.h"
#include "tandem/util/log.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace tandem::data {
int64_t hash_category(int field, uint64_t value, int64_t rows) {
  const uint64_t h = mix64(value ^ (static_cast<uint64_t>(field + 1) << 56));
  return 1 + static_cast<int64_t>(h % static_cast<uint64_t>(rows - 1));
}

bool parse_label(std::string_view field, float* label, std::string* why) {
  if (field == "0" || field == "1") {
    *label = field[0] == '1' ? 1.0f : 0.0f;
    return true;
  }
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  *why = field.substr(0, kBom.size()) == kBom
             ? "the line starts with a UTF-8 byte-order mark (\\xEF\\xBB\\xBF): save the "
               "file without it"
             : fmt::format("label '{}' is not 0 or 1", log::printable(field));
  return false;
}

bool parse_line(std::string_view line, const std::vector<int64_t>& table_rows, float* dense,
                int64_t* sparse, float* label, std::string* why, uint32_t* negative) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string_view fields[kNumFields];
  int n = 0;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    if (n < kNumFields)
      fields[n] = line.substr(start, tab == std::string_view::npos ? tab : tab - start);
    ++n;
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  if (n != kNumFields) {
    *why = fmt::format("expected {} tab-separated fields, found {}", kNumFields, n);
    return false;
  }
  if (!parse_label(fields[0], label, why)) return false;
  if (negative) *negative = 0;
  for (int i = 0; i < kNumDense; ++i) {
    const std::string_view f = fields[1 + i];
    if (f.empty()) {
      dense[i] = std::numeric_limits<float>::quiet_NaN();  // missing: statistics count it
      continue;
    }
    int64_t v = 0;
    const auto r = std::from_chars(f.data(), f.data() + f.size(), v);
    if (r.ec != std::errc() || r.ptr != f.data() + f.size()) {
      *why = fmt::format("field I{} '{}' is not an integer", i + 1, log::printable(f));
      return false;
    }
    if (v < 0 && negative) *negative |= uint32_t{1} << i;
    dense[i] = static_cast<float>(std::log1p(static_cast<double>(v > 0 ? v : 0)));
  }
  for (int i = 0; i < kNumCategorical; ++i) {
    const std::string_view f = fields[1 + kNumDense + i];
    uint64_t v = 0;
    if (!f.empty()) {
      const auto r = std::from_chars(f.data(), f.data() + f.size(), v, 16);
      if (f.size() > 16 || r.ec != std::errc() || r.ptr != f.data() + f.size()) {
        *why = fmt::format("field C{} '{}' is not hexadecimal", i + 1, log::printable(f));
        return false;
      }
    }
    if (!table_rows.empty()) sparse[i] = f.empty() ? 0 : hash_category(i, v, table_rows[i]);
  }
  return true;
}

}  // namespace tandem::data
