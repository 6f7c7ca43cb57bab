// One rank's part of the parameter server: the shard of the embedding tables it
// serves (if any), and the worker side that pulls rows and pushes gradients.
//
// Roles: with `colocated`, every rank serves a shard and trains; otherwise the
// last `servers` ranks only serve (serve()) and the others train, so world rank 0
// is always a worker, and a worker's number is its world rank. Each server holds
// its rows of every table (RowSharding) and their row-wise optimizer state,
// initialised per row exactly as a replicated table would be
// (nn::init_embedding_rows).
//
// Protocol (dedicated servers): messages through a Mailbox (MPI point to point on
// a communicator of their own). Per step a worker sends every server one pull request (the slots of
// all tables it needs from that server, and the clock at which it will use them)
// and one push (the gradients of those rows). A worker's clock is the number of
// pushes it has sent. A server keeps, per worker, how many of its pushes it has
// applied, and answers a pull at clock t once every worker's count is at least
//   BSP  t      (exactly the pushes of the steps before t: a server applies a
//               step's pushes together, once all workers sent theirs, summed per
//               row in rank order: the same math as replicated training, so BSP
//               training equals it)
//   SSP  t - s  (ps.staleness = s: it may lack the last s steps of any worker;
//               pushes are applied as they arrive)
//   ASP  -      (never waits)
// Until then the pull waits on the server, not the worker's core. A worker may ask
// for the next step's rows before it pushes this step's (prefetch): the server
// answers when the consistency allows, while the worker computes.
//
// Colocated servers run in lock step instead, under every consistency model: every
// rank is a worker and a server, and each exchange is a collective over all of
// them (the shape of TorchRec's row-wise sharding). A pull is an all-to-all of the
// slots asked and one of the rows answered; a push, one of the slots and one of the
// gradients, which each rank then applies to its shard, summed in rank order as
// above. So every read is exact (BSP's), which is within SSP's and ASP's bounds.
// A relaxed read could only help a worker that need not wait for a slower one, but
// colocated workers meet in the dense layers' all-reduce every step anyway; and a
// serving thread on a node whose cores all train cost 25-30 % of the step
// (benchmarks/RESULTS.md). A rank that stops answering is found by the
// collectives' watchdog (comm.timeout_s).
//
// Failure (dedicated servers): every rank beats (an empty message to each peer,
// four per comm.timeout_s) from a thread of its own. A worker waiting for a server, or a
// server, that hears no beat from a peer for comm.timeout_s throws CommError naming
// the silent rank and its role; the job then ends (main aborts it). A peer that is
// merely waiting (for a slow worker, in an all-reduce) keeps beating.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/embedding_bag.h"
#include "tandem/ckpt/checkpoint.h"
#include "tandem/ckpt/sharded.h"
#include "tandem/comm/communicator.h"
#include "tandem/config/train_config.h"
#include "tandem/ps/sharding.h"

namespace tandem::ps {

enum class Consistency { kBsp, kSsp, kAsp };
const char* to_string(Consistency c);

struct ServerOptions {
  std::vector<int64_t> table_rows;
  int64_t dim = 16;
  int servers = 1;
  bool colocated = false;
  kernels::RowUpdate update = kernels::RowUpdate::kSgd;  ///< kSgd or kRowwiseAdagrad
  double eps = 1e-8;                                     ///< row-wise Adagrad's
  uint64_t seed = 0;                                     ///< the tables' initialisation
  Consistency consistency = Consistency::kBsp;
  int64_t staleness = 0;     ///< SSP's bound s
  double timeout_s = 600;    ///< silence after which a peer counts as dead
  ckpt::WriteOptions write;  ///< how servers write their checkpoint shards
};

/// The servers a training config asks for (ps.*, comm.timeout_s, the tables, the
/// row optimizer).
ServerOptions server_options(const config::TrainConfig& cfg);

class ParameterServer {
 public:
  /// Collective over `world` (the mailbox, or lock step's communicator): a server
  /// allocates and initialises its shard (a shard the node cannot hold is a
  /// ConfigError, before any allocation).
  ParameterServer(ServerOptions options, comm::Communicator& world);
  ~ParameterServer();

  bool serves() const { return server_ >= 0; }
  bool trains() const { return trains_; }
  /// This rank's server number, or -1.
  int server() const { return server_; }
  int workers() const { return workers_; }
  /// Whether the ranks exchange rows in lock step (colocated; see above).
  bool lockstep() const { return options_.colocated; }
  /// The world rank of server s.
  int rank_of_server(int s) const;
  const RowSharding& sharding() const { return sharding_; }
  const ServerOptions& options() const { return options_; }
  /// Rows and bytes (rows and their row-wise state) server s holds.
  int64_t shard_rows(int s) const { return sharding_.rows_on(s); }
  int64_t shard_bytes(int s) const;
  /// One line per role for the start of a run: which ranks serve and what they hold.
  std::string describe() const;

  // The worker side. `servers` and `slots` ([n] int64) say where each row lives.

  /// Asks for the rows at those places, to be used at clock `clock` (clock() now;
  /// clock() + 1 to fetch the next step's rows ahead); returns the request's id.
  int64_t request(const at::Tensor& servers, const at::Tensor& slots, int64_t clock);
  /// Waits for request `id`'s rows: [n, dim], in the order asked. In lock step all
  /// workers collect together.
  at::Tensor collect(int64_t id);
  /// Drops request `id` unread (rows fetched ahead for a batch that did not come).
  void discard(int64_t id);
  at::Tensor pull(const at::Tensor& servers, const at::Tensor& slots) {
    return collect(request(servers, slots, clock()));
  }
  /// Gradients [n, dim] of the rows at those places (distinct places), applied by
  /// the servers with learning rate `lr`; does not wait. Advances the clock.
  void push(const at::Tensor& servers, const at::Tensor& slots, const at::Tensor& grads, double lr);
  /// Pushes this worker has sent.
  int64_t clock() const { return clock_; }
  /// Seconds this worker has waited for pulled rows (in lock step: in the exchanges,
  /// pushes included, which wait for every worker).
  double wait_seconds() const { return wait_seconds_; }
  /// Every worker calls it at the same step: each server writes its shard of the
  /// checkpoint at `path` once all workers asked (so it holds exactly the pushes
  /// sent before), while the workers go on. Worker rank 0 waits for every shard to
  /// be durable and gets their records, in server order, for the manifest; the
  /// others get none. A server that could not write is an Error on worker 0.
  std::vector<ckpt::ShardRecord> save(const std::string& path);
  /// A server fills its shard from the checkpoint at `path` (table_checkpoint.h).
  void load(const std::string& path);

  /// Tells the servers this worker is done (after collecting what it asked for).
  void stop();
  /// Dedicated servers: answers the workers until all of them stopped.
  void serve();

  /// What one collect() read: the clock it was asked for, and for each server
  /// [servers][workers] how many pushes of each worker it had applied.
  struct Read {
    int64_t clock = 0;
    std::vector<std::vector<int64_t>> applied;
  };
  /// Keep a Read per collect() (for the consistency tests).
  void record_reads(bool on) { record_ = on; }
  const std::vector<Read>& reads() const { return reads_; }

  /// This server's shard: [shard rows, dim] and its row-wise state [shard rows].
  const at::Tensor& shard_weight() const { return weight_; }
  const at::Tensor& shard_state() const { return state_; }

 private:
  struct Pending;
  struct Push {
    at::Tensor slots, grads;
    double lr = 0;
  };
  struct Deferred {
    int worker;
    int64_t id, clock;
    at::Tensor slots;
  };
  // Server side.
  /// Checks that the shard fits the node, then allocates and initialises it.
  void make_shard();
  void handle(comm::Message& m);
  bool answerable(int64_t clock) const;
  void answer(int worker, int64_t id, const at::Tensor& slots);
  void apply(const std::vector<Push>& pushes);
  void answer_deferred();
  void check_silence(std::chrono::steady_clock::time_point now) const;
  /// What writing this server's shard of checkpoint `path` gave: ok, bytes, then
  /// the digest or the error (the kSaved message).
  std::vector<char> save_shard(const std::string& path, int64_t step);

  /// A pull's rows [n, dim], grouped by server: from the servers' replies, or in
  /// lock step (colocated) from the exchanges, collective over exchange_.
  at::Tensor collect_replies(Pending& p);
  at::Tensor collect_in_step(Pending& p);
  void push_in_step(const at::Tensor& slots, const at::Tensor& grads,
                    const std::vector<int64_t>& start, double lr);
  std::vector<ckpt::ShardRecord> save_in_step(const std::string& path);
  /// Worker 0's records of every server's shard, from their kSaved messages.
  std::vector<ckpt::ShardRecord> shard_records(const std::string& path,
                                               const std::vector<std::vector<char>>& saved) const;

  // Both sides.
  /// Posts a beat to every peer of this rank's roles until end_beats().
  void beat();
  void end_beats();
  /// A worker's wait for a message under `tag` from a server: CommError naming the
  /// server if one it `waits_for` sends no beat for comm.timeout_s.
  comm::Message await(int tag, const std::function<bool(int)>& waits_for, const char* what);
  /// The server at world rank `rank`, or -1.
  int server_at(int rank) const;

  ServerOptions options_;
  comm::Communicator& world_;
  std::unique_ptr<comm::Mailbox> mailbox_;        ///< messages; not in lock step
  std::unique_ptr<comm::Communicator> exchange_;  ///< lock step's collectives
  RowSharding sharding_;
  int server_ = -1;
  int workers_ = 0;
  bool trains_ = true;

  // Server state.
  at::Tensor weight_, state_;             ///< this rank's shard
  std::vector<int64_t> applied_;          ///< per worker: its pushes applied
  std::vector<std::deque<Push>> queued_;  ///< BSP: per worker, pushes of steps not yet complete
  std::deque<Deferred> deferred_;         ///< pulls the consistency does not allow yet
  std::vector<bool> stopped_;
  int stopped_count_ = 0;
  std::vector<std::string> saving_;  ///< per worker: the checkpoint it asked for, if any
  std::vector<std::chrono::steady_clock::time_point> heard_;  ///< last message per worker

  std::thread beats_;
  std::mutex beat_mutex_;
  std::condition_variable beat_cv_;
  bool beats_done_ = false;

  // Worker state.
  std::vector<std::chrono::steady_clock::time_point> server_heard_;  ///< last beat per server
  int64_t clock_ = 0, next_id_ = 0;
  std::map<int64_t, std::unique_ptr<Pending>> pending_;  ///< requests not yet collected
  double wait_seconds_ = 0;
  bool record_ = false;
  std::vector<Read> reads_;
};

}  // namespace tandem::ps
