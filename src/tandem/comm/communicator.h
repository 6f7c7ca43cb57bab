// The one interface through which the trainer (and later the parameter server)
// talks to other ranks. Shaped after PyTorch c10d: every rank must issue the same
// collectives in the same order; each is numbered, and with `check` on, the ranks
// compare op, dtype and shape before running it, so a mismatch is an error that
// names both ranks instead of a hang or garbage.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/comm/mailbox.h"

namespace tandem::comm {

enum class ReduceOp { kSum, kAvg, kMin, kMax };
const char* to_string(ReduceOp op);
/// Parses "sum", "avg", "min" or "max"; throws ConfigError otherwise.
ReduceOp parse_reduce_op(const std::string& name);

/// Handle of a non-blocking collective. The tensor it works on must stay alive and
/// untouched until wait() returns.
class Work {
 public:
  virtual ~Work() = default;
  /// Blocks until done; throws CommError on failure.
  virtual void wait() = 0;
  /// Drives progress without blocking; true once complete (wait() is then cheap).
  virtual bool test() = 0;
};

struct CommOptions {
  /// Before each collective, all ranks compare (sequence, op, dtype, shape).
  /// Costs one small allgather per collective; meant for debugging.
  bool check = false;
  /// NCCL: a collective not done after this many seconds (or one NCCL reports as
  /// failed) ends the job, naming the op, its sequence number and the rank.
  double timeout_s = 600;
};

/// Collectives over tensors of dtype float32, float64, bfloat16, int32 or int64:
/// CPU tensors for every backend, and tensors on the bound GPU for NCCL (which
/// hands CPU tensors to its host communicator). In-place ops (allreduce,
/// broadcast, recv) need contiguous tensors. All ranks must call collectives in
/// the same order with matching shapes.
class Communicator {
 public:
  explicit Communicator(CommOptions options) : options_(options) {}
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "mpi", "single", "nccl"
  virtual std::string backend() const = 0;
  /// Where this backend's own collectives run: the CPU, or NCCL's GPU.
  virtual at::Device device() const { return at::kCPU; }
  /// Whether collectives take tensors on `d`.
  virtual bool accepts(const at::Device& d) const { return d.is_cpu(); }

  /// In place. kAvg is for floating dtypes only.
  void allreduce(at::Tensor& tensor, ReduceOp op);
  /// Non-blocking allreduce; the result is in `tensor` after wait().
  std::unique_ptr<Work> iallreduce(at::Tensor& tensor, ReduceOp op);
  /// In place: every rank ends with root's values. Shapes must match.
  void broadcast(at::Tensor& tensor, int root);
  /// Returns [size, *input.shape]; every rank must pass the same shape.
  at::Tensor allgather(const at::Tensor& input);
  /// Concatenates every rank's input along dim 0, in rank order. Inputs may differ
  /// in dim 0 only.
  at::Tensor allgatherv(const at::Tensor& input);
  /// Splits dim 0 into size() equal parts; part j goes to rank j. Returns what
  /// each rank sent here, concatenated in rank order.
  at::Tensor alltoall(const at::Tensor& input);
  /// Like alltoall, with send_rows[j] rows of dim 0 going to rank j. With
  /// `recv_rows`, also says how many rows came from each rank.
  at::Tensor alltoallv(const at::Tensor& input, const std::vector<int64_t>& send_rows,
                       std::vector<int64_t>* recv_rows = nullptr);
  /// alltoallv where this rank already knows that recv_rows[j] rows come from rank
  /// j (a reply to an alltoallv): it skips exchanging the counts.
  at::Tensor alltoallv_expecting(const at::Tensor& input, const std::vector<int64_t>& send_rows,
                                 const std::vector<int64_t>& recv_rows);
  /// Point to point. recv() fills a preallocated contiguous tensor of the sent shape.
  void send(const at::Tensor& tensor, int dst, int tag = 0);
  void recv(at::Tensor& tensor, int src, int tag = 0);
  void barrier();
  /// Non-blocking barrier: complete once every rank has called it. Lets a rank wait
  /// for the others by testing and sleeping instead of spinning in a blocking call.
  std::unique_ptr<Work> ibarrier();

  /// Collective: splits this communicator. Ranks passing the same `color` form one
  /// new communicator, ranked in their order here (the parameter server's workers,
  /// say). A backend that cannot split throws CommError.
  std::unique_ptr<Communicator> split(int color);

  /// Collective: a mailbox among this communicator's ranks, for messages outside
  /// the collective order (comm/mailbox.h). A backend without one throws CommError.
  std::unique_ptr<Mailbox> mailbox();

  /// Collectives issued between group_start() and group_end() may be fused into one
  /// launch (NCCL's group call; a no-op for MPI and single). Non-blocking results
  /// and in-place outputs are valid only after group_end().
  virtual void group_start() {}
  virtual void group_end() {}

  /// Number of collectives issued so far (send/recv are not counted).
  uint64_t sequence() const { return sequence_; }
  const CommOptions& options() const { return options_; }

 protected:
  // Backends implement these on validated, contiguous CPU tensors.
  virtual void do_allreduce(at::Tensor& t, ReduceOp op) = 0;
  virtual std::unique_ptr<Work> do_iallreduce(at::Tensor& t, ReduceOp op) = 0;
  virtual void do_broadcast(at::Tensor& t, int root) = 0;
  virtual void do_allgather(const at::Tensor& in, at::Tensor& out) = 0;
  virtual void do_allgatherv(const at::Tensor& in, at::Tensor& out,
                             const std::vector<int64_t>& counts) = 0;
  virtual void do_alltoallv(const at::Tensor& in, const std::vector<int64_t>& send_counts,
                            at::Tensor& out, const std::vector<int64_t>& recv_counts) = 0;
  virtual void do_send(const at::Tensor& t, int dst, int tag) = 0;
  virtual void do_recv(at::Tensor& t, int src, int tag) = 0;
  virtual void do_barrier() = 0;
  virtual std::unique_ptr<Work> do_ibarrier() = 0;
  virtual std::unique_ptr<Communicator> do_split(int color);
  virtual std::unique_ptr<Mailbox> do_mailbox();

 private:
  // Numbers the collective and, with options_.check, compares it across ranks.
  void begin(const char* op, const at::Tensor* t, int64_t root, bool variable_dim0);
  void check_peer(int peer, const char* op) const;
  /// Validates a tensor for communication; `what` names the op in the message.
  void check_tensor(const at::Tensor& t, const char* what, bool needs_contiguous) const;
  std::vector<int64_t> exchange_counts(int64_t mine);
  /// alltoallv's checks of `input` and `send_rows`; returns `input` contiguous.
  at::Tensor check_alltoallv(const at::Tensor& input, const std::vector<int64_t>& send_rows);
  at::Tensor exchange_rows(const at::Tensor& in, const std::vector<int64_t>& send_rows,
                           const std::vector<int64_t>& recv_rows);

  CommOptions options_;
  uint64_t sequence_ = 0;
};

/// Rank `root`'s `text` on every rank (collective; the others' `text` is ignored).
std::string broadcast_text(Communicator& comm, const std::string& text, int root = 0);

}  // namespace tandem::comm
