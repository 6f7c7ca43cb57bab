#include "tandem/data/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tandem/data/criteo.h"
#include "tandem/util/error.h"
#include "tandem/util/hash.h"

namespace fs = std::filesystem;

namespace tandem::data {
namespace {

std::vector<std::string> expand(const std::string& spec) {
  std::vector<std::string> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    std::error_code ec;
    if (fs::is_directory(item, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(item)) {
        const std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".tsv" || ext == ".txt" || ext == ".csv"))
          found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      if (found.empty())
        throw DataError(fmt::format("'{}': directory has no .tsv, .txt or .csv files", item));
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(item, ec)) {
      out.push_back(item);
    } else {
      throw DataError(fmt::format("'{}': no such file or directory", item));
    }
  }
  if (out.empty()) throw DataError(fmt::format("'{}' names no data files", spec));
  return out;
}

}  // namespace

Dataset Dataset::index(const std::string& spec, const IndexOptions& options) {
  const int64_t block_rows = options.block_rows;
  Dataset ds;
  ds.files = expand(spec);
  ds.schema = options.schema ? options.schema : Schema::criteo();
  if (!ds.schema->has_header()) ds.schema = ds.schema->bind();
  const std::vector<int64_t> no_tables;
  std::vector<float> dense(static_cast<size_t>(ds.schema->num_dense()));
  ds.negative.assign(dense.size(), 0);
  ds.first_negative.assign(dense.size(), "");
  float label = 0;
  std::string why;
  std::string line;
  uint64_t negative = 0;
  for (int32_t f = 0; f < static_cast<int32_t>(ds.files.size()); ++f) {
    std::ifstream in(ds.files[f], std::ios::binary);
    if (!in) throw DataError(fmt::format("'{}': cannot open", ds.files[f]));
    Block cur;
    cur.file = f;
    int64_t offset = 0;
    int64_t lines_in_block = 0;
    int64_t no = 1;
    if (ds.schema->has_header()) {  // line 1 names the columns: the first file's, every file's
      if (!std::getline(in, line))
        throw DataError(fmt::format("{}: empty; the schema expects a header line", ds.files[f]));
      if (!ds.schema->bound())
        ds.schema = ds.schema->bind(line, ds.files[f]);
      else if (const std::string diff = ds.schema->header_difference(line); !diff.empty())
        throw DataError(fmt::format("{}:1: header: {}", ds.files[f], diff));
      offset = static_cast<int64_t>(line.size()) + (in.eof() ? 0 : 1);
      cur.offset = offset;
      no = 2;
    }
    auto flush = [&](int64_t next_line) {
      if (lines_in_block > 0) ds.blocks.push_back(cur);
      cur = Block{};
      cur.file = f;
      cur.offset = offset;
      cur.first_line = next_line;
      lines_in_block = 0;
    };
    cur.first_line = no;
    for (; std::getline(in, line); ++no) {
      const int64_t len = static_cast<int64_t>(line.size()) + (in.eof() ? 0 : 1);
      if (!ds.schema->parse(line, no_tables, dense.data(), nullptr, &label, &why, &negative)) {
        const std::string msg = fmt::format("{}:{}: {}", ds.files[f], no, why);
        if (options.fail_on_error) throw DataError(msg);
        if (ds.malformed_examples.size() < 3) ds.malformed_examples.push_back(msg);
        ++ds.malformed;
        cur.bad.push_back(static_cast<int32_t>(lines_in_block));
      } else {
        ++cur.rows;
        ++ds.rows;
        cur.positives += label > 0.5f;
        ds.positives += label > 0.5f;
        for (size_t i = 0; negative != 0 && i < dense.size(); ++i)
          if (negative & (uint64_t{1} << i) && ds.negative[i]++ == 0)
            ds.first_negative[i] = fmt::format("{}:{}", ds.files[f], no);
      }
      ++lines_in_block;
      cur.bytes += len;
      offset += len;
      if (cur.rows == block_rows) flush(no + 1);
    }
    if (cur.rows > 0) ds.blocks.push_back(cur);
  }
  const int64_t lines = ds.rows + ds.malformed;
  const double share = lines > 0 ? static_cast<double>(ds.malformed) / lines : 0.0;
  const bool too_many_lines = options.max_bad_lines >= 0 && ds.malformed > options.max_bad_lines;
  if (share > options.max_bad_fraction || too_many_lines) {
    std::string first;
    for (const std::string& e : ds.malformed_examples) first += (first.empty() ? "" : "; ") + e;
    throw DataError(fmt::format(
        "{}: {} of {} lines ({:.3g}%) are malformed, more than {} allows (data.on_error=skip); "
        "first: {}",
        spec, ds.malformed, lines, 100.0 * share,
        too_many_lines ? fmt::format("data.max_bad_lines = {}", options.max_bad_lines)
                       : fmt::format("data.max_bad_fraction = {}", options.max_bad_fraction),
        first));
  }
  return ds;
}

std::vector<std::string> Dataset::findings(const std::string& spec) const {
  std::vector<std::string> out;
  if (malformed > 0)
    out.push_back(fmt::format("data: skipped {} malformed line(s) of {} in {}; first: {}",
                              malformed, rows + malformed, spec, malformed_examples.front()));
  for (size_t i = 0; i < negative.size(); ++i)
    if (negative[i] > 0)
      out.push_back(fmt::format(
          "data: {} has {} negative value(s) in {}, which log(1 + max(x, 0)) reads as 0; "
          "first: {}",
          schema->dense_name(static_cast<int>(i)), negative[i], spec, first_negative[i]));
  return out;
}

std::pair<Dataset, Dataset> Dataset::split(double fraction) const {
  const size_t n = blocks.size();
  size_t held = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  if (fraction > 0 && held == 0 && n >= 2) held = 1;
  if (held >= n && n > 0) held = n - 1;
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [](size_t a, size_t b) {
    return std::make_pair(mix64(a ^ 0x5eedULL), a) < std::make_pair(mix64(b ^ 0x5eedULL), b);
  });
  std::vector<bool> is_held(n, false);
  for (size_t i = 0; i < held; ++i) is_held[order[i]] = true;
  Dataset train, eval;
  train.files = eval.files = files;
  train.schema = eval.schema = schema;
  train.malformed = malformed;
  train.malformed_examples = malformed_examples;
  train.negative = negative;
  train.first_negative = first_negative;
  for (size_t i = 0; i < n; ++i) {
    Dataset& d = is_held[i] ? eval : train;
    d.blocks.push_back(blocks[i]);
    d.rows += blocks[i].rows;
    d.positives += blocks[i].positives;
  }
  return {train, eval};
}

Dataset Dataset::merged(const std::vector<Dataset>& parts) {
  Dataset out;
  for (const Dataset& d : parts) {
    if (!out.schema) {
      out.schema = d.schema;
      out.negative.assign(d.negative.size(), 0);
      out.first_negative.assign(d.negative.size(), "");
    } else if (d.schema && !d.schema->same_columns(*out.schema)) {
      // Indexed apart (tandem continuous: one file at a time): one binding must
      // read them all, so their columns must lie alike.
      throw DataError(fmt::format("{}: its header orders the columns unlike {}'s",
                                  d.files.empty() ? "?" : d.files.front(), out.files.front()));
    }
    const auto first_file = static_cast<int32_t>(out.files.size());
    out.files.insert(out.files.end(), d.files.begin(), d.files.end());
    for (Block b : d.blocks) {
      b.file += first_file;
      out.blocks.push_back(std::move(b));
    }
    out.rows += d.rows;
    out.positives += d.positives;
    out.malformed += d.malformed;
    out.malformed_examples.insert(out.malformed_examples.end(), d.malformed_examples.begin(),
                                  d.malformed_examples.end());
    for (size_t i = 0; i < out.negative.size() && i < d.negative.size(); ++i) {
      if (out.negative[i] == 0) out.first_negative[i] = d.first_negative[i];
      out.negative[i] += d.negative[i];
    }
  }
  return out;
}

}  // namespace tandem::data
