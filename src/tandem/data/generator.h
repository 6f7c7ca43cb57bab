// Synthetic Criteo-format data: Zipf-distributed categorical ids, log-normal
// counts, missing fields, and labels drawn from a hidden "teacher" so a model can
// learn well beyond the base rate. Streams: memory does not grow with the rows.
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
  int64_t files = 1;
  /// Distinct ids per categorical field; one value applies to all 26.
  std::vector<int64_t> cardinalities = {100000};
  double zipf = 1.1;  ///< Zipf exponent of the id distribution (> 0)
};

/// Output for one seed is identical whatever the number of files. Returns the
/// paths written; throws ConfigError on bad options, DataError on I/O failure.
std::vector<std::string> generate(const GenerateOptions& options);

}  // namespace tandem::data
