#include "tandem/meta/meta_learner.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>

#include "tandem/ckpt/collective.h"
#include "tandem/ckpt/module_state.h"
#include "tandem/ckpt/optimizer_state.h"
#include "tandem/comm/agree.h"
#include "tandem/train/reducer.h"
#include "tandem/util/error.h"
#include "tandem/util/hash.h"
#include "tandem/util/log.h"

namespace tandem::meta {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kMaml = "maml.";
constexpr const char* kBaseline = "baseline.";

// Mean and the half-width of its 95% normal confidence interval, per column of a
// [tasks, columns] table.
std::pair<at::Tensor, at::Tensor> mean_ci95(const at::Tensor& table) {
  const at::Tensor t = table.to(at::kDouble);
  const double n = static_cast<double>(t.size(0));
  return {t.mean(0), 1.96 * t.std(0, /*unbiased=*/true) / std::sqrt(n)};
}

}  // namespace

MetaLearner::MetaLearner(config::MetaConfig config, comm::Communicator& comm,
                         std::string config_ini)
    : cfg_(std::move(config)),
      comm_(comm),
      config_ini_(std::move(config_ini)),
      run_dir_("", false, false) {
  comm::agree_on(comm_, [&] { cfg_.validate(); });
  const config::MetaSection& m = cfg_.meta;
  algorithm_ = parse_algorithm(m.algorithm);
  const auto seed = static_cast<uint64_t>(cfg_.run.seed);
  family_ = make_task_family(m, seed);
  std::vector<int64_t> sizes{family_->input_size()};
  for (int64_t h : cfg_.hidden_sizes()) sizes.push_back(h);
  sizes.push_back(family_->output_size());
  model_ = std::make_unique<Mlp>(sizes);

  // Every rank draws the same initial values from the same seed; the baseline
  // starts where meta-training starts, so the comparison is of training alone.
  at::Generator gen = at::detail::createCPUGenerator(mix64(seed ^ 0x1417ULL));
  params_ = model_->init(gen);
  for (at::Tensor& p : params_) p.requires_grad_(true);
  if (m.baseline)
    for (const at::Tensor& p : params_) baseline_.push_back(p.detach().clone().requires_grad_(true));
  std::vector<at::Tensor> all = params_;
  all.insert(all.end(), baseline_.begin(), baseline_.end());
  // Adam is per parameter, so one optimizer over both sets is two independent ones.
  optim_ = std::make_unique<torch::optim::Adam>(all, torch::optim::AdamOptions(m.meta_lr));
  reducer_ = std::make_unique<train::Reducer>(all, comm_, train::ReducerOptions{});

  ckpt_dir_ = cfg_.checkpoint_dir();
  ckpt::StoreOptions o;
  o.keep_last = cfg_.ckpt.keep_last;
  o.keep_best = 0;
  o.write = {static_cast<int>(cfg_.ckpt.gzip), cfg_.ckpt.file_locking};
  store_ = ckpt::open_store(comm_, ckpt_dir_, o,
                            cfg_.ckpt.every_steps > 0 || !cfg_.run.resume.empty());
  // The checkpoint directory is this run's before the run directory is written.
  resume_path_ = ckpt::start_run(comm_, store_.get(), cfg_.run.resume, cfg_.run.overwrite);
  comm::agree_on(comm_, [&] {
    run_dir_ = train::RunDir(cfg_.run.dir, comm_.rank() == 0,
                             cfg_.run.overwrite || !cfg_.run.resume.empty(), cfg_.log.tensorboard);
  });
  run_dir_.write_config(config_ini_);
}

MetaLearner::~MetaLearner() = default;

ckpt::NamedTensors MetaLearner::named_parameters() const {
  ckpt::NamedTensors out;
  const std::vector<std::string> names = model_->names();
  for (size_t i = 0; i < names.size(); ++i) out.emplace_back(kMaml + names[i], params_[i]);
  for (size_t i = 0; i < baseline_.size(); ++i)
    out.emplace_back(kBaseline + names[i], baseline_[i]);
  return out;
}

void MetaLearner::step() {
  const config::MetaSection& m = cfg_.meta;
  const auto [first, count] = share(m.meta_batch, comm_.rank(), comm_.size());
  const Tasks tasks = sample_tasks(*family_, Split::kTrain, static_cast<uint64_t>(cfg_.run.seed),
                                   Stream::kTrain, iteration_, first, count, m.shots, m.queries);
  reducer_->zero_grad();
  at::Tensor total;
  if (count > 0) {
    const MetaObjective objective =
        meta_objective(algorithm_, *model_, *family_, params_, tasks, {m.inner_steps, m.inner_lr});
    total = objective.objective;
    if (!baseline_.empty()) total = total + joint_loss(*model_, *family_, baseline_, tasks).sum();
    window_loss_ += objective.query_loss.sum().item<double>();
    window_tasks_ += count;
  }
  // Each rank's share scaled by 1/meta_batch: the Reducer's sum is the mean.
  reducer_->prepare(true);
  if (total.defined()) (total / static_cast<double>(m.meta_batch)).backward();
  reducer_->finish();
  optim_->step();
  ++iteration_;
}

nlohmann::json MetaLearner::evaluate() {
  const config::MetaSection& m = cfg_.meta;
  const std::vector<int64_t> steps = cfg_.eval_steps();
  const auto [first, count] = share(m.eval_tasks, comm_.rank(), comm_.size());
  nlohmann::json out = {{"event", "eval"},
                        {"iteration", iteration_},
                        {"algorithm", m.algorithm},
                        {"task", family_->name()},
                        {"eval_tasks", m.eval_tasks}};
  for (int64_t shots : cfg_.eval_shots()) {
    // Iteration 0 of the eval stream for every K: the same held-out tasks, and the
    // K=5 support set is the first 5 examples of the K=10 one.
    const Tasks tasks =
        sample_tasks(*family_, Split::kEval, static_cast<uint64_t>(cfg_.run.seed), Stream::kEval,
                     0, first, count, shots, m.eval_queries);
    auto score = [&](const std::string& prefix, const std::vector<at::Tensor>& params) {
      const FewShotScores s = few_shot(*model_, *family_, params, tasks, steps, m.inner_lr);
      auto record = [&](const std::string& metric, const at::Tensor& mine) {
        const auto [mean, ci] = mean_ci95(comm_.allgatherv(mine.contiguous()));
        for (size_t j = 0; j < steps.size(); ++j) {
          const std::string key = fmt::format("{}{}_k{}_s{}", prefix, metric, shots, steps[j]);
          out[key] = mean[j].item<double>();
          out[key + "_ci95"] = ci[j].item<double>();
        }
      };
      record(family_->loss_name(), s.loss);
      if (s.accuracy.defined()) record("acc", s.accuracy);
    };
    score("", params_);
    if (!baseline_.empty()) score("baseline_", baseline_);
  }
  return out;
}

ckpt::State MetaLearner::snapshot() {
  ckpt::State s;
  s.rng = ckpt::gather_rng(comm_);
  if (comm_.rank() != 0) return s;
  at::NoGradGuard no_grad;
  const auto named = named_parameters();
  for (const auto& [name, t] : named) s.params[name] = t.detach().clone();
  ckpt::save_optimizer(*optim_, named, s.optimizer);
  s.optimizer_name = "adam";
  // The task sampler is counter-based: its state is the iteration.
  s.step = iteration_;
  s.samples = iteration_ * cfg_.meta.meta_batch;  // tasks seen
  s.lr = cfg_.meta.meta_lr;
  s.world_size = comm_.size();
  s.global_batch = cfg_.meta.meta_batch;
  s.version = TANDEM_VERSION;
  s.run_id = store_ ? store_->run_id() : "";
  s.config = config_ini_;
  s.metrics = run_dir_.history();
  return s;
}

void MetaLearner::restore(const ckpt::State& s) {
  if (s.global_batch != cfg_.meta.meta_batch)
    throw DataError(fmt::format(
        "checkpoint: meta-batch {} in the checkpoint, meta.meta_batch={} configured (the resume "
        "position counts meta-batches)",
        s.global_batch, cfg_.meta.meta_batch));
  const auto named = named_parameters();
  ckpt::load_tensors(named, s.params, "parameter", "meta.hidden or meta.baseline differs?");
  ckpt::load_optimizer(*optim_, named, s.optimizer);
  iteration_ = s.step;
  ckpt::restore_rng(s.rng, s.world_size, comm_,
                    mix64(static_cast<uint64_t>(cfg_.run.seed) + comm_.rank()));
  run_dir_.restore_history(s.metrics, s.step);
}

std::string MetaLearner::save_checkpoint() {
  ckpt::State s = snapshot();
  if (!store_) return "";
  const std::string path = store_->save(s);
  log::infof("checkpoint: saved {}", path);
  return path;
}

void MetaLearner::log_progress(double seconds) {
  at::Tensor window = at::tensor({window_loss_, static_cast<double>(window_tasks_)}, at::kDouble);
  comm_.allreduce(window, comm::ReduceOp::kSum);
  const double loss = window[0].item<double>() / std::max(1.0, window[1].item<double>());
  log::infof("meta: iteration {}/{}  query {} after {} step(s) {:.4f}  {:.1f} it/s", iteration_,
             cfg_.meta.iterations, family_->loss_name(), cfg_.meta.inner_steps, loss,
             seconds > 0 ? cfg_.meta.log_every / seconds : 0.0);
  run_dir_.append_metrics({{"event", "train"},
                           {"iteration", iteration_},
                           {"query_" + family_->loss_name(), loss}});
  window_loss_ = 0;
  window_tasks_ = 0;
}

MetaSummary MetaLearner::run() {
  MetaSummary summary;
  const config::MetaSection& m = cfg_.meta;
  if (!cfg_.run.resume.empty()) {
    const std::string& path = resume_path_;
    if (path.empty()) {
      log::infof("resume: no checkpoint in {} yet; starting fresh", ckpt_dir_);
    } else {
      comm::agree_on(comm_, [&] { restore(ckpt::read(path, cfg_.ckpt.file_locking)); });
      summary.resumed_from = path;
      log::infof("resume: {} at iteration {}", path, iteration_);
    }
  }
  log::infof(
      "meta: {} on {} tasks, {} rank(s), meta-batch {}, K={} shots, {} inner step(s) of {}, "
      "{} iterations{}",
      m.algorithm, family_->name(), comm_.size(), m.meta_batch, m.shots, m.inner_steps,
      m.inner_lr, m.iterations, baseline_.empty() ? "" : " (and the joint-training baseline)");

  const auto start = Clock::now();
  auto window_start = start;
  const int64_t first_iteration = iteration_;
  while (iteration_ < m.iterations) {
    step();
    if (m.log_every > 0 && iteration_ % m.log_every == 0) {
      const auto now = Clock::now();
      log_progress(std::chrono::duration<double>(now - window_start).count());
      window_start = now;
    }
    if (m.eval_every > 0 && iteration_ % m.eval_every == 0 && iteration_ < m.iterations)
      run_dir_.append_metrics(evaluate());
    // The last iteration's save waits for the final evaluation (ckpt.at_end).
    const bool saved_at_end = cfg_.ckpt.at_end && iteration_ == m.iterations;
    if (cfg_.ckpt.every_steps > 0 && iteration_ % cfg_.ckpt.every_steps == 0 && !saved_at_end)
      save_checkpoint();
    // Test hook for the crash tests: die like kill -9 right after this iteration.
    if (const char* k = std::getenv("TANDEM_KILL_AFTER_STEP"); k && std::atoll(k) == iteration_)
      std::raise(SIGKILL);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  summary.iterations = iteration_;
  summary.iterations_per_second = (iteration_ - first_iteration) / std::max(seconds, 1e-9);

  summary.final = evaluate();
  summary.final["iterations_per_s"] = summary.iterations_per_second;
  run_dir_.append_metrics(summary.final);
  log::info(format_table(summary.final));
  if (cfg_.ckpt.at_end && !ckpt_dir_.empty()) save_checkpoint();
  if (run_dir_.enabled())
    log::infof("results: {}/metrics.jsonl, {}/config.ini", run_dir_.path(), run_dir_.path());
  return summary;
}

std::string MetaLearner::format_table(const nlohmann::json& eval) const {
  const std::vector<int64_t> steps = cfg_.eval_steps();
  const std::string loss = family_->loss_name();
  std::string out = fmt::format(
      "few-shot evaluation: {} held-out {} tasks after {} meta-iterations; query {} "
      "(mean +- 95% CI) after k steps of SGD (lr {})\n",
      cfg_.meta.eval_tasks, family_->name(), iteration_, loss, cfg_.meta.inner_lr);
  out += fmt::format("{:<14} {:>4}", "model", "K");
  for (int64_t s : steps) out += fmt::format("  {:>17}", fmt::format("k={}", s));
  out += '\n';
  std::vector<std::pair<std::string, std::string>> models{{cfg_.meta.algorithm, ""}};
  if (!baseline_.empty()) models.emplace_back("baseline", "baseline_");
  std::vector<std::string> metrics{loss};
  if (family_->classifies()) metrics.push_back("acc");
  for (const std::string& metric : metrics)
    for (const auto& [label, prefix] : models)
      for (int64_t k : cfg_.eval_shots()) {
        out += fmt::format("{:<14} {:>4}", metrics.size() > 1 ? label + " " + metric : label, k);
        for (int64_t s : steps) {
          const std::string key = fmt::format("{}{}_k{}_s{}", prefix, metric, k, s);
          out += fmt::format("  {:>8.4f} +- {:<6.4f}", eval[key].get<double>(),
                             eval[key + "_ci95"].get<double>());
        }
        out += '\n';
      }
  if (!out.empty()) out.pop_back();
  return out;
}

}  // namespace tandem::meta
