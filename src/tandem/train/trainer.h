// The data-parallel training loop. It talks to other ranks only through the
// Communicator: gradients via the Reducer, metrics via exact reductions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/comm/communicator.h"
#include "tandem/config/train_config.h"
#include "tandem/data/loader.h"
#include "tandem/data/prefetcher.h"
#include "tandem/nn/dlrm.h"
#include "tandem/train/metrics.h"
#include "tandem/train/run_dir.h"

namespace torch::optim {
class Optimizer;
}

namespace tandem::train {

struct TrainSummary {
  int64_t steps = 0;
  EvalMetrics baseline;
  EvalMetrics final;
  double samples_per_second = 0;
  bool stopped_early = false;
};

class Trainer {
 public:
  /// Collective: every rank constructs with the same config. Indexes the data,
  /// builds the model and copies rank 0's parameters to every rank.
  Trainer(config::TrainConfig config, comm::Communicator& comm, std::string config_ini = "");
  ~Trainer();

  /// Trains for the configured budget, evaluating as configured; collective.
  TrainSummary run();
  /// One optimizer step on global batch (epoch, step); returns this rank's loss sum.
  double train_step(int64_t epoch, int64_t step, int64_t global_step);
  /// Evaluation on the held-out set; collective, same result on every rank.
  EvalMetrics evaluate();

  nn::Dlrm& model() { return model_; }
  int64_t total_steps() const { return total_steps_; }
  const data::Loader& train_loader() const { return *train_; }

 private:
  config::TrainConfig cfg_;
  comm::Communicator& comm_;
  std::unique_ptr<data::Loader> train_, eval_;
  std::unique_ptr<data::Prefetcher> prefetch_;  ///< reads train_ ahead
  nn::Dlrm model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optim_;
  bool row_optimizer_ = false;  ///< the tables use Tandem's row-wise optimizer
  std::unique_ptr<class Reducer> reducer_;
  RunDir run_dir_;
  int64_t total_steps_ = 0;
  int64_t eval_rows_ = 0, eval_positives_ = 0;
};

}  // namespace tandem::train
