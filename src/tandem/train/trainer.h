// The data-parallel training loop. It talks to other ranks only through the
// Communicator: gradients via the Reducer, metrics via exact reductions.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tandem/ckpt/module_state.h"
#include "tandem/ckpt/store.h"
#include "tandem/comm/communicator.h"
#include "tandem/config/train_config.h"
#include "tandem/data/dataset.h"
#include "tandem/data/device_feeder.h"
#include "tandem/data/loader.h"
#include "tandem/data/prefetcher.h"
#include "tandem/nn/dlrm.h"
#include "tandem/ps/placement.h"
#include "tandem/train/metrics.h"
#include "tandem/train/run_dir.h"

namespace torch::optim {
class Optimizer;
}

namespace tandem::train {

/// Whether train.device asks for a GPU: "cuda", or "auto" when LibTorch has CUDA
/// and sees a device. "cuda" without a usable GPU is a ConfigError.
bool use_cuda(const std::string& device_setting);

/// The model a config describes (also how `tandem predict` rebuilds it).
nn::DlrmOptions dlrm_options(const config::TrainConfig& cfg, comm::Communicator* comm);

struct TrainSummary {
  int64_t steps = 0;
  EvalMetrics baseline;
  EvalMetrics final;
  double samples_per_second = 0;
  bool stopped_early = false;
  bool preempted = false;  ///< stopped by SIGTERM/SIGUSR1 (after saving, if checkpointing)
  std::string resumed_from;
  std::string last_checkpoint;
  std::string best_checkpoint;  ///< the checkpoint of the best ckpt.monitor, if saved
};

/// Training and held-out data a caller has indexed and split itself (the continuous
/// controller), used instead of data.train / data.eval.
struct Datasets {
  data::Dataset train, eval;
};

class Trainer {
 public:
  /// Collective: every rank constructs with the same config. Indexes the data,
  /// builds the model and copies rank 0's parameters to every rank. `comm` holds
  /// the ranks that train; with ps.servers > 0 the embedding tables live on `ps`
  /// (whose exchanges span the whole job), otherwise every rank holds them.
  Trainer(config::TrainConfig config, comm::Communicator& comm, std::string config_ini = "",
          ps::ParameterServer* ps = nullptr, const Datasets* data = nullptr);
  ~Trainer();

  /// Trains for the configured budget, evaluating as configured; collective.
  TrainSummary run();
  /// One optimizer step on global batch (epoch, step); returns this rank's loss sum,
  /// a scalar double tensor on the training device (reading it waits for the step).
  at::Tensor train_step(int64_t epoch, int64_t step, int64_t global_step);
  /// Evaluation on the held-out set; collective, same result on every rank.
  EvalMetrics evaluate();

  /// The whole training state; collective (gathers every rank's RNG). Only rank 0's
  /// result holds the model and optimizer; other ranks get the RNG part only.
  /// With `defer_rows` (CPU, Tandem's row-wise optimizer) the embedding table is
  /// copied by whoever runs the state's complete(), while training goes on.
  ckpt::State snapshot(bool defer_rows = false);
  /// Loads a checkpoint into this trainer: same world size = the exact state;
  /// another world size = everything but the per-rank RNG, which is re-seeded.
  void restore(const ckpt::State& state);
  /// Starts from a checkpoint's model, optimizer state and statistics, but as a new
  /// run: step 0 of this trainer's data and schedule (a warm start).
  void warm_start(const ckpt::State& state);
  /// Optimizer steps done (the resume position).
  int64_t step() const { return step_; }

  nn::Dlrm& model() { return model_; }
  /// Where the model trains: the CPU, or this rank's GPU.
  const at::Device& device() const { return device_; }
  int64_t total_steps() const { return total_steps_; }
  const data::Loader& train_loader() const { return *train_; }

 private:
  config::TrainConfig cfg_;
  comm::Communicator& comm_;
  ps::ParameterServer* ps_;  ///< the tables' servers, or null (replicated tables)
  /// `all` less the embedding tables' entries when the servers hold them.
  ckpt::NamedTensors without_tables(ckpt::NamedTensors all) const;
  at::Device device_{at::kCPU};
  /// train.profile: seconds per phase since the last progress line.
  enum Phase { kData, kForward, kBackward, kComm, kOptimizer, kPhases };
  std::array<double, kPhases> phase_seconds_{};
  /// Adds the time since `since` to `phase` (after the device is idle) and restarts it.
  void lap(Phase phase, std::chrono::steady_clock::time_point& since);
  std::unique_ptr<data::Loader> train_, eval_;
  std::unique_ptr<data::Prefetcher> prefetch_;  ///< reads train_ ahead
  /// This rank's slice of (epoch, step), read ahead or now.
  data::Batch host_batch(int64_t epoch, int64_t step);
  std::array<int64_t, 2> lookahead_{-1, -1};  ///< the batch read early for ps.prefetch
  data::Batch lookahead_batch_;
  std::unique_ptr<data::DeviceFeeder> feeder_;  ///< on GPU: copies batches on its own stream
  std::unique_ptr<data::Loader> stats_loader_;  ///< the training rows, for fit_statistics()
  std::map<std::string, at::Tensor> stats_;     ///< the fitted statistics, for checkpoints
  /// Fits (or reads data.stats) and freezes the Standardize statistics; collective.
  void fit_statistics();
  nn::Dlrm model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optim_;
  bool row_optimizer_ = false;  ///< the tables use Tandem's row-wise optimizer
  std::unique_ptr<ps::EmbeddingPlacement> placement_;  ///< replicated or on parameter servers
  std::unique_ptr<class Reducer> reducer_;
  /// train.on_nonfinite: what of this step is not finite ("" = all is), from the
  /// ranks' words (Reducer::finish) and the reduced gradients; the same on every rank.
  std::string nonfinite(const at::Tensor& words) const;
  /// Rank 0, on resume: this run's data files against the checkpoint's (size and
  /// digest); a change is a DataError unless run.allow_changed_data. Sets their digests.
  void verify_data(const std::vector<ckpt::DataFile>& saved, const std::string& path);
  /// The parameters whose gradients nonfinite() checks (the tables only when replicated).
  std::vector<std::pair<std::string, at::Tensor>> checked_;
  /// `loss`, made not finite by the TANDEM_POISON test hook at `step` (1-based).
  at::Tensor poison(const at::Tensor& loss, int64_t step) const;
  static constexpr int kMaxSkippedInRow = 10;  ///< skip_step stops after this many in a row
  int skipped_in_row_ = 0;
  RunDir run_dir_;
  int64_t total_steps_ = 0;
  std::string config_ini_;
  // Loop state, saved in checkpoints.
  int64_t step_ = 0, samples_ = 0, bad_evals_ = 0;
  bool warm_ = false;  ///< started by warm_start(): keeps the statistics it got
  double best_ = std::numeric_limits<double>::infinity();
  double monitor_ = std::numeric_limits<double>::quiet_NaN();  ///< metric of the last eval
  int64_t eval_every_ = 0;                                     ///< train.eval_every in steps
  // The best ckpt.monitor so far (from the history on resume), its step, and the
  // checkpoint this process saved of it, if any.
  double best_monitor_ = std::numeric_limits<double>::quiet_NaN();
  int64_t best_step_ = -1;
  EvalMetrics best_eval_;  ///< the best evaluation's figures
  std::string best_checkpoint_;
  /// Whether evaluation `m` (at `step`) improves ckpt.monitor on the best so far,
  /// and if so makes it the best.
  bool note_monitor(const EvalMetrics& m, int64_t step);
  void best_from_history(const std::string& history);
  /// train.restore_best: the model's weights and statistics become those of the
  /// best evaluation's checkpoint; collective.
  void restore_best_weights();
  // Checkpointing (rank 0 writes).
  std::string ckpt_dir_;  ///< "" = checkpointing off
  std::unique_ptr<ckpt::Store> store_;
  std::string resume_path_;  ///< the checkpoint to resume ("" = a fresh start)
  std::future<std::string> pending_save_;            ///< at most one save in flight
  std::shared_ptr<ckpt::State> in_flight_;           ///< the state it writes
  std::shared_ptr<ckpt::State> spare_;               ///< a written state whose buffers are reused
  std::shared_ptr<nn::RowSnapshot> rows_in_flight_;  ///< the table rows it copies
  double boundary_seconds_ = 0;                      ///< the in-flight save's step-boundary part
  double background_seconds_ = 0;                    ///< its writing, set by the saving thread
  std::vector<ckpt::DataFile> data_files_;
  std::string save_checkpoint(bool wait);
  /// TensorBoard histograms of the weights and the tables' row norms (rank 0).
  void log_histograms();
  void finish_pending_save();
  int64_t eval_rows_ = 0, eval_positives_ = 0;
};

}  // namespace tandem::train
