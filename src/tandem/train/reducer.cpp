#include "tandem/train/reducer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "tandem/nn/embedding_bag.h"
#include "tandem/util/error.h"

namespace tandem::train {

struct Reducer::Bucket {
  std::vector<size_t> params;
  std::vector<int64_t> offsets;
  std::vector<bool> filled;
  size_t pending = 0;
  at::Tensor flat;
  std::unique_ptr<comm::Work> work;

  at::Tensor view(size_t slot, const at::Tensor& like) const {
    return flat.narrow(0, offsets[slot], like.numel()).view(like.sizes());
  }
};

Reducer::Reducer(std::vector<at::Tensor> params, comm::Communicator& comm, ReducerOptions options,
                 std::vector<at::Tensor> sparse_params)
    : params_(std::move(params)),
      sparse_params_(std::move(sparse_params)),
      comm_(comm),
      options_(options) {
  where_.resize(params_.size());
  auto bytes_of = [](double mb) { return static_cast<int64_t>(mb * 1024 * 1024); };
  int64_t cap = bytes_of(options_.first_bucket_mb);
  std::unique_ptr<Bucket> cur;
  int64_t cur_bytes = 0;
  auto close = [&] {
    if (!cur) return;
    // A world of one reduces nothing, so its buckets need no memory.
    const int64_t numel = cur->offsets.back() + params_[cur->params.back()].numel();
    if (comm_.size() > 1) cur->flat = at::zeros({numel}, params_[cur->params.front()].options());
    buckets_.push_back(std::move(cur));
    cur_bytes = 0;
    cap = bytes_of(options_.bucket_mb);
  };
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    if (p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble)
      throw Error(fmt::format("reducer: parameter {} has unsupported dtype {}", k,
                              c10::toString(p.scalar_type())));
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool mixed = cur && params_[cur->params.front()].scalar_type() != p.scalar_type();
    if (cur && (options_.per_tensor || mixed || cur_bytes + bytes > cap)) close();
    if (!cur) cur = std::make_unique<Bucket>();
    where_[k] = {buckets_.size(), cur->params.size()};
    cur->offsets.push_back(
        cur->params.empty() ? 0 : cur->offsets.back() + params_[cur->params.back()].numel());
    cur->params.push_back(k);
    cur_bytes += bytes;
  }
  close();
  for (auto& b : buckets_) b->filled.assign(b->params.size(), false);
  // The status words ride at the end of the last bucket, reduced in finish().
  if (comm_.size() > 1 && !buckets_.empty()) {
    at::Tensor& flat = buckets_.back()->flat;
    flat = at::cat({flat, at::zeros({comm_.size()}, flat.options())});
  }

  // A world of one has nothing to reduce: the local gradients are the result.
  if (comm_.size() == 1) return;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!params_[k].requires_grad()) continue;
    hooks_.push_back(
        params_[k].register_hook([this, k](const at::Tensor& grad) { on_grad(k, grad); }));
  }
}

Reducer::~Reducer() {
  size_t h = 0;
  for (size_t k = 0; k < params_.size() && h < hooks_.size(); ++k)
    if (params_[k].requires_grad()) params_[k].remove_hook(hooks_[h++]);
}

void Reducer::broadcast(const std::vector<at::Tensor>& tensors, comm::Communicator& comm) {
  at::NoGradGuard no_grad;
  for (const at::Tensor& t : tensors) {
    at::Tensor data = t.detach();
    comm.broadcast(data, 0);
  }
}

std::vector<std::vector<size_t>> Reducer::bucket_layout() const {
  std::vector<std::vector<size_t>> out;
  for (const auto& b : buckets_) out.push_back(b->params);
  return out;
}

void Reducer::zero_grad() {
  for (at::Tensor& p : params_) p.mutable_grad().reset();
  for (at::Tensor& p : sparse_params_) p.mutable_grad().reset();
}

void Reducer::reduce_sparse(at::Tensor& p) {
  // Row-wise: a gradient is (rows touched, one [dim...] slice per row).
  std::vector<int64_t> row_shape(p.sizes().begin() + 1, p.sizes().end());
  std::vector<int64_t> values_shape{0};
  values_shape.insert(values_shape.end(), row_shape.begin(), row_shape.end());
  at::Tensor rows = at::empty({0}, p.options().dtype(at::kLong));  // on the parameter's device
  at::Tensor values = at::empty(values_shape, p.options());
  if (p.grad().defined()) {
    if (!p.grad().is_sparse())
      throw Error("reducer: a parameter declared sparse got a dense gradient");
    const at::Tensor g = p.grad().coalesce();
    rows = g.indices().view(-1).contiguous();
    values = g.values().contiguous();
  }
  const at::Tensor all_rows = comm_.allgatherv(rows);
  const at::Tensor all_values = comm_.allgatherv(values);
  // The rows that several ranks touched are summed in rank order.
  const auto [unique, sums] = nn::sum_rows_in_order(all_rows, all_values, p.size(0));
  p.mutable_grad() =
      at::sparse_coo_tensor(unique.view({1, -1}), sums, p.sizes())._coalesced_(true);
}

void Reducer::prepare(bool sync) {
  sync_ = sync;
  if (!sync || comm_.size() == 1) return;
  next_launch_ = 0;
  for (auto& b : buckets_) {
    // A .grad still aliasing its bucket (zeroed in place instead of by zero_grad())
    // would have autograd accumulate into a buffer in flight: give it its own memory.
    for (size_t k : b->params) {
      at::Tensor& p = params_[k];
      if (p.grad().defined() && p.grad().is_alias_of(b->flat)) p.mutable_grad() = p.grad().clone();
    }
    b->pending = b->params.size();
    b->filled.assign(b->params.size(), false);
    b->work.reset();
  }
}

void Reducer::on_grad(size_t k, const at::Tensor& grad) {
  if (!sync_) return;
  const auto [bi, slot] = where_[k];
  Bucket& b = *buckets_[bi];
  if (b.filled[slot]) return;  // already counted this step
  at::NoGradGuard no_grad;
  at::Tensor dst = b.view(slot, params_[k]);
  // The hook runs before autograd adds `grad` to .grad, so an accumulated .grad
  // from earlier micro-batches is added here.
  const at::Tensor& acc = params_[k].grad();
  if (acc.defined())
    at::add_out(dst, acc, grad);
  else
    dst.copy_(grad);
  b.filled[slot] = true;
  --b.pending;
  if (options_.overlap) launch_ready();
}

void Reducer::launch_ready() {
  // The last bucket is reduced in finish(), blocking (see there).
  while (next_launch_ + 1 < buckets_.size() && buckets_[next_launch_]->pending == 0)
    launch(*buckets_[next_launch_++]);
  // MPI progresses non-blocking collectives only inside MPI calls.
  for (size_t i = 0; i < next_launch_; ++i)
    if (buckets_[i]->work) buckets_[i]->work->test();
}

void Reducer::launch(Bucket& b) { b.work = comm_.iallreduce(b.flat, comm::ReduceOp::kSum); }

at::Tensor Reducer::finish(const at::Tensor& status) {
  if (!sync_) throw Error("reducer: finish() without prepare(true)");
  if (comm_.size() == 1) {
    sync_ = false;
    return status.defined() ? status.reshape({1}) : at::zeros({1});
  }
  at::NoGradGuard no_grad;
  const int world = comm_.size();
  at::Tensor words =
      buckets_.empty()
          ? at::zeros({world}, status.defined() ? status.options() : at::TensorOptions())
          : buckets_.back()->flat.narrow(0, buckets_.back()->flat.numel() - world, world);
  words.zero_();
  if (status.defined()) words.narrow(0, comm_.rank(), 1).copy_(status.reshape({1}));
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    for (size_t s = 0; s < b.params.size(); ++s) {
      if (b.filled[s]) continue;
      // No gradient this step (unused parameter, or no data on this rank): send the
      // accumulated .grad if any, else zeros, so every rank still joins the sum.
      const at::Tensor& acc = params_[b.params[s]].grad();
      at::Tensor dst = b.view(s, params_[b.params[s]]);
      if (acc.defined())
        dst.copy_(acc);
      else
        dst.zero_();
      b.filled[s] = true;
    }
    b.pending = 0;
  }
  // Which primitive reduces a bucket must not depend on the rank's timing (MPI
  // never matches a blocking collective with a non-blocking one): with overlap, all
  // buckets but the last go non-blocking, launched here if backward did not; the
  // last (the first layers, whose gradients come last, so nothing is left to
  // overlap) and all buckets without overlap use the faster blocking allreduce.
  const size_t last = buckets_.empty() ? 0 : buckets_.size() - 1;
  while (options_.overlap && next_launch_ < last) launch(*buckets_[next_launch_++]);
  for (size_t i = 0; i < next_launch_; ++i) buckets_[i]->work->wait();
  // The buckets left go as one group: one NCCL launch for all of them.
  comm_.group_start();
  for (; next_launch_ < buckets_.size(); ++next_launch_)
    comm_.allreduce(buckets_[next_launch_]->flat, comm::ReduceOp::kSum);
  comm_.group_end();
  if (buckets_.empty()) comm_.allreduce(words, comm::ReduceOp::kSum);
  for (at::Tensor& p : sparse_params_) reduce_sparse(p);
  // The reduced gradients stay in the buckets: each .grad becomes a view of its
  // bucket, which saves a copy of every gradient per step.
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    for (size_t s = 0; s < b.params.size(); ++s) {
      at::Tensor& p = params_[b.params[s]];
      p.mutable_grad() = b.view(s, p);
    }
  }
  sync_ = false;
  return words;
}

}  // namespace tandem::train
