#include "tandem/config/meta_config.h"

#include <fmt/format.h>

namespace tandem::config {

OptionSet MetaConfig::options() {
  OptionSet o("tandem meta options (INI [section] key, or --section.key=value)");
  add_options(o, run);
  o.add("meta.task", &meta.task, "task family: sinusoid (regression, MSE) or clusters (N-way)")
      .add("meta.algorithm", &meta.algorithm, "maml (second order), fomaml or reptile")
      .add("meta.iterations", &meta.iterations, "meta (outer) iterations")
      .add("meta.meta_batch", &meta.meta_batch, "tasks per meta-iteration, split over the ranks")
      .add("meta.shots", &meta.shots, "K: support examples per task (per class for clusters)")
      .add("meta.queries", &meta.queries, "query examples per task (per class) in meta-training")
      .add("meta.inner_steps", &meta.inner_steps, "inner SGD steps per task in meta-training")
      .add("meta.inner_lr", &meta.inner_lr, "inner step size alpha (also used at evaluation)")
      .add("meta.meta_lr", &meta.meta_lr, "outer Adam step size beta")
      .add("meta.hidden", &meta.hidden, "MLP hidden sizes, comma-separated")
      .add("meta.baseline", &meta.baseline,
           "also pretrain a model on all tasks jointly and evaluate it the same way")
      .add("meta.ways", &meta.ways, "clusters: classes per task (N-way)")
      .add("meta.classes", &meta.classes, "clusters: classes in the generated dataset")
      .add("meta.features", &meta.features, "clusters: input dimensions")
      .add("meta.eval_tasks", &meta.eval_tasks, "held-out tasks per evaluation")
      .add("meta.eval_shots", &meta.eval_shots, "K values evaluated, comma-separated")
      .add("meta.eval_steps", &meta.eval_steps, "adaptation steps reported, comma-separated")
      .add("meta.eval_queries", &meta.eval_queries, "query examples per evaluation task (per class)")
      .add("meta.eval_every", &meta.eval_every, "iterations between evaluations; 0 = at the end")
      .add("meta.log_every", &meta.log_every, "iterations between progress lines; 0 = none");
  add_storage_options(o, ckpt);
  add_options(o, comm);
  add_options(o, log);
  return o;
}

std::vector<int64_t> MetaConfig::hidden_sizes() const {
  return parse_int_list("meta.hidden", meta.hidden);
}
std::vector<int64_t> MetaConfig::eval_shots() const {
  return parse_int_list("meta.eval_shots", meta.eval_shots);
}
std::vector<int64_t> MetaConfig::eval_steps() const {
  return parse_int_list("meta.eval_steps", meta.eval_steps);
}

void MetaConfig::validate() const {
  const MetaSection& m = meta;
  one_of("meta.task", m.task, {"sinusoid", "clusters"});
  one_of("meta.algorithm", m.algorithm, {"maml", "fomaml", "reptile"});
  require(m.iterations >= 0, "meta.iterations", "must be >= 0");
  require(m.meta_batch >= 1, "meta.meta_batch", "must be >= 1");
  require(m.shots >= 1, "meta.shots", "must be >= 1");
  require(m.queries >= 1, "meta.queries", "must be >= 1");
  require(m.inner_steps >= 1, "meta.inner_steps", "must be >= 1");
  require(m.inner_lr > 0, "meta.inner_lr", "must be > 0");
  require(m.meta_lr > 0, "meta.meta_lr", "must be > 0");
  for (int64_t h : hidden_sizes()) require(h > 0, "meta.hidden", "sizes must be > 0");
  require(m.ways >= 2, "meta.ways", "must be >= 2");
  require(m.features >= 1, "meta.features", "must be >= 1");
  // Fifths: 4/5 of the classes train, 1/5 evaluate, and each part must hold a task.
  require(m.classes / 5 >= m.ways && m.classes - m.classes / 5 >= m.ways, "meta.classes",
          fmt::format("{} classes leave fewer than meta.ways={} in the held-out fifth",
                      m.classes, m.ways));
  require(m.eval_tasks >= 2, "meta.eval_tasks", "must be >= 2 (for a confidence interval)");
  const std::vector<int64_t> shots = eval_shots(), steps = eval_steps();
  require(!shots.empty(), "meta.eval_shots", "is empty");
  require(!steps.empty(), "meta.eval_steps", "is empty");
  for (int64_t k : shots) require(k >= 1, "meta.eval_shots", "values must be >= 1");
  for (size_t i = 0; i < steps.size(); ++i)
    require(steps[i] >= 0 && (i == 0 || steps[i] > steps[i - 1]), "meta.eval_steps",
            "must be increasing values >= 0");
  require(m.eval_queries >= 1, "meta.eval_queries", "must be >= 1");
  require(m.eval_every >= 0, "meta.eval_every", "must be >= 0");
  require(m.log_every >= 0, "meta.log_every", "must be >= 0");
  config::validate(run, comm, ckpt);
}

}  // namespace tandem::config
