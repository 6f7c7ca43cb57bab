// The settings of `tandem continuous`: every `tandem train` setting (the model and
// how each retrain trains) plus the [continuous] section.
#pragma once

#include <cstdint>
#include <string>

#include "tandem/config/options.h"
#include "tandem/config/train_config.h"

namespace tandem::config {

struct ContinuousSection {
  std::string incoming;  ///< directory where new labelled TSV files arrive
  std::string dir;       ///< state: champion, challengers, ledger, audit log
  std::string initial;   ///< a `tandem train` checkpoint to start as the champion
  double poll_s = 10;    ///< seconds between looks at `incoming`
  double settle_s = 5;   ///< a file is taken once unchanged this long
  int64_t max_polls = 0;  ///< stop after this many polls (scripts, tests); 0 = until SIGTERM
  // Triggers; each can be switched off.
  int64_t min_new_rows = 100000;  ///< new data: rows since the last retrain; 0 = off
  double every_s = 0;             ///< schedule: seconds between retrains if new data; 0 = off
  bool drift = true;              ///< drift of the new rows from the champion's statistics
  double drift_share = 0.5;       ///< share of the features that must drift
  double psi = 0.25, js = 0.1, linf = 0.3;  ///< per-feature thresholds
  std::string thresholds;         ///< overrides: "I3:psi=0.5,C7:js=0.2"
  double max_ne_rise = 0.05;      ///< decay: relative NE rise of the champion; 0 = off
  // Retraining, evaluation and promotion.
  int64_t window_rows = 0;    ///< train on the newest files holding this many rows; 0 = all new
  int64_t window_files = 0;   ///< and on at most this many files; 0 = all new
  double replay = 0;          ///< older rows mixed in, as a share of the window's rows
  double holdout = 0.1;       ///< share of the window's blocks held out to compare the models
  double min_gain = 0.001;    ///< the challenger's NE must be lower by this
  double max_auc_drop = 0.005;  ///< and its AUC not lower by more than this
  int64_t keep = 5;           ///< earlier champions kept (for --rollback)
  int64_t bins = 64, top = 20;  ///< the statistics fitted for drift
};

struct ContinuousConfig {
  TrainConfig train;
  ContinuousSection continuous;
  OptionSet options();
  /// ConfigError naming the key, before anything starts.
  void validate(int world_size) const;
};

}  // namespace tandem::config
