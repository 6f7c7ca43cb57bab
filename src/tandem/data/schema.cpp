#include "tandem/data/schema.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "tandem/data/criteo.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::data {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

void split(std::string_view line, char delimiter, std::vector<std::string_view>& out) {
  out.clear();
  size_t start = 0;
  while (true) {
    const size_t at = line.find(delimiter, start);
    out.push_back(line.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return;
    start = at + 1;
  }
}

/// A comma-separated list of COL[:OPTION...] items, each split at ':'.
std::vector<std::vector<std::string>> items(const std::string& key, const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::vector<std::string_view> parts, fields;
  split(text, ',', parts);
  for (std::string_view part : parts) {
    part = trim(part);
    if (part.empty()) continue;
    split(part, ':', fields);
    std::vector<std::string> item;
    for (std::string_view f : fields) item.emplace_back(trim(f));
    if (item[0].empty())
      throw ConfigError(fmt::format("{}: '{}' names no column", key, log::printable(part, 80)));
    out.push_back(std::move(item));
  }
  return out;
}

double number(const std::string& key, const std::string& item, const std::string& text) {
  double v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || !std::isfinite(v))
    throw ConfigError(
        fmt::format("{}: '{}': '{}' is not a number", key, item, log::printable(text, 40)));
  return v;
}

/// An item as written, for an error message (one printable line).
std::string joined(const std::vector<std::string>& item) {
  std::string s = item[0];
  for (size_t i = 1; i < item.size(); ++i) s += ":" + item[i];
  return log::printable(s, 80);
}

/// A delimiter or separator: one character, or its name.
char character_of(const std::string& key, const std::string& text) {
  if (text == "tab" || text == "\\t") return '\t';
  if (text == "comma") return ',';
  if (text == "space") return ' ';
  if (text == "semicolon") return ';';
  if (text == "pipe") return '|';
  if (text.size() == 1 && text[0] != '\n' && text[0] != '\r' && text[0] != ':') return text[0];
  throw ConfigError(
      fmt::format("{}: '{}' is not one character (or tab, comma, space, semicolon, pipe)", key,
                  log::printable(text)));
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

uint64_t hash_bytes(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::shared_ptr<const Schema> Schema::criteo() {
  static const std::shared_ptr<const Schema> kCriteo = [] {
    auto s = std::make_shared<Schema>();
    s->criteo_ = true;
    s->delimiter_ = '\t';
    s->columns_ = kNumFields;
    s->label_ = 0;
    for (int i = 0; i < kNumDense; ++i) {
      Dense d;
      d.column = 1 + i;
      d.name = d.ref = fmt::format("I{}", i + 1);
      s->dense_.push_back(d);
    }
    for (int i = 0; i < kNumCategorical; ++i) {
      Categorical c;
      c.column = 1 + kNumDense + i;
      c.name = c.ref = fmt::format("C{}", i + 1);
      c.encoding = Encoding::kHex;
      c.slot = s->slots_++;
      s->categorical_.push_back(c);
    }
    return s;
  }();
  return kCriteo;
}

std::shared_ptr<const Schema> Schema::from_spec(const SchemaSpec& spec) {
  if (spec.format == "criteo") {
    const bool plain = spec.label.empty() && spec.dense.empty() && spec.categorical.empty() &&
                       spec.ignore.empty() && !spec.header && spec.columns == 0;
    if (!plain)
      throw ConfigError(
          "schema.format: criteo takes no other schema.* keys (set schema.format=delimited to "
          "describe the columns)");
    return criteo();
  }
  if (spec.format != "delimited")
    throw ConfigError(
        fmt::format("schema.format: '{}' is not criteo or delimited", log::printable(spec.format)));
  auto s = std::make_shared<Schema>();
  s->delimiter_ = character_of("schema.delimiter", spec.delimiter);
  s->header_ = spec.header;
  if (spec.columns < 0) throw ConfigError("schema.columns: must be >= 0 (0 = the header's)");
  if (!spec.header && spec.columns == 0)
    throw ConfigError("schema.columns: is needed without a header line (schema.header=false)");
  s->declared_columns_ = spec.columns;
  if (trim(spec.label).empty())
    throw ConfigError("schema.label: is not set (the column of 0/1 labels)");
  s->label_ref_ = std::string(trim(spec.label));
  for (const auto& item : items("schema.dense", spec.dense)) {
    Dense d;
    d.ref = item[0];
    const std::string t = item.size() > 1 ? item[1] : "log1p";
    const size_t want = t == "clip" ? 4 : 2;
    if (t == "log1p") {
      d.transform = Transform::kLog1p;
    } else if (t == "none") {
      d.transform = Transform::kNone;
    } else if (t == "clip") {
      d.transform = Transform::kClip;
      if (item.size() == 4) {
        d.lo = number("schema.dense", joined(item), item[2]);
        d.hi = number("schema.dense", joined(item), item[3]);
      }
      if (item.size() == 4 && !(d.lo <= d.hi))
        throw ConfigError(
            fmt::format("schema.dense: '{}': the lower bound is above the upper", joined(item)));
    } else {
      throw ConfigError(fmt::format("schema.dense: '{}': '{}' is not log1p, none or clip:LO:HI",
                                    joined(item), log::printable(t, 40)));
    }
    if (item.size() > want || (t == "clip" && item.size() != 4))
      throw ConfigError(fmt::format(
          "schema.dense: '{}' is not COLUMN, COLUMN:log1p, COLUMN:none or COLUMN:clip:LO:HI",
          joined(item)));
    s->dense_.push_back(d);
  }
  if (s->dense_.size() > kMaxDense)
    throw ConfigError(
        fmt::format("schema.dense: {} columns, at most {}", s->dense_.size(), kMaxDense));
  for (const auto& item : items("schema.categorical", spec.categorical)) {
    Categorical c;
    c.ref = item[0];
    const auto bad = [&](const std::string& why) {
      return ConfigError(
          fmt::format("schema.categorical: '{}': {} (COLUMN[:hash|hex]"
                      "[:sep=C:max=N[:sum|mean]])",
                      joined(item), why));
    };
    bool pooled = false, has_max = false;
    for (size_t k = 1; k < item.size(); ++k) {
      const std::string& o = item[k];
      if (o == "hash" || o == "hex") {
        c.encoding = o == "hex" ? Encoding::kHex : Encoding::kHash;
      } else if (o == "sum" || o == "mean") {
        c.mean = o == "mean";
        pooled = true;
      } else if (o.rfind("sep=", 0) == 0) {
        c.separator = character_of("schema.categorical", o.substr(4));
        if (c.separator == s->delimiter_)
          throw bad("the separator is schema.delimiter, which splits the fields");
      } else if (o.rfind("max=", 0) == 0) {
        const std::string n = o.substr(4);
        if (!all_digits(n) || n.size() > 5 || std::stoi(n) < 1 || std::stoi(n) > kMaxIds)
          throw bad(fmt::format("max={} is not a number of ids from 1 to {}", log::printable(n, 20),
                                kMaxIds));
        c.max_ids = std::stoi(n);
        has_max = true;
      } else {
        throw bad(fmt::format("'{}' is not an option", log::printable(o, 40)));
      }
    }
    if (has_max && c.separator == 0)
      throw bad("max= needs sep=, the separator of a multi-hot field's ids");
    if (c.separator != 0 && !has_max)
      throw bad("a multi-hot field (sep=) needs max=, the most ids in one field");
    if (pooled && c.separator == 0) throw bad("sum or mean pools a multi-hot field (sep=)");
    c.slot = s->slots_;
    s->slots_ += c.max_ids;
    s->categorical_.push_back(c);
  }
  if (s->categorical_.empty())
    throw ConfigError("schema.categorical: names no column (the model needs at least one table)");
  for (const auto& item : items("schema.ignore", spec.ignore)) {
    if (item.size() > 1)
      throw ConfigError(fmt::format("schema.ignore: '{}' is not a column", joined(item)));
    s->ignore_refs_.push_back(item[0]);
  }
  return s;
}

std::shared_ptr<const Schema> Schema::bind() const {
  if (header_) throw Error("schema: a schema with a header is bound to a file's header line");
  return bind({}, "");
}

std::shared_ptr<const Schema> Schema::bind(std::string_view header_line,
                                           const std::string& where) const {
  if (bound()) return std::make_shared<Schema>(*this);
  auto s = std::make_shared<Schema>(*this);
  // Errors about the file's header are the data's (exit 3); without one, the config's.
  const auto fail = [&](const std::string& msg) -> void {
    if (header_) throw DataError(fmt::format("{}: {}", where, msg));
    throw ConfigError(msg);
  };
  if (header_) {
    for (std::string_view f : header_fields(header_line)) s->header_names_.emplace_back(f);
    s->columns_ = static_cast<int>(s->header_names_.size());
    if (declared_columns_ > 0 && declared_columns_ != s->columns_)
      fail(fmt::format("the header line has {} columns, schema.columns says {}", s->columns_,
                       declared_columns_));
  } else {
    s->columns_ = static_cast<int>(declared_columns_);
  }
  std::vector<std::string> role(static_cast<size_t>(s->columns_));
  const auto resolve = [&](const std::string& key, const std::string& ref) {
    const std::string shown = log::printable(ref, 80);  // for the messages
    int column = -1;
    for (size_t i = 0; i < s->header_names_.size(); ++i)
      if (s->header_names_[i] == ref) {
        if (column >= 0) fail(fmt::format("{}: the header names column '{}' twice", key, shown));
        column = static_cast<int>(i);
      }
    if (column < 0 && all_digits(ref) && ref.size() < 9) {
      const int n = std::stoi(ref);
      if (n < 1 || n > s->columns_)
        fail(fmt::format("{}: column {} is past the last column ({})", key, shown, s->columns_));
      column = n - 1;
    }
    if (column < 0)
      fail(header_ ? fmt::format("{}: column '{}' is not in the header line", key, shown)
                   : fmt::format("{}: '{}' is not a column position (1-{}); names need "
                                 "schema.header=true",
                                 key, shown, s->columns_));
    std::string& r = role[static_cast<size_t>(column)];
    if (!r.empty()) fail(fmt::format("{}: column '{}' is already in {}", key, shown, r));
    r = key;
    return column;
  };
  const auto name_of = [&](int column) {
    return header_ ? s->header_names_[static_cast<size_t>(column)]
                   : fmt::format("column {}", column + 1);
  };
  s->label_ = resolve("schema.label", s->label_ref_);
  for (Dense& d : s->dense_) d.name = name_of(d.column = resolve("schema.dense", d.ref));
  for (Categorical& c : s->categorical_)
    c.name = name_of(c.column = resolve("schema.categorical", c.ref));
  for (const std::string& ref : s->ignore_refs_) resolve("schema.ignore", ref);
  for (int i = 0; i < s->columns_; ++i)
    if (role[static_cast<size_t>(i)].empty())
      fail(fmt::format(
          "column {}{} has no role: name it in schema.dense, schema.categorical or "
          "schema.ignore",
          i + 1,
          header_
              ? fmt::format(" '{}'", log::printable(s->header_names_[static_cast<size_t>(i)], 80))
              : ""));
  return s;
}

std::vector<std::string_view> Schema::header_fields(std::string_view line) const {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.substr(0, kBom.size()) == kBom) line.remove_prefix(kBom.size());
  std::vector<std::string_view> fields;
  split(line, delimiter_, fields);
  return fields;
}

std::string Schema::header_difference(std::string_view header_line) const {
  const std::vector<std::string_view> fields = header_fields(header_line);
  for (size_t i = 0; i < std::max(fields.size(), header_names_.size()); ++i) {
    const std::string want = i < header_names_.size() ? header_names_[i] : "(none)";
    const std::string got = i < fields.size() ? std::string(fields[i]) : "(none)";
    if (want != got)
      return fmt::format("column {} is '{}' where the first file's header has '{}'", i + 1,
                         log::printable(got), log::printable(want));
  }
  return "";
}

bool Schema::same_columns(const Schema& o) const {
  if (criteo_ != o.criteo_ || columns_ != o.columns_ || label_ != o.label_ ||
      delimiter_ != o.delimiter_ || dense_.size() != o.dense_.size() ||
      categorical_.size() != o.categorical_.size())
    return false;
  for (size_t i = 0; i < dense_.size(); ++i)
    if (dense_[i].column != o.dense_[i].column) return false;
  for (size_t i = 0; i < categorical_.size(); ++i)
    if (categorical_[i].column != o.categorical_[i].column) return false;
  return true;
}

bool Schema::parse(std::string_view line, const std::vector<int64_t>& table_rows, float* dense,
                   int64_t* sparse, float* label, std::string* why, uint64_t* negative) const {
  if (criteo_) {
    uint32_t neg = 0;
    const bool ok =
        parse_line(line, table_rows, dense, sparse, label, why, negative ? &neg : nullptr);
    if (negative) *negative = neg;
    return ok;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // The fields, by memchr into a buffer of the bound width (the hot loop: no growth).
  thread_local std::vector<std::string_view> f;
  if (f.size() < static_cast<size_t>(columns_)) f.resize(static_cast<size_t>(columns_));
  size_t found = 0;
  for (const char *p = line.data(), *end = p + line.size();; ++found) {
    const auto* at =
        static_cast<const char*>(std::memchr(p, delimiter_, static_cast<size_t>(end - p)));
    if (found < static_cast<size_t>(columns_))
      f[found] = std::string_view(p, static_cast<size_t>((at ? at : end) - p));
    if (!at) break;
    p = at + 1;
  }
  if (++found != static_cast<size_t>(columns_)) {
    *why = fmt::format("expected {} fields separated by '{}', found {}", columns_,
                       log::printable(std::string_view(&delimiter_, 1)), found);
    return false;
  }
  if (!parse_label(f[static_cast<size_t>(label_)], label, why)) return false;
  if (negative) *negative = 0;
  for (size_t i = 0; i < dense_.size(); ++i) {
    const Dense& d = dense_[i];
    const std::string_view v = f[static_cast<size_t>(d.column)];
    if (v.empty()) {
      dense[i] = std::numeric_limits<float>::quiet_NaN();  // missing: statistics count it
      continue;
    }
    // Integers (most count data) parse faster as integers, and an int64's nearest
    // double is the decimal's nearest double: the same value either way.
    double x = 0;
    int64_t n = 0;
    const char* end = v.data() + v.size();
    if (const auto ri = std::from_chars(v.data(), end, n); ri.ec == std::errc() && ri.ptr == end) {
      x = static_cast<double>(n);
    } else if (const auto r = std::from_chars(v.data(), end, x);
               r.ec != std::errc() || r.ptr != end || !std::isfinite(x)) {
      *why = fmt::format("field {} '{}' is not a finite number", d.name, log::printable(v));
      return false;
    }
    switch (d.transform) {
      case Transform::kLog1p:
        if (x < 0 && negative) *negative |= uint64_t{1} << i;
        x = std::log1p(x > 0 ? x : 0);
        break;
      case Transform::kClip:
        x = std::min(std::max(x, d.lo), d.hi);
        break;
      case Transform::kNone:
        break;
    }
    dense[i] = static_cast<float>(x);
    if (std::isinf(dense[i])) {  // a double beyond float32's range would train as inf
      *why = fmt::format("field {} '{}' is beyond float32's range (3.4e38)", d.name,
                         log::printable(v));
      return false;
    }
  }
  for (size_t i = 0; i < categorical_.size(); ++i) {
    const Categorical& c = categorical_[i];
    std::string_view v = f[static_cast<size_t>(c.column)];
    int64_t* out = sparse + c.slot;
    const auto id_of = [&](std::string_view id, int64_t* row) {
      uint64_t x = 0;
      if (c.encoding == Encoding::kHex) {
        const auto r = std::from_chars(id.data(), id.data() + id.size(), x, 16);
        if (id.size() > 16 || r.ec != std::errc() || r.ptr != id.data() + id.size()) {
          *why = fmt::format("field {} '{}' is not hexadecimal", c.name, log::printable(id));
          return false;
        }
      } else {
        x = hash_bytes(id);
      }
      if (!table_rows.empty()) *row = hash_category(static_cast<int>(i), x, table_rows[i]);
      return true;
    };
    if (c.separator == 0) {
      if (v.empty()) {
        if (!table_rows.empty()) *out = 0;
      } else if (!id_of(v, out)) {
        return false;
      }
      continue;
    }
    int n = 0;  // a multi-hot list: its ids, then kNoId up to max_ids
    for (size_t start = 0; !v.empty();) {
      const size_t at = v.find(c.separator, start);
      const std::string_view id = v.substr(start, at == std::string_view::npos ? at : at - start);
      if (id.empty()) {
        *why =
            fmt::format("field {} '{}' has an empty id (id {})", c.name, log::printable(v), n + 1);
        return false;
      }
      if (n == c.max_ids) {
        *why = fmt::format("field {} has more than its max={} ids", c.name, c.max_ids);
        return false;
      }
      if (!id_of(id, out + n)) return false;
      ++n;
      if (at == std::string_view::npos) break;
      start = at + 1;
    }
    if (!table_rows.empty()) std::fill(out + n, out + c.max_ids, kNoId);
  }
  return true;
}

std::vector<int64_t> Schema::slot_columns() const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < categorical_.size(); ++i)
    out.insert(out.end(), static_cast<size_t>(categorical_[i].max_ids), static_cast<int64_t>(i));
  return out;
}

std::string Schema::to_json() const {
  if (criteo_) return nlohmann::json{{"format", "criteo"}}.dump();
  nlohmann::json dense = nlohmann::json::array(), categorical = nlohmann::json::array();
  for (const Dense& d : dense_)
    dense.push_back({{"column", d.ref},
                     {"transform", d.transform == Transform::kLog1p  ? "log1p"
                                   : d.transform == Transform::kClip ? "clip"
                                                                     : "none"},
                     {"lo", d.lo},
                     {"hi", d.hi}});
  for (const Categorical& c : categorical_)
    categorical.push_back({{"column", c.ref},
                           {"encoding", c.encoding == Encoding::kHex ? "hex" : "hash"},
                           {"separator", c.separator ? std::string(1, c.separator) : ""},
                           {"max_ids", c.max_ids},
                           {"mean", c.mean}});
  return nlohmann::json{{"format", "delimited"},      {"delimiter", std::string(1, delimiter_)},
                        {"header", header_},          {"columns", declared_columns_},
                        {"label", label_ref_},        {"dense", dense},
                        {"categorical", categorical}, {"ignore", ignore_refs_}}
      .dump();
}

std::string Schema::dense_name(int i) const { return dense_[static_cast<size_t>(i)].name; }
std::string Schema::categorical_name(int i) const {
  return categorical_[static_cast<size_t>(i)].name;
}

}  // namespace tandem::data
