// Synthetic Criteo-format data: Zipf-distributed categorical ids, log-normal
// counts, missing fields, and labels drawn from a hidden "teacher" so a model can
// learn well beyond the base rate. Streams: memory does not grow with the rows.
// A change point makes a stream with known drift: covariate shift (shifted
// integer features, permuted categorical ids, another Zipf exponent) or concept
// drift (another teacher), from a given row on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::data {

struct GenerateOptions {
  int64_t rows = 100000;
  uint64_t seed = 1;
  /// A .tsv path when files == 1, else a directory that receives part-NNNNN.tsv.
  std::string out;
  /// tsv: Criteo's layout. csv: the same rows as a header CSV for a [schema]
  /// (configs/csv_example.ini): id (a row number, to ignore), i1-i13 as decimals
  /// (half the counts), c1-c26 as strings, tags (a multi-hot field: 0-4 of 40 tags
  /// t00-t39 joined by '|', whose mean effect also moves the label), label last;
  /// part files end in .csv.
  std::string format = "tsv";
  int64_t files = 1;
  /// Distinct ids per categorical field; one value applies to all 26.
  std::vector<int64_t> cardinalities = {100000};
  double zipf = 1.1;  ///< Zipf exponent of the id distribution (> 0)

  /// A change point: rows from `drift_at` on (counted over all files) come from
  /// another distribution; -1 = none. Each of the following applies after it.
  int64_t drift_at = -1;
  std::vector<int64_t> shift_dense;        ///< integer features (1-13) whose log shifts
  double shift = 1.0;                      ///< by this much (covariate shift)
  std::vector<int64_t> permute_categorical;  ///< categoricals (1-26) whose ids are permuted
  double zipf_after = 0;                   ///< > 0: the ids' Zipf exponent (covariate shift)
  uint64_t teacher_seed = 0;               ///< != 0: another hidden teacher (concept drift)
};

/// Output for one seed is identical whatever the number of files. Returns the
/// paths written; throws ConfigError on bad options, DataError on I/O failure.
std::vector<std::string> generate(const GenerateOptions& options);

}  // namespace tandem::data
