// Every setting of `tandem train`, one struct per INI section. The initial values
// are the defaults (the DLRM Criteo-Kaggle configuration); configs/ holds examples.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/config/options.h"
#include "tandem/data/dataset.h"

namespace tandem::config {

struct RunSection {
  std::string dir = "checkpoints/run";  ///< run directory (config.ini, metrics.jsonl)
  std::string resume;  ///< "": fresh start; auto: newest loadable checkpoint; or a path
  bool allow_changed_data = false;  ///< resume although the data files changed
  /// A fresh start may delete another run's checkpoints in the checkpoint directory.
  bool overwrite = false;
  int64_t seed = 1234;
  int threads = 0;  ///< intra-op threads per rank; 0 = cores / ranks on the node
};

struct DataSection {
  std::string train;              ///< comma-separated TSV files or directories
  std::string eval;               ///< held-out TSV files; empty = split off train
  double eval_fraction = 0.1;     ///< used when `eval` is empty: share of train blocks held out
  std::string on_error = "skip";  ///< malformed line: skip (counted, summarised) or fail
  double max_bad_fraction = 0.001;  ///< skip: more malformed lines than this share stop the run
  int64_t max_bad_lines = -1;       ///< skip: more than this many stop it; < 0 = no count limit
  std::string stats;          ///< feature statistics from `tandem fit-stats`; empty = fit at start
  int64_t block_rows = 1024;  ///< rows per shuffle block
  bool shuffle = true;
  bool prefetch = true;  ///< read the next batch on a background thread
  /// Threads parsing each training batch; 0 = auto: 1 on a CPU (its cores train),
  /// on a GPU the cores per local rank, at most 16.
  int parse_threads = 0;
};

struct ModelSection {
  int64_t embedding_dim = 16;
  std::string bottom_mlp = "512,256,64";  ///< hidden sizes; the last layer is embedding_dim
  std::string top_mlp = "512,256";        ///< hidden sizes; a 1-unit logit layer follows
  /// Rows of each of the 26 tables (hashing-trick sizes); one value applies to all.
  std::string embedding_rows =
      "1460,583,10131227,2202608,305,24,12517,633,3,93145,5683,8351593,3194,27,14992,"
      "5461306,10,5652,2173,4,7046547,18,15,286181,105,142572";
  double dropout = 0.0;  ///< dropout before each top-MLP hidden layer
  /// Row-wise sparse embedding gradients (only the rows a batch touched); needs an
  /// optimizer that takes them: sgd without momentum/weight decay, or adagrad
  /// without weight decay.
  bool sparse_embeddings = true;
  /// tandem: Tandem's embedding-bag and LayerNorm kernels (row-wise optimizer for
  /// the tables: sgd, or adagrad as row-wise Adagrad); aten: LibTorch's own ops.
  std::string kernels = "tandem";
  bool layer_norm = false;  ///< LayerNorm after each hidden layer of both MLPs
  /// SyncBatchNorm (global-batch statistics over all ranks) after each bottom-MLP layer
  bool sync_batch_norm = false;
  /// Standardize the integer features with global statistics fitted before
  /// training (or read from data.stats); missing values become the mean.
  bool standardize = true;
  bool missing_indicator = false;  ///< add a 0/1 missing column per integer feature
};

struct OptimSection {
  std::string name = "sgd";  ///< sgd, adagrad, adam or adamw
  double lr = 0.1;
  double momentum = 0.0;      ///< sgd only
  double weight_decay = 0.0;  ///< L2 for sgd/adagrad/adam, decoupled for adamw
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  int64_t warmup_steps = 0;    ///< linear warm-up from 0 to lr
  std::string decay = "none";  ///< after warm-up: none, linear or cosine (to min_lr)
  double min_lr = 0.0;
  /// With Tandem's kernels on one rank without accumulation, update the touched
  /// embedding rows inside backward instead of materializing their gradient.
  bool fused_embedding_update = true;
};

struct TrainSection {
  /// train.eval_every in steps (0 = only at the end), given the steps per epoch.
  int64_t eval_interval(int64_t steps_per_epoch) const;

  /// auto (cuda when LibTorch has CUDA and sees a GPU, else cpu), cpu or cuda. On
  /// cuda every rank trains on its own GPU and comm.backend=auto means nccl.
  std::string device = "auto";
  int64_t steps = 0;  ///< optimizer steps; 0 = run `epochs` epochs
  int64_t epochs = 1;
  int64_t batch_size = 128;  ///< global batch, split evenly over the ranks
  int64_t accumulate = 1;    ///< micro-batches per step (gradient accumulation)
  /// Steps between evaluations, "epoch" (at the end of every epoch), or 0 (only at
  /// the end); eval_interval() turns it into steps.
  std::string eval_every = "0";
  int64_t eval_batch_size = 16384;
  int64_t log_every = 100;
  int64_t patience = 0;                ///< evaluations without improvement before stopping; 0 = off
  /// End the run with the weights of the best evaluation by ckpt.monitor (its
  /// kept checkpoint), rather than the last ones.
  bool restore_best = false;
  std::string reduction = "bucketed";  ///< bucketed or per_tensor
  double bucket_mb = 25.0;
  double first_bucket_mb = 1.0;
  bool overlap = true;  ///< launch buckets during backward
  /// Time each step's phases (data, forward, backward, communication, optimizer),
  /// waiting for the device between them; for the breakdown only, it slows training.
  bool profile = false;
  /// A loss or gradient that is not finite: stop (exit 3, no checkpoint of it) or
  /// skip_step (that step changes nothing; 10 in a row stop the run).
  std::string on_nonfinite = "stop";
};

/// Checkpoints (src/tandem/ckpt). On when a directory results: ckpt.dir, or
/// <run.dir>/checkpoints.
struct CkptSection {
  std::string dir;                  ///< "" = <run.dir>/checkpoints
  int64_t every_steps = 0;          ///< save every N steps; 0 = off
  double every_seconds = 0;         ///< save when this much time passed since the last; 0 = off
  bool at_end = true;               ///< save after the final evaluation
  int64_t keep_last = 3;            ///< most recent checkpoints kept
  int64_t keep_best = 1;            ///< best by ckpt.monitor kept besides
  std::string monitor = "logloss";  ///< logloss or ne (lower is better), auc or accuracy
  int64_t gzip = 0;                 ///< 0 = off, 1..9
  bool async = true;                ///< write on a background thread
  bool file_locking = true;         ///< HDF5 file locking (off for filesystems without it)
};

struct CommSection {
  std::string backend = "auto";  ///< auto (nccl on GPU, else mpi or single), mpi, nccl or single
  bool check = false;            ///< verify every collective's op, dtype and shape
  double timeout_s = 600;        ///< nccl: fail the job when a collective takes longer
};

/// What a run writes besides metrics.jsonl.
struct LogSection {
  bool tensorboard = true;  ///< TensorBoard event files in <run.dir>/tb/
};

/// The parameter server (src/tandem/ps): embedding tables sharded over server ranks.
struct PsSection {
  int servers = 0;                      ///< 0 = every rank holds every table (replicated)
  std::string placement = "dedicated";  ///< dedicated: the last `servers` ranks only serve;
                                        ///< colocated: every rank serves a shard and trains
  std::string consistency = "bsp";      ///< bsp, ssp or asp (parameter_server.h)
  int64_t staleness = 2;                ///< ssp: steps of pushes a pull may lack
  bool prefetch = true;                 ///< ask for the next batch's rows while this one trains
};

/// The sections `tandem train` and `tandem meta` share, registered and checked once.
void add_options(OptionSet& o, RunSection& run);
void add_options(OptionSet& o, CommSection& comm);
void add_options(OptionSet& o, LogSection& log);
/// The checkpoint keys every saving command takes: dir, every_steps, at_end,
/// keep_last, gzip, file_locking.
void add_storage_options(OptionSet& o, CkptSection& ckpt);
void validate(const RunSection& run, const CommSection& comm, const CkptSection& ckpt);
/// Where checkpoints go: ckpt.dir, else <run.dir>/checkpoints; "" = nowhere.
std::string checkpoint_dir(const RunSection& run, const CkptSection& ckpt);

struct TrainConfig {
  RunSection run;
  DataSection data;
  ModelSection model;
  OptimSection optim;
  TrainSection train;
  CkptSection ckpt;
  CommSection comm;
  PsSection ps;
  LogSection log;
  data::SchemaSpec schema;  ///< [schema]: the data files' columns (Criteo's by default)

  /// Registers every field; the OptionSet keeps pointers into *this.
  OptionSet options();
  /// Checks values that Boost cannot (ranges, enums, lists, world-size splits);
  /// throws ConfigError naming the key.
  void validate(int world_size) const;
  /// The parameter-server keys against the launched ranks (before roles exist);
  /// throws ConfigError naming the key.
  void validate_ps(int launched_ranks) const;
  /// Ranks that train: all of them, less the dedicated servers.
  int workers(int launched_ranks) const;
  std::vector<int64_t> bottom_sizes() const;
  std::vector<int64_t> top_sizes() const;
  std::vector<int64_t> table_rows() const;  ///< one per categorical column
  /// The [schema] section as a Schema (not yet bound to a file); throws
  /// ConfigError naming the key.
  std::shared_ptr<const data::Schema> data_schema() const;
  /// How the data files are indexed: the schema, data.block_rows, data.on_error
  /// and the malformed-line limits.
  data::IndexOptions index_options() const;
  /// Where checkpoints go; "" = checkpointing off.
  std::string checkpoint_dir() const;
};

}  // namespace tandem::config
