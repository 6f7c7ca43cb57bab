#include "tandem/config/continuous_config.h"

#include <fmt/format.h>

#include "tandem/stats/drift.h"
#include "tandem/util/error.h"

namespace tandem::config {

OptionSet ContinuousConfig::options() {
  OptionSet o = train.options();
  ContinuousSection& c = continuous;
  o.add("continuous.incoming", &c.incoming,
        "directory where new labelled TSV files (*.tsv, *.txt) arrive; a file is taken once "
        "its name does not start with '.' or end with .tmp/.part and it has been unchanged "
        "for continuous.settle_s")
      .add("continuous.dir", &c.dir,
           "state directory: state.json (champion, ledger of files), models/, audit.jsonl, "
           "quarantine/")
      .add("continuous.initial", &c.initial,
           "a tandem train checkpoint that becomes the champion when there is none; empty = "
           "the first window trains one")
      .add("continuous.poll_s", &c.poll_s, "seconds between looks at continuous.incoming")
      .add("continuous.settle_s", &c.settle_s, "a file is taken once unchanged this long")
      .add("continuous.max_polls", &c.max_polls,
           "stop (exit 0) after this many polls; 0 = run until SIGTERM")
      .add("continuous.min_new_rows", &c.min_new_rows,
           "new-data trigger: retrain once this many rows arrived since the last retrain; 0 = off")
      .add("continuous.every_s", &c.every_s,
           "schedule trigger: retrain every this many seconds if new rows arrived; 0 = off")
      .add("continuous.drift", &c.drift,
           "drift trigger: the new rows against the champion's training statistics")
      .add("continuous.drift_share", &c.drift_share,
           "the window drifts when at least this share of the 39 features drift")
      .add("continuous.psi", &c.psi, "integer feature drifts above this PSI")
      .add("continuous.js", &c.js, "categorical feature drifts above this Jensen-Shannon distance")
      .add("continuous.linf", &c.linf, "categorical feature drifts above this L-infinity distance")
      .add("continuous.thresholds", &c.thresholds,
           "per-feature overrides, e.g. I3:psi=0.5,C7:js=0.2,C7:linf=0.4")
      .add("continuous.max_ne_rise", &c.max_ne_rise,
           "decay trigger: the champion's NE on the new rows above its NE at promotion by more "
           "than this (relative); 0 = off")
      .add("continuous.window_rows", &c.window_rows,
           "a retrain trains on the newest new files holding this many rows; 0 = all new rows")
      .add("continuous.window_files", &c.window_files,
           "and on at most this many of the newest new files; 0 = all new files")
      .add("continuous.replay", &c.replay,
           "older rows (trained, or superseded by a window) mixed in, as a share of the window's "
           "rows")
      .add("continuous.holdout", &c.holdout,
           "share of the window's blocks held out (never trained on) to compare the models")
      .add("continuous.min_gain", &c.min_gain,
           "promote only if the challenger's NE is lower by this")
      .add("continuous.max_auc_drop", &c.max_auc_drop, "and its AUC is not lower by more than this")
      .add("continuous.keep", &c.keep, "earlier champions kept for --rollback")
      .add("continuous.bins", &c.bins, "histogram bins of the integer features' statistics")
      .add("continuous.top", &c.top, "most frequent values kept per categorical feature");
  return o;
}

void ContinuousConfig::validate(int world_size) const {
  const ContinuousSection& c = continuous;
  require(!c.incoming.empty(), "continuous.incoming", "is not set (the directory of new files)");
  require(!c.dir.empty(), "continuous.dir", "is not set (the state directory)");
  require(c.poll_s > 0, "continuous.poll_s", "must be > 0");
  require(c.settle_s >= 0, "continuous.settle_s", "must be >= 0");
  require(c.max_polls >= 0, "continuous.max_polls", "must be >= 0");
  require(c.min_new_rows >= 0, "continuous.min_new_rows", "must be >= 0 (0 = off)");
  require(c.every_s >= 0, "continuous.every_s", "must be >= 0 (0 = off)");
  require(c.drift_share > 0 && c.drift_share <= 1, "continuous.drift_share", "must be in (0, 1]");
  require(c.psi > 0, "continuous.psi", "must be > 0");
  require(c.js > 0, "continuous.js", "must be > 0");
  require(c.linf > 0, "continuous.linf", "must be > 0");
  stats::DriftThresholds thresholds;
  thresholds.parse_overrides("continuous.thresholds", c.thresholds);
  // The column names are known now unless a header line gives them (then the first
  // drift check checks them).
  if (const auto schema = train.data_schema(); !schema->has_header())
    thresholds.check(*schema->bind());
  require(c.max_ne_rise >= 0, "continuous.max_ne_rise", "must be >= 0 (0 = off)");
  require(c.window_rows >= 0, "continuous.window_rows", "must be >= 0 (0 = all new rows)");
  require(c.window_files >= 0, "continuous.window_files", "must be >= 0 (0 = all new files)");
  require(c.replay >= 0, "continuous.replay", "must be >= 0");
  require(c.holdout > 0 && c.holdout < 1, "continuous.holdout", "must be in (0, 1)");
  require(c.min_gain >= 0, "continuous.min_gain", "must be >= 0");
  require(c.max_auc_drop >= 0, "continuous.max_auc_drop", "must be >= 0");
  require(c.keep >= 1, "continuous.keep", "must be >= 1");
  require(c.bins >= 1 && c.top >= 1, "continuous.bins", "continuous.bins and .top must be >= 1");
  require(train.ps.servers == 0, "ps.servers",
          "continuous retraining trains with replicated tables; set ps.servers=0");
  TrainConfig t = train;  // data.train is unused: the data comes from continuous.incoming
  if (t.data.train.empty()) t.data.train = c.incoming;
  t.validate(world_size);
}

}  // namespace tandem::config
