// The Criteo TSV format: label, 13 integer features (I1..I13), 26 hexadecimal
// categorical features (C1..C26), tab-separated, an empty field meaning missing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::data {

constexpr int kNumDense = 13;
constexpr int kNumCategorical = 26;
constexpr int kNumFields = 1 + kNumDense + kNumCategorical;

/// Maps a categorical value into a table of `rows` rows (the hashing trick): a
/// missing value is row 0, every other value one of rows 1..rows-1, so unseen ids
/// still land somewhere.
int64_t hash_category(int field, uint64_t value, int64_t rows);

/// A label field: "0" or "1". Otherwise returns false and sets *why (a UTF-8
/// byte-order mark at the start is named as such).
bool parse_label(std::string_view field, float* label, std::string* why);

/// Parses one line (without its newline; a trailing '\r' is ignored). On success
/// writes 13 dense values (log(1 + max(x, 0)), NaN when missing), 26 table rows
/// (hashed into table_rows[i]; skipped when table_rows is empty) and the label, and
/// returns true; `negative`, if given, gets bit i set for each dense field I(i+1)
/// below 0 (which the transform reads as 0). On a malformed line returns false and
/// sets *why.
bool parse_line(std::string_view line, const std::vector<int64_t>& table_rows, float* dense,
                int64_t* sparse, float* label, std::string* why, uint32_t* negative = nullptr);

}  // namespace tandem::data
