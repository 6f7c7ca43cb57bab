// Where the embedding tables live, as the trainer sees it: one interface with two
// implementations, so the training loop never branches on which.
//   replicated  every rank holds every table; the Reducer all-gathers the touched
//               rows' gradients and each rank applies the row-wise optimizer to all
//               of them (or backward does, fused, on one rank).
//   sharded     the tables live on parameter servers (ParameterServer); a worker
//               pulls the rows its batch touches (each once) before the forward and
//               pushes their gradients after the backward. The next batch's rows
//               can be asked for ahead (prefetch), so the servers answer while this
//               batch computes.
// A future GPU worker keeps the same interface: prepare() pulls into device memory.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "tandem/nn/embedding_bag.h"
#include "tandem/ps/parameter_server.h"

namespace tandem::ps {

class EmbeddingPlacement {
 public:
  virtual ~EmbeddingPlacement() = default;
  /// Before a forward over `sparse` ([n, slots] table-local rows): makes those rows
  /// available to the embedding module and returns the ids it must look up. Workers
  /// call it together (the same number of times, also with n = 0).
  virtual at::Tensor prepare(const at::Tensor& sparse) = 0;
  /// Whether fetching the next step's rows ahead (prefetch()) saves time: worth
  /// reading the next batch early for.
  virtual bool prefetches() const { return false; }
  /// Optional: the ids the next training step's prepare() will get, known early
  /// (after this step's prepare(), before its update()).
  virtual void prefetch(const at::Tensor& next_sparse) { (void)next_sparse; }
  /// Right after the step's backward, while the dense gradients may still be
  /// reducing: the sharded placement pushes the tables' gradient (learning rate
  /// `lr`) here, so the servers apply it while the dense layers reduce and step.
  virtual void backward_done(double lr) { (void)lr; }
  /// After the dense gradient reduction: the replicated placement applies the tables'
  /// gradient (the reduction all-gathered it) with learning rate `lr`. Workers call
  /// both hooks together, every step.
  virtual void update(double lr) { (void)lr; }
};

std::unique_ptr<EmbeddingPlacement> replicated(nn::TableBatchedEmbedding tables);
std::unique_ptr<EmbeddingPlacement> sharded(nn::TableBatchedEmbedding tables, ParameterServer& ps);

}  // namespace tandem::ps
