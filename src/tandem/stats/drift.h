// Drift of a window of new rows from a reference: the feature statistics a model
// was trained on (FeatureStats, saved in its checkpoint). The window is counted in
// the reference's own buckets, in one distributed pass (integer counts summed over
// the ranks, so every rank gets the same figures whatever their number):
//   integer feature   its histogram bins (values outside the reference's range in
//                     the first or last bin) plus a "missing" bucket;
//                     PSI = sum (q - p) ln(q / p), and KS = the largest distance
//                     between the two cumulative distributions over the bins
//   categorical       the reference's top values plus "other";
//                     Jensen-Shannon distance (the square root of the divergence,
//                     natural log, as scipy and Evidently) and L-infinity
//                     (the largest difference of one bucket's share, as TFDV)
// Bucket shares are floored at 1e-4 in PSI and JS (as Evidently), so an empty
// bucket does not make them infinite. A feature drifts when a figure exceeds its
// threshold (PSI for integer features; JS or L-infinity for categorical ones); the
// window drifts when at least `share` of the 39 features drift.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "tandem/comm/communicator.h"
#include "tandem/data/loader.h"
#include "tandem/stats/feature_stats.h"

namespace tandem::stats {

struct DriftThresholds {
  double psi = 0.25;
  double js = 0.1;
  double linf = 0.3;
  double share = 0.5;  ///< of the features drifting, for the window to drift
  /// Per feature (a column name: "I3", "C7" for Criteo) overrides of "psi", "js" or
  /// "linf".
  std::map<std::string, std::map<std::string, double>> per_feature;
  std::string source;  ///< the config key or option of the overrides, for errors

  /// Parses overrides "I3:psi=0.5,C7:js=0.2" (ConfigError naming `key` if bad).
  void parse_overrides(const std::string& key, const std::string& spec);
  /// Each override names a column of `schema`, dense with psi, categorical with js
  /// or linf; otherwise a ConfigError (drift() checks, once the data's columns are
  /// known).
  void check(const data::Schema& schema) const;
  double get(const std::string& feature, const std::string& metric) const;
};

struct FeatureDrift {
  std::string feature;  ///< the column's name ("I1".."I13", "C1".."C26" for Criteo)
  bool categorical = false;
  double psi = 0, ks = 0;   ///< integer features
  double js = 0, linf = 0;  ///< categorical features
  bool drifted = false;
  std::string because;  ///< e.g. "psi 0.41 > 0.25"
};

struct DriftReport {
  int64_t rows = 0;  ///< in the window
  std::vector<FeatureDrift> features;
  int drifted = 0;
  double share = 0;  ///< drifted / features
  bool window_drifted = false;
  /// Every feature's figures, or (`drifted_only`) those of the drifted ones.
  nlohmann::json to_json(bool drifted_only = false) const;
  /// The drifted features, worst first, e.g. "I3 (psi 0.41), C7 (js 0.22)".
  std::string summary() const;
};

/// The window's drift from `reference`; collective over the loader's ranks. An
/// empty window is no drift.
DriftReport drift(data::Loader& window, comm::Communicator& comm, const FeatureStats& reference,
                  const DriftThresholds& thresholds);

/// The figures for two count vectors over the same buckets (tests use these).
double psi(const std::vector<double>& reference, const std::vector<double>& window);
double js_distance(const std::vector<double>& reference, const std::vector<double>& window);
double linf(const std::vector<double>& reference, const std::vector<double>& window);
double ks(const std::vector<double>& reference, const std::vector<double>& window);

}  // namespace tandem::stats
