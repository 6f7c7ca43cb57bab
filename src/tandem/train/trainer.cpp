#include "tandem/train/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>

#include "kernels/embedding_bag.h"
#include "tandem/comm/agree.h"
#include "tandem/data/criteo.h"
#include "tandem/train/optim.h"
#include "tandem/train/reducer.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::train {
namespace {

using Clock = std::chrono::steady_clock;

std::string hms(double seconds) {
  const int64_t s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

nlohmann::json to_json(const EvalMetrics& m) {
  return {{"logloss", m.logloss},   {"ne", m.ne},       {"auc", m.auc},
          {"accuracy", m.accuracy}, {"count", m.count}, {"positives", m.positives}};
}

}  // namespace

Trainer::Trainer(config::TrainConfig cfg, comm::Communicator& comm, std::string config_ini)
    : cfg_(std::move(cfg)), comm_(comm), run_dir_("", false) {
  const int world = comm_.size();
  // Every rank reads the data index; a failure on any rank stops all of them.
  data::Dataset train_ds, eval_ds;
  comm::agree_on(comm_, [&] {
    cfg_.validate(world);
    const auto index = [&](const std::string& spec) {
      data::Dataset ds =
          data::Dataset::index(spec, cfg_.data.block_rows, cfg_.data.on_error == "fail");
      if (ds.malformed > 0)
        log::infof("data: skipped {} malformed line(s) in {}; first: {}", ds.malformed, spec,
                   ds.malformed_examples.front());
      return ds;
    };
    data::Dataset all = index(cfg_.data.train);
    if (cfg_.data.eval.empty()) {
      std::tie(train_ds, eval_ds) = all.split(cfg_.data.eval_fraction);
    } else {
      train_ds = std::move(all);
      eval_ds = index(cfg_.data.eval);
    }
    if (train_ds.rows == 0) throw DataError(fmt::format("{}: no training rows", cfg_.data.train));
    if (eval_ds.rows == 0)
      throw DataError(
          fmt::format("{}: no evaluation rows (set data.eval, or lower data.block_rows so that "
                      "data.eval_fraction can hold out a block)",
                      cfg_.data.eval.empty() ? cfg_.data.train : cfg_.data.eval));
    run_dir_ = RunDir(cfg_.run.dir, comm_.rank() == 0);
  });
  run_dir_.write_config(config_ini);
  eval_rows_ = eval_ds.rows;
  eval_positives_ = eval_ds.positives;

  const std::vector<int64_t> tables = cfg_.table_rows();
  const int64_t global_batch = cfg_.train.batch_size;
  train_ = std::make_unique<data::Loader>(
      std::move(train_ds), tables,
      data::LoaderOptions{static_cast<uint64_t>(cfg_.run.seed), cfg_.data.shuffle, global_batch,
                          comm_.rank(), world});
  if (cfg_.data.prefetch) prefetch_ = std::make_unique<data::Prefetcher>(*train_);
  eval_ = std::make_unique<data::Loader>(
      std::move(eval_ds), tables,
      data::LoaderOptions{0, false, cfg_.train.eval_batch_size, comm_.rank(), world});
  total_steps_ =
      cfg_.train.steps > 0 ? cfg_.train.steps : cfg_.train.epochs * train_->steps_per_epoch();

  torch::manual_seed(static_cast<uint64_t>(cfg_.run.seed));
  const nn::KernelChoice kernels = nn::parse_kernel_choice(cfg_.model.kernels);
  nn::DlrmOptions model_options{data::kNumDense,
                                cfg_.bottom_sizes(),
                                cfg_.top_sizes(),
                                tables,
                                cfg_.model.embedding_dim,
                                cfg_.model.dropout,
                                cfg_.model.sparse_embeddings};
  model_options.kernels = kernels;
  model_options.layer_norm = cfg_.model.layer_norm;
  model_ = nn::Dlrm(model_options);
  std::vector<at::Tensor> state = model_->parameters();
  for (const at::Tensor& b : model_->buffers()) state.push_back(b);
  Reducer::broadcast(state, comm_);
  // Dropout masks differ by rank, as each rank sees different examples.
  torch::manual_seed(static_cast<uint64_t>(cfg_.run.seed) * 1000003ULL + comm_.rank() + 1);

  // Embedding tables with sparse gradients are exchanged row-wise, the rest bucketed.
  // With Tandem's kernels the tables get Tandem's row-wise optimizer, the rest
  // LibTorch's.
  row_optimizer_ = kernels == nn::KernelChoice::kTandem;
  std::vector<at::Tensor> dense_params, sparse_params, optimized;
  for (const at::Tensor& p : model_->parameters()) {
    const bool table = p.is_same(model_->embedding_weight());
    (cfg_.model.sparse_embeddings && table ? sparse_params : dense_params).push_back(p);
    if (!(row_optimizer_ && table)) optimized.push_back(p);
  }
  optim_ = make_optimizer(cfg_.optim, optimized);
  if (row_optimizer_) {
    const bool fused =
        cfg_.optim.fused_embedding_update && world == 1 && cfg_.train.accumulate == 1;
    model_->embeddings()->set_optimizer(cfg_.optim.name == "adagrad"
                                            ? kernels::RowUpdate::kRowwiseAdagrad
                                            : kernels::RowUpdate::kSgd,
                                        cfg_.optim.eps, fused);
  }
  reducer_ = std::make_unique<Reducer>(
      dense_params, comm_,
      ReducerOptions{cfg_.train.bucket_mb, cfg_.train.first_bucket_mb,
                     cfg_.train.reduction == "per_tensor", cfg_.train.overlap},
      sparse_params);
}

Trainer::~Trainer() = default;

double Trainer::train_step(int64_t epoch, int64_t step, int64_t global_step) {
  model_->train();
  const double lr = learning_rate(cfg_.optim, global_step, total_steps_);
  set_learning_rate(*optim_, lr);
  if (row_optimizer_) model_->embeddings()->set_learning_rate(lr);
  reducer_->zero_grad();
  const data::Batch batch = prefetch_ ? prefetch_->batch(epoch, step) : train_->batch(epoch, step);
  const int64_t n = batch.size();
  const int64_t micro = cfg_.train.accumulate;
  double loss_sum = 0;
  for (int64_t m = 0; m < micro; ++m) {
    const bool last = m == micro - 1;
    reducer_->prepare(last);
    const auto [first, count] =
        data::Loader::slice(n, static_cast<int>(m), static_cast<int>(micro));
    if (count == 0) continue;
    const at::Tensor logits =
        model_->forward(batch.dense.narrow(0, first, count), batch.sparse.narrow(0, first, count));
    const at::Tensor loss_sum_t = torch::nn::functional::binary_cross_entropy_with_logits(
        logits, batch.labels.narrow(0, first, count),
        torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum));
    // Scaling by the global batch makes the sum over ranks the global mean.
    (loss_sum_t / static_cast<double>(batch.global_size)).backward();
    loss_sum += loss_sum_t.item<double>();
  }
  reducer_->finish();
  optim_->step();
  if (row_optimizer_) model_->embeddings()->apply_gradient();
  return loss_sum;
}

EvalMetrics Trainer::evaluate() {
  at::NoGradGuard no_grad;
  model_->eval();
  const auto [first, count] = data::Loader::slice(eval_->rows(), comm_.rank(), comm_.size());
  std::vector<at::Tensor> logits, labels;
  for (int64_t i = 0; i < count; i += cfg_.train.eval_batch_size) {
    const int64_t n = std::min(cfg_.train.eval_batch_size, count - i);
    const data::Batch b = eval_->read(0, first + i, n);
    logits.push_back(model_->forward(b.dense, b.sparse));
    labels.push_back(b.labels);
  }
  const at::Tensor z = logits.empty() ? at::empty({0}) : at::cat(logits);
  const at::Tensor y = labels.empty() ? at::empty({0}) : at::cat(labels);
  return reduce_metrics(z, y, comm_);
}

TrainSummary Trainer::run() {
  TrainSummary summary;
  summary.baseline = baseline_metrics(eval_rows_, eval_positives_);
  log::infof("tandem: {} rank(s), {} training rows, {} eval rows, {} steps of global batch {}",
             comm_.size(), train_->rows(), eval_rows_, total_steps_, cfg_.train.batch_size);
  log::infof("baseline (predict the positive rate {:.4f}): logloss {:.5f}  NE 1.0  AUC 0.5",
             eval_rows_ ? static_cast<double>(eval_positives_) / eval_rows_ : 0.0,
             summary.baseline.logloss);
  nlohmann::json baseline = {{"event", "baseline"}, {"step", 0}};
  baseline.update(to_json(summary.baseline));
  run_dir_.append_metrics(baseline);

  const int64_t spe = train_->steps_per_epoch();
  const auto start = Clock::now();
  auto window_start = start;
  double window_loss = 0;
  int64_t window_rows = 0, samples = 0;
  double best = std::numeric_limits<double>::infinity();
  int64_t bad_evals = 0;
  int64_t step = 0;
  auto eval_event = [&](const EvalMetrics& m, const char* kind) {
    nlohmann::json e = {{"event", kind}, {"step", step}};
    e.update(to_json(m));
    run_dir_.append_metrics(e);
  };
  while (step < total_steps_) {
    const int64_t epoch = step / spe, in_epoch = step % spe;
    const int64_t global_rows =
        std::min(cfg_.train.batch_size, train_->rows() - in_epoch * cfg_.train.batch_size);
    window_loss += train_step(epoch, in_epoch, step);
    window_rows += global_rows;
    samples += global_rows;
    ++step;
    const bool log_now =
        cfg_.train.log_every > 0 && (step % cfg_.train.log_every == 0 || step == total_steps_);
    if (log_now) {
      at::Tensor loss = at::tensor({window_loss}, at::kDouble);
      comm_.allreduce(loss, comm::ReduceOp::kSum);
      const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      const double rate = window_rows / std::max(secs, 1e-9);
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double eta = elapsed / step * (total_steps_ - step);
      const double mean_loss = loss.item<double>() / window_rows;
      const double lr = learning_rate(cfg_.optim, step - 1, total_steps_);
      log::infof("step {}/{}  epoch {}  loss {:.5f}  lr {:.4g}  samples/s {:.0f}  ETA {}", step,
                 total_steps_, epoch, mean_loss, lr, rate, hms(eta));
      run_dir_.append_metrics({{"event", "train"},
                               {"step", step},
                               {"epoch", epoch},
                               {"loss", mean_loss},
                               {"lr", lr},
                               {"samples_per_s", rate}});
      window_loss = 0;
      window_rows = 0;
      window_start = Clock::now();
    }
    if (cfg_.train.eval_every > 0 && step % cfg_.train.eval_every == 0 && step < total_steps_) {
      const EvalMetrics m = evaluate();
      log::infof("eval @ step {}: logloss {:.5f}  NE {:.4f}  AUC {:.4f}  accuracy {:.4f}", step,
                 m.logloss, m.ne, m.auc, m.accuracy);
      eval_event(m, "eval");
      if (m.logloss < best) {
        best = m.logloss;
        bad_evals = 0;
      } else if (cfg_.train.patience > 0 && ++bad_evals >= cfg_.train.patience) {
        log::infof("early stop: no logloss improvement in {} evaluations", bad_evals);
        summary.stopped_early = true;
        break;
      }
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  summary.steps = step;
  summary.samples_per_second = samples / std::max(secs, 1e-9);
  summary.final = evaluate();
  const EvalMetrics& f = summary.final;
  log::infof("final @ step {}: logloss {:.5f}  NE {:.4f}  AUC {:.4f}  accuracy {:.4f}", step,
             f.logloss, f.ne, f.auc, f.accuracy);
  log::infof(
      "gain over the base-rate predictor: logloss {:.5f} -> {:.5f} ({:+.2f}%), AUC 0.5 -> {:.4f}",
      summary.baseline.logloss, f.logloss,
      100.0 * (f.logloss - summary.baseline.logloss) / summary.baseline.logloss, f.auc);
  nlohmann::json final_event = {{"event", "final"},
                                {"step", step},
                                {"samples_per_s", summary.samples_per_second},
                                {"baseline_logloss", summary.baseline.logloss}};
  final_event.update(to_json(f));
  run_dir_.append_metrics(final_event);
  if (run_dir_.enabled())
    log::infof("results: {}/metrics.jsonl, {}/config.ini", run_dir_.path(), run_dir_.path());
  return summary;
}

}  // namespace tandem::train
