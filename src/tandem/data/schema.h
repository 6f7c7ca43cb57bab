// What the columns of a data file are. Two formats:
// - criteo (the default): label, 13 integer and 26 hexadecimal fields, tab-separated,
//   parsed by data/criteo.h's parse_line (the fast path, unchanged);
// - delimited: any delimiter, an optional header line, a label column, dense
//   columns read as floats with a transform each (log1p, none, clip), categorical
//   columns hashed from their bytes or read as hexadecimal (one id per field, or
//   a multi-hot list of up to `max` ids split at a separator, pooled by sum or
//   mean), and columns ignored.
//   Every column is named in exactly one role, so a forgotten or misspelt column is
//   an error rather than a silently different model.
// A column is named by its header name, or by its position counted from 1 (as
// `cut -f` counts). A spec is bound to a file's columns (its header line, or
// schema.columns) before any line is parsed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::data {

/// The config's [schema] section, as written (config/train_config.h reads it).
struct SchemaSpec {
  std::string format = "criteo";  ///< criteo or delimited
  std::string delimiter = ",";    ///< delimited: one character, or tab / comma / space
  bool header = false;            ///< delimited: the first line of every file names the columns
  int64_t columns = 0;            ///< delimited: the number of columns (0 = the header's)
  std::string label;              ///< delimited: the label column (values 0 or 1)
  std::string dense;              ///< COL[:log1p|none|clip:LO:HI], comma-separated
  std::string categorical;        ///< COL[:hash|hex][:sep=C:max=N[:sum|mean]], comma-separated
  std::string ignore;             ///< COL, comma-separated
};

class Schema {
 public:
  enum class Transform { kLog1p, kNone, kClip };
  enum class Encoding { kHash, kHex };
  struct Dense {
    std::string ref;   ///< as written: a header name or a 1-based position
    int column = -1;   ///< 0-based, once bound
    std::string name;  ///< the header name once bound, else "column N"
    Transform transform = Transform::kLog1p;
    double lo = 0, hi = 0;  ///< kClip's bounds
  };
  struct Categorical {
    std::string ref;
    int column = -1;
    std::string name;
    Encoding encoding = Encoding::kHash;
    /// Multi-hot: the field is a list of ids split at `separator` (0: one id), at
    /// most `max_ids` of them, pooled by their sum or `mean`.
    char separator = 0;
    int max_ids = 1;
    bool mean = false;
    int slot = 0;  ///< its first column in a batch's ids (see parse)
  };
  static constexpr int kMaxDense = 64;
  static constexpr int kMaxIds = 1024;  ///< a multi-hot field's max=
  /// A batch's id slot that holds no id: the rest of a shorter multi-hot list.
  static constexpr int64_t kNoId = -1;

  /// Criteo's 13 + 26, already bound.
  static std::shared_ptr<const Schema> criteo();
  /// From the config; throws ConfigError naming the schema.* key. A criteo spec
  /// gives criteo(); a delimited one still has to be bound.
  static std::shared_ptr<const Schema> from_spec(const SchemaSpec& spec);

  bool is_criteo() const { return criteo_; }
  bool has_header() const { return header_; }
  bool bound() const { return columns_ > 0; }
  int num_dense() const { return static_cast<int>(dense_.size()); }
  int num_categorical() const { return static_cast<int>(categorical_.size()); }
  const std::vector<Dense>& dense() const { return dense_; }
  const std::vector<Categorical>& categorical() const { return categorical_; }
  /// Id slots per row: one per categorical column, max_ids for a multi-hot one.
  int num_slots() const { return slots_; }
  bool multi_hot() const { return slots_ > num_categorical(); }
  /// The categorical column of each slot, [num_slots].
  std::vector<int64_t> slot_columns() const;

  /// Bound to a file: its header line (when the schema has one; `where` names the
  /// file for errors, which are DataError), or to schema.columns. Throws with the
  /// column named when a name is not in the header, a position is past the last
  /// column, a column has two roles or none.
  std::shared_ptr<const Schema> bind(std::string_view header_line, const std::string& where) const;
  std::shared_ptr<const Schema> bind() const;
  /// The first header field that differs from the bound one, for the error.
  std::string header_difference(std::string_view header_line) const;
  /// Whether lines parse alike under both bindings: the same columns in every role.
  bool same_columns(const Schema& other) const;

  /// parse_line's contract for any schema: dense values (transformed; NaN when
  /// empty), the label, and num_slots() table rows: column i's ids (hashed into
  /// table_rows[i]; skipped when table_rows is empty) fill its slots from
  /// Categorical::slot on, and kNoId the rest of a multi-hot column's slots. An
  /// empty single field is row 0, an empty multi-hot field no id at all.
  /// `negative` gets bit i set for each log1p column i below 0. On a malformed line
  /// returns false and sets *why (naming the column).
  bool parse(std::string_view line, const std::vector<int64_t>& table_rows, float* dense,
             int64_t* sparse, float* label, std::string* why, uint64_t* negative) const;

  /// The unbound schema as JSON, for readers outside Tandem (python/tandem_dlrm.py):
  /// {"format": "criteo"} or {"format": "delimited", "delimiter", "header",
  /// "columns", "label", "dense": [{"column", "transform", "lo", "hi"}],
  /// "categorical": [{"column", "encoding", "separator", "max_ids", "mean"}],
  /// "ignore": [...]}, columns as written (a header name or a 1-based position).
  std::string to_json() const;

  /// Names of the dense and categorical columns, in model order (I1.., C1.. for Criteo).
  std::string dense_name(int i) const;
  std::string categorical_name(int i) const;

 private:
  bool criteo_ = false;
  char delimiter_ = ',';
  bool header_ = false;
  int64_t declared_columns_ = 0;
  int columns_ = 0;  ///< bound column count
  std::string label_ref_;
  int label_ = -1;
  std::vector<Dense> dense_;
  std::vector<Categorical> categorical_;
  int slots_ = 0;
  std::vector<std::string> ignore_refs_;
  std::vector<std::string> header_names_;  ///< bound header fields
  /// A header line's fields, without its CR and a leading UTF-8 byte-order mark.
  std::vector<std::string_view> header_fields(std::string_view line) const;
};

/// FNV-1a, 64 bits, of the bytes: the stable hash of a categorical string before
/// hash_category() maps it into a table.
uint64_t hash_bytes(std::string_view bytes);

}  // namespace tandem::data
