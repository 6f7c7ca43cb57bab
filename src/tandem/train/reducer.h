// Data-parallel gradient reduction in the manner of PyTorch DDP.
//
// Parameters are grouped into buckets (the first small, so communication starts
// early; then up to bucket_mb each) in reverse registration order, roughly the
// order backward produces them. The grouping depends only on the parameter list,
// so it is identical on every rank. During the last micro-batch's backward, a hook
// copies each gradient into its bucket; a bucket whose gradients are all in is
// all-reduced (non-blocking), strictly in bucket order so every rank issues the
// same collectives in the same order. finish() reduces what is left (parameters
// that got no gradient contribute zeros), waits, and makes each .grad a view of
// its reduced bucket (as DDP's gradient_as_bucket_view), so no copy back is made.
//
// Parameters with row-wise sparse gradients (embedding tables) are not bucketed:
// finish() gathers every rank's (row indices, rows) with allgatherv and coalesces
// them, so the exchange costs the rows touched, not the table size.
//
// The reduction is a sum: the trainer scales each rank's loss by 1/global_batch,
// so the sum is the global-batch mean even when ranks hold unequal slices.
// "per_tensor" mode is the same code with one tensor per bucket. The last bucket
// has one more element per rank: the ranks' status words (see finish()).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "tandem/comm/communicator.h"

namespace tandem::train {

struct ReducerOptions {
  double bucket_mb = 25.0;
  double first_bucket_mb = 1.0;
  bool per_tensor = false;  ///< one bucket per parameter
  bool overlap = true;      ///< all-reduce buckets during backward
};

class Reducer {
 public:
  /// `params` get dense gradients, `sparse_params` sparse ones.
  Reducer(std::vector<at::Tensor> params, comm::Communicator& comm, ReducerOptions options,
          std::vector<at::Tensor> sparse_params = {});
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  /// Copies rank 0's values of `tensors` to every rank.
  static void broadcast(const std::vector<at::Tensor>& tensors, comm::Communicator& comm);

  /// Drops every .grad (sets it undefined). Use it instead of the optimizer's
  /// zero_grad(): after finish() each .grad is a view of a bucket.
  void zero_grad();
  /// Call before each micro-batch's backward; `sync` on the last one of a step.
  void prepare(bool sync);
  /// Call after the last micro-batch's backward (also when this rank had no data):
  /// every rank's .grad then holds the sum over ranks. `status` (optional, a
  /// one-element tensor on the parameters' device) is this rank's word about the
  /// step, e.g. 1 for a loss that is not finite; every rank gets every rank's word
  /// back ([world], rank order), carried in the last bucket's all-reduce, so it costs
  /// no collective of its own.
  at::Tensor finish(const at::Tensor& status = {});

  /// Parameter indices per bucket, in launch order.
  std::vector<std::vector<size_t>> bucket_layout() const;

 private:
  struct Bucket;
  void on_grad(size_t param, const at::Tensor& grad);
  void launch_ready();
  void launch(Bucket& b);
  void reduce_sparse(at::Tensor& param);

  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> sparse_params_;
  comm::Communicator& comm_;
  ReducerOptions options_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::pair<size_t, size_t>> where_;  ///< param -> (bucket, slot)
  std::vector<unsigned> hooks_;
  size_t next_launch_ = 0;
  bool sync_ = false;
};

}  // namespace tandem::train
