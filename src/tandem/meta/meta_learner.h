// The meta-training loop of `tandem meta`: MAML, first-order MAML or Reptile over
// a task family, distributed over ranks, with the joint-training baseline, the
// few-shot evaluation protocol and exact checkpoint/resume.
//
// Distribution: the tasks of a meta-batch are split over the ranks in contiguous
// shares that differ by at most one task (25 tasks on 2 ranks: 12 and 13; a rank
// may get none when meta_batch < ranks). Each rank scales its tasks' objective by
// 1/meta_batch and the Reducer sums the gradients, so every rank steps with the
// mean over the whole meta-batch, whatever the split: the same result as one rank
// running it, up to the order of floating-point sums.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/ckpt/optimizer_state.h"
#include "tandem/ckpt/store.h"
#include "tandem/comm/communicator.h"
#include "tandem/config/meta_config.h"
#include "tandem/meta/functional_model.h"
#include "tandem/meta/maml.h"
#include "tandem/meta/task_family.h"
#include "tandem/train/run_dir.h"

namespace torch::optim {
class Optimizer;
}
namespace tandem::train {
class Reducer;
}

namespace tandem::meta {

struct MetaSummary {
  int64_t iterations = 0;
  double iterations_per_second = 0;
  nlohmann::json final;  ///< the last metrics.jsonl line: the evaluation
  std::string resumed_from;
};

class MetaLearner {
 public:
  /// Collective: every rank constructs with the same config.
  MetaLearner(config::MetaConfig config, comm::Communicator& comm, std::string config_ini = "");
  ~MetaLearner();

  /// Meta-trains for meta.iterations (resuming if run.resume says so), evaluates,
  /// writes metrics.jsonl and prints the summary table; collective.
  MetaSummary run();
  /// One meta-iteration on meta-batch iteration(); collective.
  void step();
  /// The few-shot protocol on held-out tasks for the meta-learned parameters and,
  /// with meta.baseline, the baseline's; collective, same result on every rank.
  nlohmann::json evaluate();

  /// The whole state (collective: gathers every rank's RNG). Only rank 0's holds
  /// parameters and optimizer state.
  ckpt::State snapshot();
  /// Loads a checkpoint written by snapshot().
  void restore(const ckpt::State& state);

  int64_t iteration() const { return iteration_; }
  /// The meta-learned parameters (in FunctionalModel::names() order).
  const std::vector<at::Tensor>& parameters() const { return params_; }
  const std::vector<at::Tensor>& baseline_parameters() const { return baseline_; }

 private:
  ckpt::NamedTensors named_parameters() const;
  void log_progress(double seconds);
  /// The evaluation as a table: one row per model and K, one column per step count.
  std::string format_table(const nlohmann::json& eval) const;
  std::string save_checkpoint();

  config::MetaConfig cfg_;
  comm::Communicator& comm_;
  std::string config_ini_;
  Algorithm algorithm_;
  std::unique_ptr<TaskFamily> family_;
  std::unique_ptr<FunctionalModel> model_;
  std::vector<at::Tensor> params_, baseline_;
  std::unique_ptr<torch::optim::Optimizer> optim_;
  std::unique_ptr<train::Reducer> reducer_;
  train::RunDir run_dir_;
  std::unique_ptr<ckpt::Store> store_;
  std::string ckpt_dir_;
  std::string resume_path_;  ///< the checkpoint to resume ("" = a fresh start)
  int64_t iteration_ = 0;
  // Query loss after adaptation, summed over this rank's tasks since the last log.
  double window_loss_ = 0;
  int64_t window_tasks_ = 0;
};

}  // namespace tandem::meta
