#include "tandem/train/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/optimizer.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <sstream>
#include <thread>

#include "kernels/embedding_bag.h"
#include "tandem/ckpt/collective.h"
#include "tandem/ckpt/optimizer_state.h"
#include "tandem/ckpt/sharded.h"
#include "tandem/comm/agree.h"
#include "tandem/comm/runtime.h"
#include "tandem/data/criteo.h"
#include "tandem/ps/table_checkpoint.h"
#include "tandem/stats/feature_stats.h"
#include "tandem/train/optim.h"
#include "tandem/train/reducer.h"
#include "tandem/train/stop_signal.h"
#include "tandem/util/cuda_stream.h"
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

nn::DlrmOptions dlrm_options(const config::TrainConfig& cfg, comm::Communicator* comm) {
  nn::DlrmOptions o;
  o.dense_features = cfg.data_schema()->num_dense();
  o.bottom_mlp = cfg.bottom_sizes();
  o.top_mlp = cfg.top_sizes();
  o.table_rows = cfg.table_rows();
  for (const data::Schema::Categorical& c : cfg.data_schema()->categorical()) {
    o.bag_sizes.push_back(c.max_ids);
    o.mean_bags.push_back(c.mean);
  }
  o.embedding_dim = cfg.model.embedding_dim;
  o.dropout = cfg.model.dropout;
  o.sparse_embeddings = cfg.model.sparse_embeddings;
  o.kernels = nn::parse_kernel_choice(cfg.model.kernels);
  o.layer_norm = cfg.model.layer_norm;
  o.sync_batch_norm = cfg.model.sync_batch_norm;
  o.standardize = cfg.model.standardize;
  o.missing_indicator = cfg.model.missing_indicator;
  o.comm = comm;
  o.embedding_seed = static_cast<uint64_t>(cfg.run.seed);
  o.remote_tables = cfg.ps.servers > 0;
  return o;
}

namespace {

// What a rank holds per embedding row, in floats: the weights, their gradient when
// it is dense, and the optimizer's state (Tandem's row-wise optimizer keeps one
// value per row for Adagrad; LibTorch's keep whole tables).
double floats_per_table_row(const config::TrainConfig& c) {
  const double dim = static_cast<double>(c.model.embedding_dim);
  const std::string& o = c.optim.name;
  double state = 0;
  if (nn::parse_kernel_choice(c.model.kernels) == nn::KernelChoice::kTandem)
    state = o == "adagrad" ? 1 : 0;
  else if (o == "adam" || o == "adamw")
    state = 2 * dim;
  else if (o == "adagrad" || c.optim.momentum > 0)
    state = dim;
  return dim + (c.model.sparse_embeddings ? 0 : dim) + state;
}

}  // namespace

Trainer::Trainer(config::TrainConfig cfg, comm::Communicator& comm, std::string config_ini,
                 ps::ParameterServer* ps, const Datasets* data)
    : cfg_(std::move(cfg)), comm_(comm), ps_(ps), run_dir_("", false, false) {
  if ((cfg_.ps.servers > 0) != (ps != nullptr))
    throw Error("trainer: ps.servers > 0 needs a parameter server, and only then");
  const int world = comm_.size();
  // Every rank reads the data index; a failure on any rank stops all of them.
  data::Dataset train_ds, eval_ds;
  comm::agree_on(comm_, [&] {
    cfg_.validate(world);
    if (use_cuda(cfg_.train.device)) {
      // Gradients are reduced where they live: CUDA tensors need NCCL.
      if (!comm_.device().is_cuda())
        throw ConfigError(fmt::format(
            "train.device: training on a GPU needs comm.backend=nccl (or auto), not {}",
            comm_.backend()));
      device_ = comm_.device();
    }
    if (!ps) {
      // Every rank holds every table, its gradient when dense and its optimizer
      // state: refuse what a rank cannot hold, with the way out, rather than fail in
      // the allocator (or be killed) after the data is read. On a GPU all of it is
      // on the GPU, and the weights are first made on the host.
      int64_t rows = 0;
      for (int64_t r : cfg_.table_rows()) rows += r;
      const double all = static_cast<double>(rows) * floats_per_table_row(cfg_) * 4.0;
      const double weights = static_cast<double>(rows) * cfg_.model.embedding_dim * 4.0;
      const auto refuse = [&](const char* what, double bytes, const std::string& why) {
        throw ConfigError(fmt::format(
            "model.embedding_rows: {} need {} on every rank, but {}; shard them over parameter "
            "servers (ps.servers) or use smaller tables",
            what, log::bytes(bytes), why));
      };
      constexpr const char* kAll = "the tables and their optimizer state";
      std::string why;
      const double host = comm::Runtime::get().memory_per_rank(&why);
      if (device_.is_cpu() && all > host) refuse(kAll, all, why);
      if (device_.is_cuda() && weights > host) refuse("the tables", weights, why);
#if TANDEM_TORCH_CUDA
      if (const double free = cuda_free_bytes(); device_.is_cuda() && free >= 0 && all > free)
        refuse(kAll, all, fmt::format("its GPU has {} free", log::bytes(free)));
#endif
    }
    const auto index = [&](const std::string& spec) {
      data::Dataset ds = data::Dataset::index(spec, cfg_.index_options());
      for (const std::string& line : ds.findings(spec)) log::info(line);
      return ds;
    };
    if (data) {
      train_ds = data->train;
      eval_ds = data->eval;
    } else if (data::Dataset all = index(cfg_.data.train); cfg_.data.eval.empty()) {
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
  });
  config_ini_ = std::move(config_ini);
  eval_rows_ = eval_ds.rows;
  // Provenance: the files read (digests are computed at the first save).
  for (const auto* ds : {&train_ds, &eval_ds})
    for (const std::string& f : ds->files)
      if (std::none_of(data_files_.begin(), data_files_.end(),
                       [&](const ckpt::DataFile& d) { return d.path == f; }))
        data_files_.push_back({f, 0, ""});
  eval_positives_ = eval_ds.positives;

  const std::vector<int64_t> tables = cfg_.table_rows();
  const int64_t global_batch = cfg_.train.batch_size;
  if (cfg_.model.standardize && cfg_.data.stats.empty())
    stats_loader_ = std::make_unique<data::Loader>(
        train_ds, tables, data::LoaderOptions{0, false, 8192, comm_.rank(), world});
  // On a GPU the cores are free to parse, and one parsing thread feeds less than
  // the GPU trains; on a CPU the cores train.
  int parse_threads = cfg_.data.parse_threads;
  if (parse_threads == 0 && device_.is_cuda()) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    parse_threads = std::clamp(cores / std::max(1, comm::Runtime::get().info().local_size), 1, 16);
  }
  parse_threads = std::max(parse_threads, 1);
  train_ = std::make_unique<data::Loader>(
      std::move(train_ds), tables,
      data::LoaderOptions{static_cast<uint64_t>(cfg_.run.seed), cfg_.data.shuffle, global_batch,
                          comm_.rank(), world, parse_threads, /*pinned=*/device_.is_cuda()});
  if (cfg_.data.prefetch) prefetch_ = std::make_unique<data::Prefetcher>(*train_);
  feeder_ = data::make_device_feeder(device_, global_batch / world, train_->schema().num_dense(),
                                     train_->schema().num_slots());
  eval_ = std::make_unique<data::Loader>(
      std::move(eval_ds), tables,
      data::LoaderOptions{0, false, cfg_.train.eval_batch_size, comm_.rank(), world});
  total_steps_ =
      cfg_.train.steps > 0 ? cfg_.train.steps : cfg_.train.epochs * train_->steps_per_epoch();
  eval_every_ = cfg_.train.eval_interval(train_->steps_per_epoch());

  torch::manual_seed(static_cast<uint64_t>(cfg_.run.seed));
  const nn::KernelChoice kernels = nn::parse_kernel_choice(cfg_.model.kernels);
  model_ = nn::Dlrm(dlrm_options(cfg_, &comm_));
  model_->to(device_);
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
    if (table && ps) continue;  // the servers update the tables
    (cfg_.model.sparse_embeddings && table ? sparse_params : dense_params).push_back(p);
    if (!(row_optimizer_ && table)) optimized.push_back(p);
  }
  optim_ = make_optimizer(cfg_.optim, optimized);
  placement_ = ps ? ps::sharded(model_->embeddings(), *ps) : ps::replicated(model_->embeddings());
  // With servers, a worker's tables' gradient goes into its word instead.
  for (const auto& item : model_->named_parameters())
    if (!(ps && item.value().is_same(model_->embedding_weight())))
      checked_.emplace_back(item.key(), item.value());
  if (row_optimizer_ && !ps) {
    // skip_step must be able to undo a step: no update during its backward.
    const bool fused = cfg_.optim.fused_embedding_update && world == 1 &&
                       cfg_.train.accumulate == 1 && cfg_.train.on_nonfinite != "skip_step";
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

  ckpt_dir_ = cfg_.checkpoint_dir();
  if (cfg_.train.restore_best && !TANDEM_WITH_HDF5)
    throw ConfigError(
        "train.restore_best: restores a checkpoint, and this Tandem was built without HDF5");
  ckpt::StoreOptions o;
  o.keep_last = cfg_.ckpt.keep_last;
  o.keep_best = cfg_.ckpt.keep_best;
  o.maximize = cfg_.ckpt.monitor == "auc" || cfg_.ckpt.monitor == "accuracy";
  o.write = {static_cast<int>(cfg_.ckpt.gzip), cfg_.ckpt.file_locking};
  const bool needs = cfg_.ckpt.every_steps > 0 || cfg_.ckpt.every_seconds > 0 ||
                     !cfg_.run.resume.empty();
  store_ = ckpt::open_store(comm_, ckpt_dir_, o, needs);
  // The checkpoint directory is this run's before anything of the run directory is
  // written: a fresh start over another run's checkpoints stops here.
  resume_path_ = ckpt::start_run(comm_, store_.get(), cfg_.run.resume, cfg_.run.overwrite);
  comm::agree_on(comm_, [&] {
    run_dir_ = RunDir(cfg_.run.dir, comm_.rank() == 0,
                      cfg_.run.overwrite || !cfg_.run.resume.empty(), cfg_.log.tensorboard);
  });
  run_dir_.write_config(config_ini_);
}

Trainer::~Trainer() {
  // A save still in flight completes; its error, if any, can no longer be raised.
  if (pending_save_.valid()) pending_save_.wait();
}

void Trainer::lap(Phase phase, Clock::time_point& since) {
  if (!cfg_.train.profile) return;
  if (device_.is_cuda()) torch::cuda::synchronize();
  const auto now = Clock::now();
  phase_seconds_[phase] += std::chrono::duration<double>(now - since).count();
  since = now;
}

data::Batch Trainer::host_batch(int64_t epoch, int64_t step) {
  if (lookahead_ == std::array<int64_t, 2>{epoch, step}) {
    lookahead_ = {-1, -1};
    return std::move(lookahead_batch_);
  }
  return prefetch_ ? prefetch_->batch(epoch, step) : train_->batch(epoch, step);
}

at::Tensor Trainer::train_step(int64_t epoch, int64_t step, int64_t global_step) {
  auto since = Clock::now();
  model_->train();
  const double lr = learning_rate(cfg_.optim, global_step, total_steps_);
  set_learning_rate(*optim_, lr);
  if (row_optimizer_) model_->embeddings()->set_learning_rate(lr);
  reducer_->zero_grad();
  const data::Batch host = host_batch(epoch, step);
  const data::Batch batch = feeder_ ? feeder_->feed(host) : host.to(device_);
  lap(kData, since);
  const int64_t n = batch.size();
  const at::Tensor ids = placement_->prepare(batch.sparse);
  if (cfg_.ps.prefetch && placement_->prefetches() && global_step + 1 < total_steps_) {
    // The parameter servers answer for the next batch while this one computes.
    const int64_t spe = train_->steps_per_epoch();
    const std::array<int64_t, 2> next{step + 1 < spe ? epoch : epoch + 1, (step + 1) % spe};
    lookahead_batch_ = host_batch(next[0], next[1]);
    lookahead_ = next;
    placement_->prefetch(lookahead_batch_.sparse);
  }
  const int64_t micro = cfg_.train.accumulate;
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device_));
  for (int64_t m = 0; m < micro; ++m) {
    const bool last = m == micro - 1;
    reducer_->prepare(last);
    const auto [first, count] =
        data::Loader::slice(n, static_cast<int>(m), static_cast<int>(micro));
    // SyncBatchNorm is collective: a rank without rows still runs the step.
    if (count == 0 && !cfg_.model.sync_batch_norm) continue;
    const at::Tensor logits =
        model_->forward(batch.dense.narrow(0, first, count), ids.narrow(0, first, count));
    const at::Tensor loss_sum_t =
        poison(torch::nn::functional::binary_cross_entropy_with_logits(
                   logits, batch.labels.narrow(0, first, count),
                   torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(
                       torch::kSum)),
               global_step + 1);
    lap(kForward, since);
    // Scaling by the global batch makes the sum over ranks the global mean.
    (loss_sum_t / static_cast<double>(batch.global_size)).backward();
    loss_sum += loss_sum_t.detach();
    lap(kBackward, since);
  }
  // Divergence (train.on_nonfinite). This rank's word: is its loss finite (and,
  // with parameter servers, its tables' gradient, which only it sees)? The words
  // ride in the gradients' last all-reduce, and the reduced gradients are the same
  // on every rank, so every rank decides alike, with no collective of its own.
  const bool skip_policy = cfg_.train.on_nonfinite == "skip_step";
  at::Tensor local = loss_sum.detach().to(at::kFloat).reshape({1});
  if (const at::Tensor& g = model_->embedding_weight().grad(); ps_ && g.defined())
    local = local + g._values().sum();
  // Skipping a step must not have pushed its rows: then the push waits for the verdict.
  if (!skip_policy) placement_->backward_done(lr);
  const at::Tensor words = reducer_->finish(at::isfinite(local).logical_not().to(at::kFloat));
  lap(kComm, since);
  if (const std::string what = nonfinite(words); !what.empty()) {
    const std::string msg = fmt::format("step {}: {} is not finite", global_step + 1, what);
    if (!skip_policy || ++skipped_in_row_ >= kMaxSkippedInRow)
      comm::fail_together(
          comm_,
          NumericError(fmt::format(
              "{}; training diverged{} (try a lower optim.lr; no checkpoint was written of it)",
              msg,
              skip_policy ? fmt::format(" ({} non-finite steps in a row)", kMaxSkippedInRow) : "")),
          /*abort_job=*/ps_ != nullptr);
    if (comm_.rank() == 0)
      log::warn(fmt::format("tandem: {}; step skipped (train.on_nonfinite=skip_step)", msg));
    run_dir_.append_metrics(
        {{"event", "nonfinite"}, {"step", global_step + 1}, {"what", what}, {"action", "skipped"}});
    reducer_->zero_grad();
    model_->embeddings()->weight.mutable_grad() = at::Tensor();
    placement_->backward_done(lr);  // an empty push keeps the servers' clocks in step
    return at::zeros_like(loss_sum);
  }
  skipped_in_row_ = 0;
  if (skip_policy) placement_->backward_done(lr);
  optim_->step();
  placement_->update(lr);
  lap(kOptimizer, since);
  return loss_sum;
}

at::Tensor Trainer::poison(const at::Tensor& loss, int64_t step) const {
  // Test hook (tests/train/reliability_test.sh): TANDEM_POISON=STEP:RANK:loss makes
  // that step's loss on that rank NaN (every micro-batch's); STEP:RANK:grad leaves the loss finite
  // and makes the first dense parameter's gradient NaN (d sqrt(z)/dz at z = 0 is inf, times dz/dw =
  // 0).
  struct Spec {
    long long step = -1;
    int rank = -1;
    char kind[8] = {};
  };
  static const Spec spec = [] {  // read once: this is on every step's path
    Spec s;
    const char* e = std::getenv("TANDEM_POISON");
    if (e && std::sscanf(e, "%lld:%d:%7s", &s.step, &s.rank, s.kind) != 3) s.step = -1;
    return s;
  }();
  if (spec.step != step || spec.rank != comm_.rank()) return loss;
  if (std::string(spec.kind) == "loss") return loss * std::numeric_limits<double>::quiet_NaN();
  for (const at::Tensor& p : model_->parameters())
    if (!p.is_same(model_->embedding_weight())) return loss + at::sqrt(p.sum() * 0);
  return loss;
}

std::string Trainer::nonfinite(const at::Tensor& words) const {
  // The ranks' words and one sum per gradient (not finite iff a value is, or the
  // sum overflows), copied to the host at once.
  std::vector<at::Tensor> parts{words.to(at::kFloat).flatten()};
  std::vector<const std::string*> names;
  for (const auto& [name, p] : checked_) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    parts.push_back((g.is_sparse() ? g._values() : g).sum().to(at::kFloat).reshape({1}));
    names.push_back(&name);
  }
  const at::Tensor all = at::cat(parts).cpu();
  const float* x = all.data_ptr<float>();
  const int64_t world = words.numel();
  for (int64_t r = 0; r < world; ++r)
    if (x[r] != 0)
      return fmt::format("{} on rank {}", ps_ ? "the loss or the tables' gradient" : "the loss", r);
  for (size_t k = 0; k < names.size(); ++k)
    if (!std::isfinite(x[world + static_cast<int64_t>(k)]))
      return fmt::format("the gradient of {}", *names[k]);
  return "";
}

bool use_cuda(const std::string& device_setting) {
  if (device_setting == "cpu") return false;
  const bool usable = torch::cuda::is_available();
  if (device_setting == "cuda" && !usable)
    throw ConfigError(
        "train.device=cuda, but LibTorch sees no usable GPU (a CPU-only LibTorch, no device, or "
        "no driver)");
  return usable;
}

namespace {

double metric_of(const EvalMetrics& m, const std::string& name) {
  if (name == "ne") return m.ne;
  if (name == "auc") return m.auc;
  if (name == "accuracy") return m.accuracy;
  return m.logloss;
}

}  // namespace

void Trainer::fit_statistics() {
  const auto start = Clock::now();
  stats::FeatureStats s;
  comm::agree_on(comm_, [&] {
    if (cfg_.data.stats.empty()) return;
    s = stats::load(cfg_.data.stats);
    const int64_t want = cfg_.data_schema()->num_dense(), got = s.dense.count.size(0);
    if (got != want)
      throw DataError(fmt::format(
          "data.stats: '{}' describes {} dense columns, the schema has {} (fit them again with "
          "tandem fit-stats and this config)",
          cfg_.data.stats, got, want));
  });
  if (cfg_.data.stats.empty()) s = stats::fit(*stats_loader_, comm_, {});
  model_->standardize()->set(s.dense);
  stats_ = stats::to_tensors(s);
  log::infof("statistics: {} over {} rows ({:.1f} s); integer features standardized",
             cfg_.data.stats.empty() ? "fitted" : "read from " + cfg_.data.stats,
             s.rows.item<int64_t>(), std::chrono::duration<double>(Clock::now() - start).count());
  // Kept beside the run (the model's buffers carry them into every checkpoint).
  comm::agree_on(comm_, [&] {
    if (run_dir_.enabled() && TANDEM_WITH_HDF5) stats::save(s, run_dir_.path() + "/stats.h5");
  });
}

ckpt::NamedTensors Trainer::without_tables(ckpt::NamedTensors all) const {
  if (!ps_) return all;
  const std::string prefix = std::string(nn::kTablesModule) + ".";
  all.erase(std::remove_if(all.begin(), all.end(),
                           [&](const auto& e) { return e.first.rfind(prefix, 0) == 0; }),
            all.end());
  return all;
}

ckpt::State Trainer::snapshot(bool defer_rows) {
  model_->embeddings()->check_bags();  // no checkpoint of a step that read bad indices
  // The host copy reuses the previous checkpoint's buffers once it is written.
  ckpt::State s;
  if (spare_) {
    s = std::move(*spare_);
    spare_.reset();
    s.rng.clear();
    s.cuda_rng.clear();
  }
  s.rng = ckpt::gather_rng(comm_);  // every rank's (dropout)
  if (device_.is_cuda()) s.cuda_rng = ckpt::gather_rng(comm_, device_);  // dropout on the GPU
  if (comm_.rank() != 0) return s;
  at::NoGradGuard no_grad;
  // The table and its row-wise state are most of the bytes; deferred, the step
  // boundary copies only the rest.
  nn::TableBatchedEmbeddingImpl& tables = *model_->embeddings();
  defer_rows = defer_rows && row_optimizer_ && tables.weight.is_cpu();
  std::string weight_name, state_name;
  // With parameter servers the tables are saved by the servers, as shards.
  for (const auto& [name, t] : without_tables(ckpt::named(model_->named_parameters()))) {
    if (defer_rows && t.is_same(tables.weight)) weight_name = name;
    else ckpt::copy_into(s.params[name], t);
  }
  for (const auto& [name, t] : without_tables(ckpt::named(model_->named_buffers()))) {
    if (defer_rows && t.is_same(tables.rowwise_state)) state_name = name;
    else ckpt::copy_into(s.buffers[name], t);
  }
  s.table_shards = ps_ ? ps_->options().servers : 0;
  s.complete = nullptr;
  if (!weight_name.empty() && !state_name.empty()) {
    const auto rows = tables.snapshot_rows(s.params[weight_name], s.buffers[state_name]);
    s.params[weight_name] = rows->copies()[0];
    s.buffers[state_name] = rows->copies()[1];
    s.complete = [rows] { rows->complete(); };
    rows_in_flight_ = rows;
  } else if (!weight_name.empty() || !state_name.empty()) {
    throw Error("checkpoint: the embedding table or its row-wise state is not in the model");
  }
  ckpt::save_optimizer(*optim_, ckpt::named(model_->named_parameters()), s.optimizer);
  s.optimizer_name = cfg_.optim.name;
  s.step = step_;
  s.epoch = step_ / train_->steps_per_epoch();
  s.samples = samples_;
  s.lr = learning_rate(cfg_.optim, std::max<int64_t>(0, step_ - 1), total_steps_);
  s.best = best_;
  s.bad_evals = bad_evals_;
  s.monitor = monitor_;
  s.world_size = comm_.size();
  s.version = TANDEM_VERSION;
  s.run_id = store_ ? store_->run_id() : "";
  s.global_batch = cfg_.train.batch_size;
  s.config = config_ini_;
  s.metrics = run_dir_.history();
  for (ckpt::DataFile& d : data_files_)
    if (d.digest.empty()) {
      d.bytes = static_cast<int64_t>(std::filesystem::file_size(d.path));
      d.digest = ckpt::file_digest(d.path);
    }
  s.data = data_files_;
  s.stats = stats_;
  return s;
}

void Trainer::warm_start(const ckpt::State& s) {
  restore(s);
  warm_ = true;
  step_ = samples_ = bad_evals_ = 0;
  best_ = std::numeric_limits<double>::infinity();
  monitor_ = best_monitor_ = std::numeric_limits<double>::quiet_NaN();
  best_step_ = -1;
  best_checkpoint_.clear();
  run_dir_.restore_history("");
}

void Trainer::verify_data(const std::vector<ckpt::DataFile>& saved, const std::string& path) {
  // The files this run reads against those the checkpoint read: a resume on other
  // data would continue silently from a position that means something else.
  const auto began = Clock::now();
  double bytes = 0;
  std::vector<std::string> changes;
  for (ckpt::DataFile& d : data_files_) {
    const auto was = std::find_if(saved.begin(), saved.end(),
                                  [&](const ckpt::DataFile& s) { return s.path == d.path; });
    std::error_code ec;
    d.bytes = static_cast<int64_t>(std::filesystem::file_size(d.path, ec));
    d.digest = ckpt::file_digest(d.path);
    bytes += static_cast<double>(d.bytes);
    if (was == saved.end())
      changes.push_back(fmt::format("'{}' is new (not read by the checkpointed run)", d.path));
    else if (d.digest == was->digest)
      continue;
    else if (d.bytes > was->bytes && ckpt::file_digest(d.path, was->bytes) == was->digest)
      changes.push_back(
          fmt::format("'{}' was appended to ({} -> {} bytes; the rows before are "
                      "unchanged)",
                      d.path, was->bytes, d.bytes));
    else
      changes.push_back(fmt::format("'{}' changed ({} -> {} bytes, digest {} -> {})", d.path,
                                    was->bytes, d.bytes, was->digest, d.digest));
  }
  for (const ckpt::DataFile& s : saved)
    if (std::none_of(data_files_.begin(), data_files_.end(),
                     [&](const ckpt::DataFile& d) { return d.path == s.path; }))
      changes.push_back(fmt::format("'{}' is no longer read", s.path));
  log::infof("resume: checked {} data file(s) ({}) against {} in {:.2f} s: {}", data_files_.size(),
             log::bytes(bytes), path, std::chrono::duration<double>(Clock::now() - began).count(),
             changes.empty() ? "unchanged" : fmt::format("{} changed", changes.size()));
  if (changes.empty()) return;
  if (!cfg_.run.allow_changed_data)
    throw DataError(fmt::format(
        "resume: the data changed since the checkpoint: {}{} (--resume-allow-changed-data to "
        "resume anyway)",
        changes.front(),
        changes.size() > 1 ? fmt::format(", and {} more", changes.size() - 1) : ""));
  for (const std::string& c : changes)
    log::warn("tandem: resume on changed data (run.allow_changed_data): " + c);
}

void Trainer::restore(const ckpt::State& s) {
  if (s.global_batch != cfg_.train.batch_size)
    throw DataError(fmt::format(
        "checkpoint: global batch {} in the checkpoint, train.batch_size={} configured (the "
        "resume position counts global batches; keep the global batch when changing ranks)",
        s.global_batch, cfg_.train.batch_size));
  // With parameter servers the servers have loaded the tables (ps::load_shard).
  std::map<std::string, at::Tensor> params, buffers;
  for (const auto& [name, t] : without_tables({s.params.begin(), s.params.end()})) params[name] = t;
  for (const auto& [name, t] : without_tables({s.buffers.begin(), s.buffers.end()}))
    buffers[name] = t;
  ckpt::load_tensors(without_tables(ckpt::named(model_->named_parameters())), params, "parameter",
                     "a different model?");
  ckpt::load_tensors(without_tables(ckpt::named(model_->named_buffers())), buffers, "buffer",
                     "a different model?");
  if (s.optimizer_name != cfg_.optim.name)
    throw DataError(fmt::format("checkpoint: optimizer '{}' in the checkpoint, '{}' configured",
                                s.optimizer_name, cfg_.optim.name));
  ckpt::load_optimizer(*optim_, ckpt::named(model_->named_parameters()), s.optimizer);
  stats_ = s.stats;  // the statistics themselves live in the restored buffers
  step_ = s.step;
  samples_ = s.samples;
  best_ = s.best;
  bad_evals_ = s.bad_evals;
  monitor_ = s.monitor;
  best_from_history(s.metrics);
  // Another world size: seeded from the position, so still deterministic.
  const uint64_t fallback = static_cast<uint64_t>(cfg_.run.seed) * 1000003ULL + comm_.rank() + 1 +
                            static_cast<uint64_t>(s.step) * 7919ULL;
  ckpt::restore_rng(s.rng, s.world_size, comm_, fallback);
  if (device_.is_cuda()) ckpt::restore_rng(s.cuda_rng, s.world_size, comm_, fallback, device_);
  run_dir_.restore_history(s.metrics, s.step);
}

bool Trainer::note_monitor(const EvalMetrics& m, int64_t step) {
  const double value = metric_of(m, cfg_.ckpt.monitor);
  const bool maximize = cfg_.ckpt.monitor == "auc" || cfg_.ckpt.monitor == "accuracy";
  const bool better =
      std::isfinite(value) &&
      (std::isnan(best_monitor_) || (maximize ? value > best_monitor_ : value < best_monitor_));
  if (better) {
    best_monitor_ = value;
    best_step_ = step;
    best_eval_ = m;
  }
  return better;
}

void Trainer::restore_best_weights() {
  // Its evaluation improved ckpt.monitor, so (ckpt.keep_best > 0) it was saved and kept.
  const std::string path = fmt::format("{}/step-{:09d}.h5", ckpt_dir_, best_step_);
  finish_pending_save();
  comm_.barrier();  // rank 0 has written it
  comm::agree_on(comm_, [&] {
    const ckpt::State s = ckpt::read(path, cfg_.ckpt.file_locking);
    // The weights and statistics of the best model; the optimizer's state (the
    // tables' row-wise state too) stays the last, as a resumed run would have it.
    at::NoGradGuard no_grad;
    const at::Tensor state = model_->embeddings()->rowwise_state.clone();
    ckpt::load_module(*model_, s);
    model_->embeddings()->rowwise_state.copy_(state);
  });
}

void Trainer::best_from_history(const std::string& history) {
  // The evaluations of the run so far are in its metrics history.
  best_monitor_ = std::numeric_limits<double>::quiet_NaN();
  best_step_ = -1;
  std::istringstream lines(history);
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (e.is_discarded() || e.value("event", "") != "eval" || !e.contains(cfg_.ckpt.monitor))
      continue;
    EvalMetrics m;
    m.logloss = e.value("logloss", std::numeric_limits<double>::quiet_NaN());
    m.ne = e.value("ne", std::numeric_limits<double>::quiet_NaN());
    m.auc = e.value("auc", std::numeric_limits<double>::quiet_NaN());
    m.accuracy = e.value("accuracy", std::numeric_limits<double>::quiet_NaN());
    note_monitor(m, e.value("step", int64_t{0}));
  }
}

std::string Trainer::save_checkpoint(bool wait) {
  finish_pending_save();  // at most one in flight; its error surfaces here
  const auto start = Clock::now();
  if (ps_) {
    // Every worker asks the servers for their shards; rank 0 writes the rest and,
    // last, the manifest that commits the whole. Training waits for it.
    ckpt::State s = snapshot();
    const std::string path = fmt::format("{}/step-{:09d}.h5", ckpt_dir_, step_);
    const std::vector<ckpt::ShardRecord> shards = ps_->save(path);
    if (!store_) return path;
    const std::string saved =
        store_->save(s, [&](const std::string& p) { ckpt::write_manifest(p, s.step, shards); });
    log::infof("checkpoint: saved {} and its {} table shard(s) in {:.3f} s (training waited)",
               saved, shards.size(), std::chrono::duration<double>(Clock::now() - start).count());
    return saved;
  }
  const bool async = cfg_.ckpt.async && !wait;
  ckpt::State s = snapshot(/*defer_rows=*/async && store_);
  if (!store_) return "";
  const std::string name = fmt::format("{}/step-{:09d}.h5", store_->dir(), s.step);
  auto st = std::make_shared<ckpt::State>(std::move(s));
  if (async) {
    in_flight_ = st;
    pending_save_ = std::async(std::launch::async, [this, st] {
      const auto began = Clock::now();
      if (st->complete) st->complete();  // the table rows, while training goes on
      const std::string path = store_->save(*st);
      background_seconds_ = std::chrono::duration<double>(Clock::now() - began).count();
      return path;
    });
    boundary_seconds_ = std::chrono::duration<double>(Clock::now() - start).count();
  } else {
    const std::string path = store_->save(*st);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    log::infof("checkpoint: saved {} in {:.3f} s (training waited)", path, seconds);
    run_dir_.scalar("checkpoint/save_seconds", seconds, st->step);
    run_dir_.scalar("checkpoint/blocked_ms", 1e3 * seconds, st->step);
    spare_ = std::move(st);
  }
  return name;
}

void Trainer::log_histograms() {
  if (comm_.rank() != 0 || !cfg_.log.tensorboard) return;
  at::NoGradGuard no_grad;
  // The MLPs' weight matrices, and the L2 norm of every row of each table (held
  // here unless the tables live on parameter servers).
  for (const auto& p : model_->named_parameters())
    if (p.value().dim() == 2 && p.key().rfind(nn::kTablesModule, 0) != 0)
      run_dir_.histogram("weights/" + p.key(), p.value(), step_);
  if (ps_) return;
  const auto& tables = model_->embeddings();
  const at::Tensor offsets = tables->table_offsets.cpu(), sizes = tables->table_sizes.cpu();
  for (int64_t t = 0; t < sizes.numel(); ++t)
    run_dir_.histogram(
        fmt::format("embedding_row_norm/table_{}", t),
        tables->weight.narrow(0, offsets[t].item<int64_t>(), sizes[t].item<int64_t>()).norm(2, {1}),
        step_);
}

void Trainer::finish_pending_save() {
  if (!pending_save_.valid()) return;
  const std::string path = pending_save_.get();  // rethrows a failed save
  spare_ = std::move(in_flight_);
  // What the save cost training: the step boundary (the copy of all but the table
  // rows) and the old rows saved ahead of the background copy.
  const double guard = rows_in_flight_ ? rows_in_flight_->guard_seconds() : 0.0;
  rows_in_flight_.reset();
  log::infof(
      "checkpoint: saved {} in {:.3f} s in the background; training blocked {:.2f} ms ({:.2f} "
      "at the step boundary, {:.2f} keeping table rows for the copy)",
      path, background_seconds_, 1e3 * (boundary_seconds_ + guard), 1e3 * boundary_seconds_,
      1e3 * guard);
  if (spare_) {
    run_dir_.scalar("checkpoint/save_seconds", background_seconds_, spare_->step);
    run_dir_.scalar("checkpoint/blocked_ms", 1e3 * (boundary_seconds_ + guard), spare_->step);
  }
}

EvalMetrics Trainer::evaluate() {
  model_->embeddings()->check_bags();  // the last training step's, on a GPU
  at::NoGradGuard no_grad;
  model_->eval();
  const auto [first, count] = data::Loader::slice(eval_->rows(), comm_.rank(), comm_.size());
  // Every rank runs as many batches as the largest slice has (a parameter server's
  // pulls are collective); a rank past its slice reads nothing.
  const int64_t largest = (eval_->rows() + comm_.size() - 1) / comm_.size();
  std::vector<at::Tensor> logits, labels;
  for (int64_t i = 0; i < largest; i += cfg_.train.eval_batch_size) {
    const int64_t n = std::clamp<int64_t>(count - i, 0, cfg_.train.eval_batch_size);
    const data::Batch b = eval_->read(0, first + std::min(i, count), n).to(device_);
    const at::Tensor ids = placement_->prepare(b.sparse);
    if (n == 0) continue;
    logits.push_back(model_->forward(b.dense, ids));
    labels.push_back(b.labels);
  }
  const auto on = at::TensorOptions().device(device_);
  const at::Tensor z = logits.empty() ? at::empty({0}, on) : at::cat(logits);
  const at::Tensor y = labels.empty() ? at::empty({0}, on) : at::cat(labels);
  return reduce_metrics(z, y, comm_);
}

TrainSummary Trainer::run() {
  TrainSummary summary;
  summary.baseline = baseline_metrics(eval_rows_, eval_positives_);
  keep_stop_handlers();  // one that came during start-up stops the run below

  // Resume: the path was resolved on rank 0 ("auto" looks for the newest loadable
  // checkpoint) and every rank reads it; a failure anywhere stops every rank.
  if (!cfg_.run.resume.empty()) {
    const std::string& path = resume_path_;
    if (path.empty()) {
      log::infof("resume: no checkpoint in {} yet; starting fresh", ckpt_dir_);
    } else {
      comm::agree_on(comm_, [&] {
        ckpt::State st = ckpt::read(path, cfg_.ckpt.file_locking);
        if (!ps_) ps::complete_tables(st, path, cfg_.ckpt.file_locking);  // saved by servers
        if (comm_.rank() == 0) verify_data(st.data, path);
        restore(st);
      });
      summary.resumed_from = path;
      log::infof("resume: {} at step {} (epoch {}, {} samples seen)", path, step_,
                 step_ / train_->steps_per_epoch(), samples_);
    }
  }

  // A warm start keeps the statistics it started from (the weights were learned on them).
  if (cfg_.model.standardize && summary.resumed_from.empty() && !warm_) fit_statistics();

  log::infof("tandem: {} rank(s), {} training rows, {} eval rows, {} steps of global batch {}",
             comm_.size(), train_->rows(), eval_rows_, total_steps_, cfg_.train.batch_size);
  if (step_ == 0) {
    log::infof("baseline (predict the positive rate {:.4f}): logloss {:.5f}  NE 1.0  AUC 0.5",
               eval_rows_ ? static_cast<double>(eval_positives_) / eval_rows_ : 0.0,
               summary.baseline.logloss);
    nlohmann::json baseline = {{"event", "baseline"}, {"step", 0}};
    baseline.update(to_json(summary.baseline));
    run_dir_.append_metrics(baseline);
  }

  // A stop asked for during start-up (on any rank): nothing trained, nothing to save.
  at::Tensor early = at::full({1}, stop_signalled() ? 1 : 0, at::kLong);
  if (comm_.size() > 1) comm_.allreduce(early, comm::ReduceOp::kMax);
  if (early.item<int64_t>() != 0) {
    log::infof("stop requested by a signal during start-up, before step {}: nothing to save",
               step_ + 1);
    restore_default_handlers();
    summary.preempted = true;
    summary.steps = step_;
    return summary;
  }

  const int64_t spe = train_->steps_per_epoch(), first_step = step_;
  const auto start = Clock::now();
  auto window_start = start, last_save = start;
  // The loss stays where it is computed until a log line needs it: reading it
  // every step would make the host wait for the GPU every step.
  at::Tensor window_loss = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device_));
  int64_t window_rows = 0, run_samples = 0;
  auto eval_event = [&](const EvalMetrics& m, const char* kind) {
    nlohmann::json e = {{"event", kind}, {"step", step_}};
    e.update(to_json(m));
    run_dir_.append_metrics(e);
    log_histograms();
  };
  while (step_ < total_steps_) {
    const int64_t epoch = step_ / spe, in_epoch = step_ % spe;
    const int64_t global_rows =
        std::min(cfg_.train.batch_size, train_->rows() - in_epoch * cfg_.train.batch_size);
    window_loss += train_step(epoch, in_epoch, step_);
    window_rows += global_rows;
    samples_ += global_rows;
    run_samples += global_rows;
    ++step_;
    const bool log_now =
        cfg_.train.log_every > 0 && (step_ % cfg_.train.log_every == 0 || step_ == total_steps_);
    if (log_now) {
      at::Tensor loss = window_loss.to(at::kCPU).reshape({1});
      comm_.allreduce(loss, comm::ReduceOp::kSum);
      const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      const double rate = window_rows / std::max(secs, 1e-9);
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double eta =
          elapsed / std::max<int64_t>(1, step_ - first_step) * (total_steps_ - step_);
      const double mean_loss = loss.item<double>() / window_rows;
      const double lr = learning_rate(cfg_.optim, step_ - 1, total_steps_);
      log::infof("step {}/{}  epoch {}  loss {:.5f}  lr {:.4g}  samples/s {:.0f}  ETA {}", step_,
                 total_steps_, epoch, mean_loss, lr, rate, hms(eta));
      nlohmann::json event = {{"event", "train"}, {"step", step_},   {"epoch", epoch},
                              {"loss", mean_loss}, {"lr", lr}, {"samples_per_s", rate}};
      if (cfg_.train.profile) {
        // Milliseconds per step in each phase, over this window (rank 0's).
        const double steps =
            std::max(1.0, static_cast<double>(window_rows) / cfg_.train.batch_size);
        constexpr const char* kNames[] = {"data", "forward", "backward", "comm", "optimizer"};
        std::string line = "  step time (ms):";
        for (int p = 0; p < kPhases; ++p) {
          const double ms = 1e3 * phase_seconds_[p] / steps;
          event[std::string("ms_") + kNames[p]] = ms;
          line += fmt::format(" {} {:.2f}", kNames[p], ms);
        }
        log::info(line);
        phase_seconds_.fill(0);
      }
      run_dir_.append_metrics(event);
      window_loss.zero_();
      window_rows = 0;
      window_start = Clock::now();
    }
    bool save_best = false;  // this evaluation improved ckpt.monitor: keep its model
    if (eval_every_ > 0 && step_ % eval_every_ == 0 && step_ < total_steps_) {
      const EvalMetrics m = evaluate();
      log::infof("eval @ step {}: logloss {:.5f}  NE {:.4f}  AUC {:.4f}  accuracy {:.4f}", step_,
                 m.logloss, m.ne, m.auc, m.accuracy);
      eval_event(m, "eval");
      monitor_ = metric_of(m, cfg_.ckpt.monitor);
      save_best = note_monitor(m, step_) && cfg_.ckpt.keep_best > 0;
      if (m.logloss < best_) {
        best_ = m.logloss;
        bad_evals_ = 0;
      } else if (cfg_.train.patience > 0 && ++bad_evals_ >= cfg_.train.patience) {
        log::infof("early stop: no logloss improvement in {} evaluations", bad_evals_);
        summary.stopped_early = true;
        break;
      }
    } else {
      monitor_ = std::numeric_limits<double>::quiet_NaN();
    }
    // Step boundary: a save that is due, and a stop requested by a signal, are
    // decided together on every rank (a signal may reach some ranks only, and the
    // clock is rank 0's).
    at::Tensor flags = at::zeros({2}, at::kLong);
    if (comm_.rank() == 0) {
      const double since = std::chrono::duration<double>(Clock::now() - last_save).count();
      flags[0] = (cfg_.ckpt.every_steps > 0 && step_ % cfg_.ckpt.every_steps == 0) ||
                 (cfg_.ckpt.every_seconds > 0 && since >= cfg_.ckpt.every_seconds) || save_best;
    }
    flags[1] = stop_signalled();
    if (comm_.size() > 1) comm_.allreduce(flags, comm::ReduceOp::kMax);
    const bool stop = flags[1].item<int64_t>() != 0;
    if (stop || flags[0].item<int64_t>() != 0) {
      if (!ckpt_dir_.empty()) {
        summary.last_checkpoint = save_checkpoint(/*wait=*/stop);
        if (save_best) best_checkpoint_ = summary.last_checkpoint;
        last_save = Clock::now();
      }
    }
    if (stop) {
      log::infof("stop requested by a signal: {} at step {}",
                 summary.last_checkpoint.empty() ? "no checkpoint directory, nothing saved"
                                                 : "saved " + summary.last_checkpoint,
                 step_);
      summary.preempted = true;
      break;
    }
    // Test hooks for the crash tests: die like kill -9 right after this step; or
    // receive SIGTERM there (through the real handler, so the stop is decided at
    // the next boundary), at a step the test chooses rather than a moment it races.
    if (const char* k = std::getenv("TANDEM_KILL_AFTER_STEP"); k && std::atoll(k) == step_) {
      finish_pending_save();
      std::raise(SIGKILL);
    }
    if (const char* k = std::getenv("TANDEM_TERM_AFTER_STEP"); k && std::atoll(k) == step_)
      std::raise(SIGTERM);
    // ... or hang outside MPI on the last rank (the collective watchdog's test).
    if (const char* k = std::getenv("TANDEM_HANG_AFTER_STEP");
        k && std::atoll(k) == step_ && comm_.rank() == comm_.size() - 1)
      std::this_thread::sleep_for(std::chrono::hours(1));
    if (comm_.rank() == 0 && pending_save_.valid() &&
        pending_save_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
      finish_pending_save();  // a failed background save surfaces here
  }
  restore_default_handlers();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  summary.steps = step_;
  summary.samples_per_second = run_samples / std::max(secs, 1e-9);
  if (summary.preempted) {
    finish_pending_save();
    return summary;
  }
  summary.final = evaluate();
  const EvalMetrics& f = summary.final;
  monitor_ = metric_of(f, cfg_.ckpt.monitor);
  const bool final_is_best = note_monitor(f, step_);
  log::infof("final @ step {}: logloss {:.5f}  NE {:.4f}  AUC {:.4f}  accuracy {:.4f}", step_,
             f.logloss, f.ne, f.auc, f.accuracy);
  log::infof(
      "gain over the base-rate predictor: logloss {:.5f} -> {:.5f} ({:+.2f}%), AUC 0.5 -> {:.4f}",
      summary.baseline.logloss, f.logloss,
      100.0 * (f.logloss - summary.baseline.logloss) / summary.baseline.logloss, f.auc);
  nlohmann::json final_event = {{"event", "final"},
                                {"step", step_},
                                {"samples_per_s", summary.samples_per_second},
                                {"baseline_logloss", summary.baseline.logloss}};
  final_event.update(to_json(f));
  run_dir_.append_metrics(final_event);
  if (cfg_.train.restore_best && !final_is_best && best_step_ >= 0) {
    restore_best_weights();
    summary.final = evaluate();
    const EvalMetrics& b = summary.final;
    log::infof(
        "restored the best model (step {}, {} {:.5f}): logloss {:.5f}  NE {:.4f}  AUC {:.4f}  "
        "accuracy {:.4f}",
        best_step_, cfg_.ckpt.monitor, best_monitor_, b.logloss, b.ne, b.auc, b.accuracy);
    nlohmann::json restored = {
        {"event", "restored_best"}, {"step", step_}, {"from_step", best_step_}};
    restored.update(to_json(b));
    run_dir_.append_metrics(restored);
  }
  log_histograms();
  if (cfg_.ckpt.at_end && !ckpt_dir_.empty()) {
    summary.last_checkpoint = save_checkpoint(/*wait=*/true);
    if (final_is_best) best_checkpoint_ = summary.last_checkpoint;
  }
  finish_pending_save();
  // ckpt::open_store() dropped the directory: the run went on, and says so here.
  if (!TANDEM_WITH_HDF5 && !cfg_.checkpoint_dir().empty())
    log::info("checkpoint: none written: this Tandem was built without HDF5");
  summary.best_checkpoint = best_checkpoint_;
  if (best_step_ >= 0 && best_step_ != step_)  // the final evaluation is above otherwise
    log::infof("best eval @ step {}: logloss {:.5f}  NE {:.4f}  AUC {:.4f}  accuracy {:.4f}",
               best_step_, best_eval_.logloss, best_eval_.ne, best_eval_.auc, best_eval_.accuracy);
  if (!best_checkpoint_.empty())
    log::infof("best model: step {}, {} {:.5f}: {}", best_step_, cfg_.ckpt.monitor, best_monitor_,
               best_checkpoint_);
  if (run_dir_.enabled())
    log::infof("results: {}/metrics.jsonl, {}/config.ini", run_dir_.path(), run_dir_.path());
  return summary;
}

}  // namespace tandem::train
