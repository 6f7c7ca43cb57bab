// One rank's part of the parameter server: the shard of the embedding tables it
// serves (if any), and the exchange through which workers pull rows and push their
// gradients.
//
// Roles: with `colocated`, every rank serves a shard and trains; otherwise the
// last `servers` ranks only serve (serve()) and the others train, so world rank 0
// is always a worker. Each server holds its rows of every table (RowSharding) and
// their row-wise optimizer state, initialised per row exactly as a replicated
// table would be (nn::init_embedding_rows).
//
// Consistency: BSP. Every pull, push and stop is one exchange that every rank of
// the job joins in the same order: a non-blocking barrier (on which an idle
// dedicated server sleeps rather than spinning a core), then two alltoallv over
// the world communicator, the
// first carrying each worker's request header and row slots to every server, the
// second the rows back (pull) or the gradients to the servers (push). A push is
// applied before the exchange returns, so a pull at step t sees exactly the pushes
// of steps before t. A server sums what every worker pushed for a row (in rank
// order) and applies the optimizer once, as replicated training does after its
// all-gather: BSP training equals replicated training.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/embedding_bag.h"
#include "tandem/comm/communicator.h"
#include "tandem/config/train_config.h"
#include "tandem/ps/sharding.h"

namespace tandem::ps {

struct ServerOptions {
  std::vector<int64_t> table_rows;
  int64_t dim = 16;
  int servers = 1;
  bool colocated = false;
  kernels::RowUpdate update = kernels::RowUpdate::kSgd;  ///< kSgd or kRowwiseAdagrad
  double eps = 1e-8;                                     ///< row-wise Adagrad's
  uint64_t seed = 0;                                     ///< the tables' initialisation
};

/// The servers a training config asks for (ps.*, the tables, the row optimizer).
ServerOptions server_options(const config::TrainConfig& cfg);

class ParameterServer {
 public:
  /// Every rank of `world` constructs one (no communication); a server allocates
  /// and initialises its shard.
  ParameterServer(ServerOptions options, comm::Communicator& world);

  bool serves() const { return server_ >= 0; }
  bool trains() const { return trains_; }
  /// This rank's server number, or -1.
  int server() const { return server_; }
  /// The world rank of server s.
  int rank_of_server(int s) const;
  const RowSharding& sharding() const { return sharding_; }
  const ServerOptions& options() const { return options_; }
  /// Rows and bytes (rows and their row-wise state) server s holds.
  int64_t shard_rows(int s) const { return sharding_.rows_on(s); }
  int64_t shard_bytes(int s) const;
  /// One line per role for the start of a run: which ranks serve and what they hold.
  std::string describe() const;

  // Workers call these together, in the same order; dedicated servers answer them
  // from serve(). `servers` and `slots` ([n] int64) say where each row lives.

  /// The rows at those places, [n, dim] in the same order.
  at::Tensor pull(const at::Tensor& servers, const at::Tensor& slots);
  /// Gradients [n, dim] of the rows at those places (distinct places); every server
  /// sums what all workers pushed per row and applies the optimizer with `lr`.
  void push(const at::Tensor& servers, const at::Tensor& slots, const at::Tensor& grads, double lr);
  /// Ends the dedicated servers' serve().
  void stop();
  /// Dedicated servers: answers the workers' exchanges until they stop.
  void serve();

  /// This server's shard: [shard rows, dim] and its row-wise state [shard rows].
  const at::Tensor& shard_weight() const { return weight_; }
  const at::Tensor& shard_state() const { return state_; }

 private:
  enum Op : int64_t { kNone = 0, kPull = 1, kPush = 2, kStop = 3 };
  /// Waits until every rank has begun the exchange (sleeping, on a dedicated server).
  void arrive();
  /// One exchange, the same on every rank; returns the pulled rows (workers, kPull).
  at::Tensor exchange(Op op, double lr, const at::Tensor& servers, const at::Tensor& slots,
                      const at::Tensor& grads);

  ServerOptions options_;
  comm::Communicator& world_;
  RowSharding sharding_;
  int server_ = -1;
  bool trains_ = true;
  bool stopped_ = false;       ///< a stop was exchanged
  at::Tensor weight_, state_;  ///< this rank's shard (servers only)
};

}  // namespace tandem::ps
