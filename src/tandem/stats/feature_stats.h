// Global statistics of the Criteo features, fitted in one distributed pass over
// the training data (tandem fit-stats): for the 13 integer features (after
// log1p; missing values counted, not imputed) the mergeable moments and a
// histogram of fixed bins over the fitted range; for the 26 categorical features
// (table rows) the most frequent values with their counts and an "other" count.
// Every rank reads its slice of every batch; the partials are merged across ranks
// (moments in rank order, counts by sums), so every rank ends with the same result.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

#include "tandem/comm/communicator.h"
#include "tandem/data/loader.h"
#include "tandem/stats/moments.h"

namespace tandem::stats {

struct FitOptions {
  int64_t bins = 64;  ///< histogram bins per integer feature
  int64_t top = 20;   ///< most frequent values kept per categorical feature
};

struct FeatureStats {
  Moments dense;           ///< [dense columns]
  at::Tensor hist_edges;   ///< [dense, bins + 1] float64: min .. max
  at::Tensor hist_counts;  ///< [dense, bins] int64 (present values only)
  at::Tensor top_values;   ///< [categorical, top] int64 table rows, -1 = unused slot
  at::Tensor top_counts;   ///< [categorical, top] int64
  /// [categorical] int64 values not in the top: rows, or ids of a multi-hot column
  at::Tensor other;
  at::Tensor rows;         ///< [] int64 rows seen
};

/// Two reads of the loader's data (moments and value counts, then histograms over
/// the global range); collective.
FeatureStats fit(data::Loader& loader, comm::Communicator& comm, const FitOptions& options);

/// HDF5 (schema in the README): written by the caller's rank 0.
void save(const FeatureStats& stats, const std::string& path);
FeatureStats load(const std::string& path);

/// As named tensors ("dense/mean", ...), the layout of the HDF5 file, for checkpoints.
std::map<std::string, at::Tensor> to_tensors(const FeatureStats& stats);
/// Back from named tensors (a checkpoint's statistics); DataError naming `where`
/// and the missing statistic.
FeatureStats from_tensors(const std::map<std::string, at::Tensor>& tensors,
                          const std::string& where);

/// Per feature: count, mean, variance (population), min, max, missing; and the
/// categorical top values.
nlohmann::json to_json(const FeatureStats& stats);

}  // namespace tandem::stats
