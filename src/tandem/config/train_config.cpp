#include "tandem/config/train_config.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <filesystem>

#include "tandem/data/criteo.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::config {

void add_options(OptionSet& o, RunSection& run) {
  o.add("run.dir", &run.dir, "run directory: config.ini, metrics.jsonl")
      .add("run.seed", &run.seed,
           "seed for initialisation and sampling (shuffling, dropout, tasks)")
      .add("run.resume", &run.resume,
           "resume: auto (newest loadable checkpoint, else a fresh start) or a checkpoint path")
      .add("run.allow_changed_data", &run.allow_changed_data,
           "resume although the data files differ from the checkpoint's (size and digest); "
           "--resume-allow-changed-data")
      .add("run.overwrite", &run.overwrite,
           "a fresh start (or a resume from another directory) deletes the checkpoints of "
           "another run in the checkpoint directory, and replaces an earlier run's "
           "metrics.jsonl in run.dir, instead of refusing to start")
      .add("run.threads", &run.threads, "intra-op threads per rank; 0 = cores / local ranks");
}

void add_options(OptionSet& o, CommSection& comm) {
  o.add("comm.backend", &comm.backend,
        "auto (nccl when training on GPU, else mpi under a launcher or single), mpi, nccl, single")
      .add("comm.check", &comm.check, "check op, dtype and shape of every collective")
      .add("comm.timeout_s", &comm.timeout_s,
           "seconds: a collective (mpi or nccl) not done this long, or a parameter-server peer "
           "silent this long, ends the job naming the rank and host");
}

void add_options(OptionSet& o, LogSection& log) {
  o.add("log.tensorboard", &log.tensorboard,
        "write TensorBoard event files into <run.dir>/tb (metrics, histograms, the config)");
}

void add_storage_options(OptionSet& o, CkptSection& ckpt) {
  o.add("ckpt.dir", &ckpt.dir, "checkpoint directory; empty = <run.dir>/checkpoints")
      .add("ckpt.every_steps", &ckpt.every_steps, "save every N steps; 0 = off")
      .add("ckpt.at_end", &ckpt.at_end, "save after the final evaluation")
      .add("ckpt.keep_last", &ckpt.keep_last, "most recent checkpoints kept")
      .add("ckpt.gzip", &ckpt.gzip, "gzip level of checkpoint datasets; 0 = off")
      .add("ckpt.file_locking", &ckpt.file_locking,
           "HDF5 file locking (turn off on filesystems without locks)");
}

void validate(const RunSection& run, const CommSection& comm, const CkptSection& ckpt) {
  require(run.threads >= 0, "run.threads", "must be >= 0 (0 = cores / local ranks)");
  // A directory setting that names an existing file would fail only when first
  // written, after training started.
  const auto not_a_file = [](const std::string& key, const std::string& dir) {
    std::error_code ec;
    require(
        dir.empty() || !std::filesystem::exists(dir, ec) || std::filesystem::is_directory(dir, ec),
        key, fmt::format("'{}' is a file, not a directory", log::printable(dir, 200)));
  };
  not_a_file("run.dir", run.dir);
  not_a_file(ckpt.dir.empty() ? "run.dir" : "ckpt.dir", checkpoint_dir(run, ckpt));
  one_of("comm.backend", comm.backend, {"auto", "mpi", "nccl", "single"});
  require(std::isfinite(comm.timeout_s) && comm.timeout_s > 0, "comm.timeout_s",
          "must be finite and > 0");
  require(ckpt.every_steps >= 0 && ckpt.every_seconds >= 0, "ckpt.every_steps",
          "ckpt.every_steps and ckpt.every_seconds must be >= 0");
  require(ckpt.keep_last >= 1, "ckpt.keep_last", "must be >= 1");
  require(ckpt.keep_best >= 0, "ckpt.keep_best", "must be >= 0");
  require(ckpt.gzip >= 0 && ckpt.gzip <= 9, "ckpt.gzip", "must be in 0..9");
  require(run.resume != "auto" || !checkpoint_dir(run, ckpt).empty(), "run.resume",
          "auto needs a checkpoint directory (run.dir or ckpt.dir)");
}

std::string checkpoint_dir(const RunSection& run, const CkptSection& ckpt) {
  if (!ckpt.dir.empty()) return ckpt.dir;
  return run.dir.empty() ? "" : run.dir + "/checkpoints";
}

OptionSet TrainConfig::options() {
  OptionSet o("tandem train options (INI [section] key, or --section.key=value)");
  add_options(o, run);
  o.add("data.train", &data.train, "training TSV files or directories, comma-separated")
      .add("data.eval", &data.eval, "held-out TSV files; empty = hold out data.eval_fraction")
      .add("data.eval_fraction", &data.eval_fraction,
           "share of training blocks held out for evaluation when data.eval is empty")
      .add("data.on_error", &data.on_error, "malformed line: skip (default) or fail")
      .add("data.max_bad_fraction", &data.max_bad_fraction,
           "with skip: stop (exit 3) when more than this share of the lines is malformed")
      .add("data.max_bad_lines", &data.max_bad_lines,
           "with skip: stop (exit 3) when more lines than this are malformed; -1 = no limit")
      .add("data.stats", &data.stats,
           "feature statistics file from tandem fit-stats; empty = fit them before training")
      .add("data.block_rows", &data.block_rows, "rows per shuffle block")
      .add("data.shuffle", &data.shuffle, "shuffle blocks and rows each epoch")
      .add("data.prefetch", &data.prefetch, "read the next batch on a background thread")
      .add("data.parse_threads", &data.parse_threads,
           "threads parsing each training batch; 0 = 1 on CPU, cores / local ranks (<= 16) on GPU")
      .add("schema.format", &schema.format,
           "criteo (label, I1-I13, C1-C26, tab-separated) or delimited (the keys below)")
      .add("schema.delimiter", &schema.delimiter,
           "delimited: one character, or tab, comma, space, semicolon, pipe")
      .add("schema.header", &schema.header, "delimited: line 1 of every file names the columns")
      .add("schema.columns", &schema.columns,
           "delimited: number of columns; needed without a header (0 = the header's)")
      .add("schema.label", &schema.label,
           "delimited: the label column (0 or 1), by header name or position from 1")
      .add("schema.dense", &schema.dense,
           "delimited: float columns, COL[:log1p|none|clip:LO:HI], comma-separated (log1p)")
      .add("schema.categorical", &schema.categorical,
           "delimited: categorical columns, COL[:hash|hex][:sep=C:max=N[:sum|mean]], "
           "comma-separated (hash: FNV-1a of the bytes; sep: a multi-hot list of up to N ids)")
      .add("schema.ignore", &schema.ignore, "delimited: columns not read, comma-separated")
      .add("model.embedding_dim", &model.embedding_dim, "embedding and bottom-MLP output size")
      .add("model.bottom_mlp", &model.bottom_mlp, "bottom-MLP hidden sizes, comma-separated")
      .add("model.top_mlp", &model.top_mlp, "top-MLP hidden sizes, comma-separated")
      .add("model.embedding_rows", &model.embedding_rows,
           "rows of the 26 embedding tables (one value = all)")
      .add("model.dropout", &model.dropout, "dropout probability in the top MLP")
      .add("model.sparse_embeddings", &model.sparse_embeddings,
           "sparse embedding gradients (sgd without momentum/weight decay, or adagrad)")
      .add("model.kernels", &model.kernels,
           "tandem (own embedding, interaction and LayerNorm kernels; adagrad is row-wise for "
           "the tables) "
           "or aten (LibTorch's ops)")
      .add("model.layer_norm", &model.layer_norm, "LayerNorm after each hidden MLP layer")
      .add("model.standardize", &model.standardize,
           "standardize integer features with global statistics (missing -> mean)")
      .add("model.missing_indicator", &model.missing_indicator,
           "with model.standardize: add a 0/1 missing column per integer feature")
      .add("model.sync_batch_norm", &model.sync_batch_norm,
           "SyncBatchNorm over the global batch after each bottom-MLP layer")
      .add("optim.name", &optim.name, "sgd, adagrad, adam or adamw")
      .add("optim.lr", &optim.lr, "peak learning rate")
      .add("optim.momentum", &optim.momentum, "SGD momentum")
      .add("optim.weight_decay", &optim.weight_decay, "weight decay")
      .add("optim.beta1", &optim.beta1, "Adam beta1")
      .add("optim.beta2", &optim.beta2, "Adam beta2")
      .add("optim.eps", &optim.eps, "Adam/Adagrad epsilon")
      .add("optim.warmup_steps", &optim.warmup_steps, "linear warm-up steps")
      .add("optim.decay", &optim.decay, "after warm-up: none, linear or cosine")
      .add("optim.min_lr", &optim.min_lr, "learning rate reached at the last step by decay")
      .add("optim.fused_embedding_update", &optim.fused_embedding_update,
           "tandem kernels, 1 rank, no accumulation: update embedding rows during backward")
      .add("train.device", &train.device,
           "auto (cuda when a GPU is usable, else cpu), cpu or cuda (one GPU per rank)")
      .add("train.steps", &train.steps, "optimizer steps; 0 = train.epochs epochs")
      .add("train.epochs", &train.epochs, "epochs when train.steps is 0")
      .add("train.batch_size", &train.batch_size, "global batch size, split over ranks")
      .add("train.accumulate", &train.accumulate, "micro-batches per optimizer step")
      .add("train.eval_every", &train.eval_every,
           "steps between evaluations, or epoch (every epoch's end); 0 = at the end")
      .add("train.eval_batch_size", &train.eval_batch_size, "rows per evaluation batch")
      .add("train.log_every", &train.log_every, "steps between progress lines")
      .add("train.patience", &train.patience,
           "evaluations without logloss improvement before stopping; 0 = off")
      .add("train.restore_best", &train.restore_best,
           "end with the best evaluation's weights (by ckpt.monitor; needs ckpt.keep_best > 0)")
      .add("train.reduction", &train.reduction, "gradient reduction: bucketed or per_tensor")
      .add("train.bucket_mb", &train.bucket_mb, "gradient bucket size in MiB")
      .add("train.first_bucket_mb", &train.first_bucket_mb, "size of the first bucket in MiB")
      .add("train.overlap", &train.overlap, "all-reduce buckets while backward runs")
      .add("train.on_nonfinite", &train.on_nonfinite,
           "a loss or gradient that is not finite: stop (exit 3) or skip_step (the step "
           "changes nothing; 10 skipped in a row stop the run)")
      .add("train.profile", &train.profile,
           "log the step-time breakdown (data, forward, backward, comm, optimizer); syncs the "
           "device between phases");
  add_storage_options(o, ckpt);
  o.add("ckpt.every_seconds", &ckpt.every_seconds, "save every T seconds; 0 = off")
      .add("ckpt.keep_best", &ckpt.keep_best, "best checkpoints by ckpt.monitor kept besides")
      .add("ckpt.monitor", &ckpt.monitor, "eval metric for keep_best: logloss, ne, auc, accuracy")
      .add("ckpt.async", &ckpt.async, "write checkpoints on a background thread");
  add_options(o, comm);
  add_options(o, log);
  o.add("ps.servers", &ps.servers,
        "parameter servers holding the embedding tables, sharded by row; 0 = every rank holds "
        "every table")
      .add("ps.placement", &ps.placement,
           "dedicated (the last ps.servers ranks only serve) or colocated (every rank serves a "
           "shard and trains; ps.servers must equal the ranks; the ranks exchange rows in lock "
           "step, with collectives, so every read is exact under any ps.consistency)")
      .add("ps.consistency", &ps.consistency,
           "bsp: a pull sees exactly the pushes of all earlier steps (= replicated training); "
           "ssp: it may lack the last ps.staleness steps of any worker's pushes; asp: no bound, "
           "never waits")
      .add("ps.staleness", &ps.staleness, "ssp: how many steps of pushes a pull may lack")
      .add("ps.prefetch", &ps.prefetch,
           "ask the servers for the next batch's rows while this batch trains");
  return o;
}

void TrainConfig::validate_ps(int launched) const {
  require(ps.servers >= 0, "ps.servers", "must be >= 0 (0 = replicated tables)");
  if (ps.servers == 0) return;
  one_of("ps.placement", ps.placement, {"dedicated", "colocated"});
  one_of("ps.consistency", ps.consistency, {"bsp", "ssp", "asp"});
  require(ps.staleness >= 0, "ps.staleness", "must be >= 0 (0 = BSP's reads)");
  require(!train.restore_best, "train.restore_best",
          "not with parameter servers: their shards are not reloaded during a run (predict or "
          "resume from the best checkpoint the run names at its end)");
  if (ps.placement == "dedicated")
    require(
        ps.servers < launched, "ps.servers",
        fmt::format("{} dedicated servers leave no worker among {} ranks", ps.servers, launched));
  else
    require(ps.servers == launched, "ps.servers",
            fmt::format("colocated placement puts a shard on every rank: set it to the {} "
                        "ranks launched, not {}",
                        launched, ps.servers));
  require(model.kernels == "tandem" && model.sparse_embeddings, "model.kernels",
          "the parameter server needs Tandem's kernels with sparse embeddings (the servers run "
          "the row-wise optimizer)");
  require(optim.name == "sgd" || optim.name == "adagrad", "optim.name",
          "the parameter server's tables take sgd or adagrad (row-wise)");
  require(train.device != "cuda", "train.device", "the parameter server trains on the CPU");
}

int TrainConfig::workers(int launched) const {
  return ps.servers > 0 && ps.placement == "dedicated" ? launched - ps.servers : launched;
}

std::vector<int64_t> TrainConfig::bottom_sizes() const {
  return parse_int_list("model.bottom_mlp", model.bottom_mlp);
}
std::vector<int64_t> TrainConfig::top_sizes() const {
  return parse_int_list("model.top_mlp", model.top_mlp);
}
std::shared_ptr<const data::Schema> TrainConfig::data_schema() const {
  return data::Schema::from_spec(schema);
}

data::IndexOptions TrainConfig::index_options() const {
  return {data.block_rows, data.on_error == "fail", data.max_bad_fraction, data.max_bad_lines,
          data_schema()};
}

std::vector<int64_t> TrainConfig::table_rows() const {
  const size_t tables = static_cast<size_t>(data_schema()->num_categorical());
  std::vector<int64_t> rows = parse_int_list("model.embedding_rows", model.embedding_rows);
  if (rows.size() == 1) rows.assign(tables, rows[0]);
  require(rows.size() == tables, "model.embedding_rows",
          fmt::format("needs 1 or {} values (one per categorical column), got {}", tables,
                      rows.size()));
  for (int64_t r : rows) require(r >= 2, "model.embedding_rows", "every table needs >= 2 rows");
  return rows;
}

int64_t TrainSection::eval_interval(int64_t steps_per_epoch) const {
  if (eval_every == "epoch") return steps_per_epoch;
  int64_t steps = -1;
  const auto r = std::from_chars(eval_every.data(), eval_every.data() + eval_every.size(), steps);
  require(
      r.ec == std::errc() && r.ptr == eval_every.data() + eval_every.size() && steps >= 0,
      "train.eval_every",
      fmt::format("'{}' is not a number of steps >= 0 or epoch", log::printable(eval_every, 80)));
  return steps;
}

std::string TrainConfig::checkpoint_dir() const { return config::checkpoint_dir(run, ckpt); }

void TrainConfig::validate(int world_size) const {
  require(!data.train.empty(), "data.train", "is not set (a TSV file or directory)");
  one_of("data.on_error", data.on_error, {"skip", "fail"});
  require(data.max_bad_fraction >= 0 && data.max_bad_fraction <= 1, "data.max_bad_fraction",
          "must be in [0, 1]");
  require(data.eval_fraction >= 0 && data.eval_fraction < 1, "data.eval_fraction",
          "must be in [0, 1)");
  require(!data.eval.empty() || data.eval_fraction > 0, "data.eval",
          "is empty and data.eval_fraction is 0: no evaluation data");
  require(data.block_rows > 0, "data.block_rows", "must be > 0");
  require(data.parse_threads >= 0, "data.parse_threads", "must be >= 0 (0 = auto)");
  require(model.embedding_dim > 0, "model.embedding_dim", "must be > 0");
  for (int64_t s : bottom_sizes()) require(s > 0, "model.bottom_mlp", "sizes must be > 0");
  for (int64_t s : top_sizes()) require(s > 0, "model.top_mlp", "sizes must be > 0");
  table_rows();
  require(model.dropout >= 0 && model.dropout < 1, "model.dropout", "must be in [0, 1)");
  one_of("optim.name", optim.name, {"sgd", "adagrad", "adam", "adamw"});
  require(std::isfinite(optim.lr) && optim.lr > 0, "optim.lr", "must be finite and > 0");
  require(optim.momentum >= 0, "optim.momentum", "must be >= 0");
  require(optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0");
  require(optim.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0");
  one_of("optim.decay", optim.decay, {"none", "linear", "cosine"});
  if (model.sparse_embeddings) {
    const bool ok = (optim.name == "sgd" && optim.momentum == 0 && optim.weight_decay == 0) ||
                    (optim.name == "adagrad" && optim.weight_decay == 0);
    require(ok, "model.sparse_embeddings",
            fmt::format("optim.name={} (momentum {}, weight_decay {}) cannot take sparse "
                        "gradients; use sgd without momentum/weight decay or adagrad without "
                        "weight decay, or set model.sparse_embeddings=false and model.kernels=aten",
                        optim.name, optim.momentum, optim.weight_decay));
  }
  one_of("model.kernels", model.kernels, {"tandem", "aten"});
  require(model.kernels == "aten" || model.sparse_embeddings, "model.kernels",
          "tandem's embedding kernels produce row-wise sparse gradients; set "
          "model.sparse_embeddings=true, or model.kernels=aten for dense ones");
  one_of("train.device", train.device, {"auto", "cpu", "cuda"});
  require(train.steps >= 0, "train.steps", "must be >= 0");
  require(train.steps > 0 || train.epochs > 0, "train.epochs", "must be > 0 when train.steps is 0");
  require(train.batch_size > 0, "train.batch_size", "must be > 0");
  require(!train.restore_best || (ckpt.keep_best > 0 && !checkpoint_dir().empty()),
          "train.restore_best", "needs ckpt.keep_best > 0 and a checkpoint directory");
  require(train.batch_size % world_size == 0, "train.batch_size",
          fmt::format("{} does not split evenly over {} ranks", train.batch_size, world_size));
  require(train.accumulate >= 1, "train.accumulate", "must be >= 1");
  require(train.batch_size / world_size >= train.accumulate, "train.accumulate",
          "exceeds the per-rank batch size");
  train.eval_interval(1);  // checks the value
  require(train.eval_batch_size > 0, "train.eval_batch_size", "must be > 0");
  require(train.log_every >= 0, "train.log_every", "must be >= 0");
  require(train.patience >= 0, "train.patience", "must be >= 0");
  one_of("train.reduction", train.reduction, {"bucketed", "per_tensor"});
  one_of("train.on_nonfinite", train.on_nonfinite, {"stop", "skip_step"});
  require(train.bucket_mb > 0 && train.first_bucket_mb > 0, "train.bucket_mb",
          "bucket sizes must be > 0");
  one_of("ckpt.monitor", ckpt.monitor, {"logloss", "ne", "auc", "accuracy"});
  config::validate(run, comm, ckpt);
}

}  // namespace tandem::config
