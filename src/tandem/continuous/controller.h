// Continuous retraining (`tandem continuous`): a long-running loop that takes new
// labelled files as they arrive, watches them for drift from the champion's
// training statistics and for decay of the champion's quality, retrains a
// challenger from the champion when a trigger fires, and promotes it only if it is
// better on rows neither model trained on. Every rank runs the loop: rank 0 looks
// at the files and the clock and decides, every rank reads its share of the data
// and trains (data-parallel, the ordinary Trainer). State and audit log: state.h.
//
// One poll:
//   1. rank 0 lists continuous.incoming: new *.tsv/*.txt files (not starting with
//      '.', not ending in .tmp/.part) unchanged for continuous.settle_s;
//   2. every rank indexes them (malformed rows follow data.on_error); a file that
//      cannot be read goes to quarantine/; the rest join the ledger as pending;
//   3. the triggers, each logged with its figures: new data (pending rows >=
//      min_new_rows), schedule (every_s since the last retrain), drift (stats/
//      drift.h: the pending rows against the champion's statistics), decay (the
//      champion's NE on the pending rows above its NE at promotion by more than
//      max_ne_rise, relative), manual (a file RETRAIN in continuous.dir, or SIGHUP).
//      No pending rows, no trigger.
//   4. a retrain: the newest pending files (window_rows) less a held-out share of
//      their blocks (holdout), plus replay x as many older rows; warm-started from
//      the champion (parameters, optimizer state; its standardization statistics
//      are kept, its drift reference is refitted on the window); the challenger
//      and the champion are evaluated on the held-out rows; promotion needs NE
//      lower by min_gain and AUC lower by at most max_auc_drop. The new champion,
//      and the files consumed, commit in one atomic write of state.json.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tandem/comm/communicator.h"
#include "tandem/config/continuous_config.h"
#include "tandem/continuous/state.h"
#include "tandem/data/dataset.h"
#include "tandem/stats/drift.h"
#include "tandem/stats/feature_stats.h"
#include "tandem/tensorboard/event_writer.h"
#include "tandem/train/metrics.h"

namespace tandem::continuous {

class Controller {
 public:
  /// Collective: rank 0 creates the directory, loads the state (making
  /// continuous.initial the champion if there is none) and completes the audit log
  /// after a crash; every rank gets the state.
  Controller(config::ContinuousConfig config, comm::Communicator& comm);

  /// Polls until SIGTERM (returns 5 after a clean stop) or continuous.max_polls
  /// (returns 0). SIGHUP asks for a retrain.
  int run();
  /// Makes the previous champion the champion again (logged); ConfigError if there
  /// is none.
  void rollback();

 private:
  enum class Outcome { kIdle, kRetrained, kStop };
  Outcome poll();
  /// Indexes and registers new files; quarantines unreadable ones.
  void take(const std::vector<std::string>& names);
  /// Trains, evaluates and decides; false if a stop interrupted the training.
  bool retrain(const std::vector<std::string>& reasons, nlohmann::json& event);
  data::Dataset dataset_of(const std::vector<std::string>& names);
  std::vector<std::string> pending() const;
  /// The train config of a retrain or an evaluation: no run directory, no checkpoints.
  config::TrainConfig trainer_config() const;
  /// The champion's metrics on `rows` (evaluation only).
  train::EvalMetrics judge(const data::Dataset& rows);
  /// Rank 0's state to every rank.
  void share_state();
  /// Rank 0 writes state.json.
  void commit();
  void load_reference();
  std::string path(const std::string& relative) const;

  config::ContinuousConfig cfg_;
  comm::Communicator& comm_;
  std::string dir_;
  State state_;
  stats::DriftThresholds thresholds_;
  std::optional<stats::FeatureStats> reference_;  ///< the champion's training statistics
  std::map<std::string, data::Dataset> indexed_;  ///< files indexed so far
  std::string judged_;  ///< what the cached drift and decay figures were computed for
  stats::DriftReport drift_;
  std::optional<train::EvalMetrics> decay_;
  int64_t polls_ = 0;
  /// Rank 0, with log.tensorboard: <continuous.dir>/tb, one point per decision.
  std::unique_ptr<tensorboard::EventWriter> events_;
};

}  // namespace tandem::continuous
