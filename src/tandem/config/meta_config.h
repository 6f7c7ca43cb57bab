// Every setting of `tandem meta` (MAML, first-order MAML and Reptile). The initial
// values are the sinusoid regression of Finn, Abbeel and Levine (2017), section 5.1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/config/options.h"
#include "tandem/config/train_config.h"

namespace tandem::config {

struct MetaSection {
  std::string task = "sinusoid";   ///< task family: sinusoid (regression) or clusters (N-way)
  std::string algorithm = "maml";  ///< maml (second order), fomaml or reptile
  int64_t iterations = 70000;      ///< outer (meta) steps
  int64_t meta_batch = 25;         ///< tasks per meta step, split over the ranks
  int64_t shots = 10;              ///< K: support examples per task (per class for clusters)
  int64_t queries = 10;            ///< query examples per task (per class) in meta-training
  int64_t inner_steps = 1;         ///< SGD steps on the support set per task
  double inner_lr = 0.01;          ///< alpha: the inner step size (also at evaluation)
  double meta_lr = 0.001;          ///< beta: Adam's step size in the outer loop
  std::string hidden = "40,40";    ///< MLP hidden sizes
  bool baseline = true;            ///< also pretrain the joint-training baseline
  // The clusters family: `classes` Gaussian clusters in `features` dimensions; the
  // last fifth are held out for evaluation; a task picks `ways` of them.
  int64_t ways = 5;
  int64_t classes = 100;
  int64_t features = 16;
  // Evaluation: eval_tasks held-out tasks from a fixed seed, for each K in
  // eval_shots, scored on eval_queries query examples after each of eval_steps.
  int64_t eval_tasks = 600;
  std::string eval_shots = "5,10";
  std::string eval_steps = "1,5,10";
  int64_t eval_queries = 100;
  int64_t eval_every = 0;  ///< iterations between evaluations; 0 = only at the end
  int64_t log_every = 1000;
};

struct MetaConfig {
  RunSection run;
  MetaSection meta;
  CkptSection ckpt;
  CommSection comm;
  LogSection log;

  MetaConfig() { run.dir = "checkpoints/meta"; }
  /// Registers every field; the OptionSet keeps pointers into *this.
  OptionSet options();
  /// Throws ConfigError naming the key of a bad value.
  void validate() const;
  std::vector<int64_t> hidden_sizes() const;
  std::vector<int64_t> eval_shots() const;
  std::vector<int64_t> eval_steps() const;
  std::string checkpoint_dir() const { return config::checkpoint_dir(run, ckpt); }
};

}  // namespace tandem::config
