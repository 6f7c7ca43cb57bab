// A streamed dataset of delimited text (Criteo TSV by default, or any schema):
// one indexing pass cuts the files into blocks of valid rows (byte ranges), so a
// row is found without keeping the data in memory. Malformed lines are found in
// that pass: reported with file:line, and either skipped (remembered per block) or
// fatal. A header line (schemas with one) is checked against the first file's and
// is never a row.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/data/schema.h"

namespace tandem::data {

struct Block {
  int32_t file = 0;
  int64_t offset = 0;  ///< byte offset of the block's first line
  int64_t bytes = 0;
  int64_t first_line = 0;    ///< 1-based line number of the first line in its file
  int64_t rows = 0;          ///< valid rows
  int64_t positives = 0;     ///< valid rows with label 1
  std::vector<int32_t> bad;  ///< indices (within the block's lines) of malformed lines
};

/// How Dataset::index treats malformed lines.
struct IndexOptions {
  int64_t block_rows = 1024;
  bool fail_on_error = false;  ///< the first malformed line throws
  /// Otherwise they are skipped, unless more than this share of the lines is
  /// malformed, or more than max_bad_lines lines (< 0: no count limit): then
  /// index() throws, so that bad input cannot quietly shrink the data.
  double max_bad_fraction = 0.001;
  int64_t max_bad_lines = -1;
  /// The columns; null = Criteo's. Bound to the first file's header if it has one.
  std::shared_ptr<const Schema> schema;
};

struct Dataset {
  std::vector<std::string> files;
  std::shared_ptr<const Schema> schema;  ///< bound: how every row is parsed
  std::vector<Block> blocks;
  int64_t rows = 0;
  int64_t positives = 0;
  int64_t malformed = 0;
  std::vector<std::string> malformed_examples;  ///< "file:line: reason", first few
  /// Per dense column: values below 0 (log1p reads them as 0), and the first one's
  /// "file:line".
  std::vector<int64_t> negative;
  std::vector<std::string> first_negative;

  /// Expands `spec` (comma-separated files or directories; a directory contributes
  /// its *.tsv / *.txt / *.csv files in name order) and indexes them. With
  /// `fail_on_error` the first malformed line throws DataError("file:line:
  /// reason"); otherwise more malformed lines than the options allow throw
  /// DataError with their count, their share and the first three.
  static Dataset index(const std::string& spec, const IndexOptions& options);

  /// One line per finding for the log: the malformed lines skipped, and each dense
  /// column with negative values. Empty when there is nothing to say.
  std::vector<std::string> findings(const std::string& spec) const;

  /// Splits blocks deterministically (by a hash of the block number, independent of
  /// the seed): returns {train, held_out}, held_out getting round(fraction * blocks),
  /// at least one when fraction > 0 and there are two or more blocks.
  std::pair<Dataset, Dataset> split(double fraction) const;

  /// The datasets one after the other (their files and blocks concatenated).
  static Dataset merged(const std::vector<Dataset>& parts);
};

}  // namespace tandem::data
