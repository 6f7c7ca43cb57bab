// MPI backend: the runtime's MPI start-up and the Communicator over CPU tensors.
// With mpi_watchdog.cpp (which every collective here reports to) the only files
// that include mpi.h.
#include "tandem/comm/mpi_backend.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <list>
#include <mutex>
#include <thread>

#include "tandem/comm/mpi_check.h"
#include "tandem/comm/mpi_watchdog.h"
#include "tandem/util/error.h"

namespace tandem::comm::detail {
namespace {

MPI_Datatype mpi_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kInt:
      return MPI_INT32_T;
    case at::kLong:
      return MPI_INT64_T;
    case at::kBFloat16:
      return MPI_UINT16_T;  // moved as raw bits; reductions upcast
    default:
      throw CommError(fmt::format("comm: no MPI type for {}", c10::toString(t)));
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
  }
  return MPI_SUM;
}

int as_count(int64_t n, const char* what) {
  if (n > INT_MAX)
    throw CommError(fmt::format("comm: {} of {} elements exceeds MPI's int count", what, n));
  return static_cast<int>(n);
}

std::vector<int> as_counts(const std::vector<int64_t>& v, std::vector<int>& displs,
                           const char* what) {
  std::vector<int> out;
  int64_t off = 0;
  displs.clear();
  for (int64_t c : v) {
    out.push_back(as_count(c, what));
    displs.push_back(as_count(off, what));
    off += c;
  }
  return out;
}

// bfloat16 has no MPI reduction: reduce a float32 copy (more accurate too), copy back.
at::Tensor reduction_buffer(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? t.to(at::kFloat) : t;
}

void finish_reduction(at::Tensor& t, at::Tensor& buf, ReduceOp op, int world) {
  if (op == ReduceOp::kAvg) buf.div_(world);
  if (!buf.is_same(t)) t.copy_(buf);
}

class MpiWork final : public Work {
 public:
  MpiWork(at::Tensor t, at::Tensor buf, ReduceOp op, int world, const char* comm, uint64_t seq,
          double timeout_s)
      : t_(std::move(t)),
        buf_(std::move(buf)),
        op_(op),
        world_(world),
        watched_("iallreduce", comm, seq, timeout_s) {}
  ~MpiWork() override {
    if (!done_) {
      try {
        wait();
      } catch (...) {
      }
    }
  }
  MPI_Request* request() { return &req_; }
  void wait() override {
    if (done_) return;
    TANDEM_MPI_CHECK(MPI_Wait(&req_, MPI_STATUS_IGNORE));
    complete();
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    TANDEM_MPI_CHECK(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE));
    if (flag) complete();
    return done_;
  }

 private:
  void complete() {
    watched_.done();
    finish_reduction(t_, buf_, op_, world_);
    done_ = true;
  }
  at::Tensor t_, buf_;
  ReduceOp op_;
  int world_;
  Watched watched_;
  MPI_Request req_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

// A request with nothing to do on completion (a barrier).
class MpiRequestWork final : public Work {
 public:
  MpiRequestWork(const char* op, const char* comm, uint64_t seq, double timeout_s)
      : watched_(op, comm, seq, timeout_s) {}
  ~MpiRequestWork() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  MPI_Request* request() { return &req_; }
  void wait() override {
    if (req_ != MPI_REQUEST_NULL) TANDEM_MPI_CHECK(MPI_Wait(&req_, MPI_STATUS_IGNORE));
    watched_.done();
  }
  bool test() override {
    int flag = 1;
    if (req_ != MPI_REQUEST_NULL) TANDEM_MPI_CHECK(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE));
    if (flag) watched_.done();
    return flag != 0;
  }

 private:
  MPI_Request req_ = MPI_REQUEST_NULL;
  Watched watched_;
};

// Messages over a communicator of their own (a duplicate), so they never match a
// collective's traffic. Sends are non-blocking; their buffers are kept until MPI is
// done with them. Receives use matched probes, which are safe from two threads.
class MpiMailbox final : public Mailbox {
 public:
  explicit MpiMailbox(MPI_Comm comm) {
    TANDEM_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~MpiMailbox() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    // A clean stop leaves no send unreceived (the peers drain their mailboxes), so
    // this takes no time. After a failure a peer may never receive: give up after
    // 2 s, leaving the buffers and the communicator to the ending process.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!sending_.empty() && std::chrono::steady_clock::now() < deadline) {
      try {
        reap();
      } catch (const Error&) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (sending_.empty()) MPI_Comm_free(&comm_);
  }
  void post(int dst, int tag, std::vector<char> bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    reap();
    Pending& p = sending_.emplace_back();
    p.bytes = std::move(bytes);
    TANDEM_MPI_CHECK(MPI_Isend(p.bytes.data(),
                               as_count(static_cast<int64_t>(p.bytes.size()), "post"), MPI_BYTE,
                               dst, tag, comm_, &p.request));
  }
  std::optional<Message> poll(int tag) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reap();
    }
    int flag = 0;
    MPI_Message handle;
    MPI_Status status;
    TANDEM_MPI_CHECK(MPI_Improbe(MPI_ANY_SOURCE, tag, comm_, &flag, &handle, &status));
    if (!flag) return std::nullopt;
    int n = 0;
    MPI_Get_count(&status, MPI_BYTE, &n);
    Message m{status.MPI_SOURCE, std::vector<char>(static_cast<size_t>(n))};
    TANDEM_MPI_CHECK(MPI_Mrecv(m.bytes.data(), n, MPI_BYTE, &handle, MPI_STATUS_IGNORE));
    return m;
  }

 private:
  struct Pending {
    std::vector<char> bytes;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  // Drops the sends MPI has finished with; under the mutex.
  void reap() {
    for (auto it = sending_.begin(); it != sending_.end();) {
      int done = 0;
      TANDEM_MPI_CHECK(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE));
      it = done ? sending_.erase(it) : std::next(it);
    }
  }
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::mutex mutex_;
  std::list<Pending> sending_;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(CommOptions options) : Communicator(options), name_("world") {
    TANDEM_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    adopt();
  }
  /// Takes ownership of `comm` (from MPI_Comm_split).
  MpiCommunicator(CommOptions options, MPI_Comm comm)
      : Communicator(options), comm_(comm), name_("split") {
    adopt();
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

 protected:
  void do_allreduce(at::Tensor& t, ReduceOp op) override {
    at::Tensor buf = reduction_buffer(t);
    Watched w = watch("allreduce");
    TANDEM_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf.data_ptr(), as_count(buf.numel(), "allreduce"),
                                   mpi_type(buf.scalar_type()), mpi_op(op), comm_));
    finish_reduction(t, buf, op, size_);
  }

  std::unique_ptr<Work> do_iallreduce(at::Tensor& t, ReduceOp op) override {
    at::Tensor buf = reduction_buffer(t);
    auto work =
        std::make_unique<MpiWork>(t, buf, op, size_, name_, sequence() - 1, options().timeout_s);
    TANDEM_MPI_CHECK(
        MPI_Iallreduce(MPI_IN_PLACE, buf.data_ptr(), as_count(buf.numel(), "iallreduce"),
                       mpi_type(buf.scalar_type()), mpi_op(op), comm_, work->request()));
    return work;
  }

  void do_broadcast(at::Tensor& t, int root) override {
    Watched w = watch("broadcast");
    TANDEM_MPI_CHECK(MPI_Bcast(t.data_ptr(), as_count(t.numel(), "broadcast"),
                               mpi_type(t.scalar_type()), root, comm_));
  }

  void do_allgather(const at::Tensor& in, at::Tensor& out) override {
    const MPI_Datatype ty = mpi_type(in.scalar_type());
    const int n = as_count(in.numel(), "allgather");
    Watched w = watch("allgather");
    TANDEM_MPI_CHECK(MPI_Allgather(in.data_ptr(), n, ty, out.data_ptr(), n, ty, comm_));
  }

  void do_allgatherv(const at::Tensor& in, at::Tensor& out,
                     const std::vector<int64_t>& counts) override {
    std::vector<int> displs;
    const std::vector<int> c = as_counts(counts, displs, "allgatherv");
    const MPI_Datatype ty = mpi_type(in.scalar_type());
    Watched w = watch("allgatherv");
    TANDEM_MPI_CHECK(MPI_Allgatherv(in.data_ptr(), as_count(in.numel(), "allgatherv"), ty,
                                    out.data_ptr(), c.data(), displs.data(), ty, comm_));
  }

  void do_alltoallv(const at::Tensor& in, const std::vector<int64_t>& send_counts, at::Tensor& out,
                    const std::vector<int64_t>& recv_counts) override {
    std::vector<int> sd, rd;
    const std::vector<int> sc = as_counts(send_counts, sd, "alltoallv");
    const std::vector<int> rc = as_counts(recv_counts, rd, "alltoallv");
    const MPI_Datatype ty = mpi_type(in.scalar_type());
    Watched w = watch("alltoallv");
    TANDEM_MPI_CHECK(MPI_Alltoallv(in.data_ptr(), sc.data(), sd.data(), ty, out.data_ptr(),
                                   rc.data(), rd.data(), ty, comm_));
  }

  void do_send(const at::Tensor& t, int dst, int tag) override {
    TANDEM_MPI_CHECK(MPI_Send(t.data_ptr(), as_count(t.numel(), "send"), mpi_type(t.scalar_type()),
                              dst, tag, comm_));
  }

  void do_recv(at::Tensor& t, int src, int tag) override {
    MPI_Status status;
    TANDEM_MPI_CHECK(MPI_Recv(t.data_ptr(), as_count(t.numel(), "recv"), mpi_type(t.scalar_type()),
                              src, tag, comm_, &status));
    int got = 0;
    MPI_Get_count(&status, mpi_type(t.scalar_type()), &got);
    if (got != t.numel())
      throw CommError(fmt::format("comm: rank {} received {} elements from rank {}, expected {}",
                                  rank_, got, src, t.numel()));
  }

  void do_barrier() override {
    Watched w = watch("barrier");
    TANDEM_MPI_CHECK(MPI_Barrier(comm_));
  }

  std::unique_ptr<Work> do_ibarrier() override {
    auto work =
        std::make_unique<MpiRequestWork>("ibarrier", name_, sequence() - 1, options().timeout_s);
    TANDEM_MPI_CHECK(MPI_Ibarrier(comm_, work->request()));
    return work;
  }

  std::unique_ptr<Communicator> do_split(int color) override {
    MPI_Comm part = MPI_COMM_NULL;
    Watched w = watch("split");
    TANDEM_MPI_CHECK(MPI_Comm_split(comm_, color, rank_, &part));
    return std::make_unique<MpiCommunicator>(options(), part);
  }

  std::unique_ptr<Mailbox> do_mailbox() override { return std::make_unique<MpiMailbox>(comm_); }

 private:
  // The collective this backend is in, for the watchdog (sequence() counts it).
  Watched watch(const char* op) const {
    return Watched(op, name_, sequence() - 1, options().timeout_s);
  }

  void adopt() {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  const char* name_;  ///< "world" or "split", in the watchdog's messages
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

bool mpi_available() { return true; }

void mpi_init(int* argc, char*** argv, RuntimeInfo& info) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // Open MPI's default choice for non-blocking allreduce of large buffers ran the
    // gradient buckets at about half the bandwidth of its blocking allreduce here;
    // the ring algorithm matches it (benchmarks/RESULTS.md). A setting of the
    // user's (environment, or mpirun --mca) wins; other MPIs ignore the variable.
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", /*overwrite=*/0);
    int provided = 0;
    // A colocated parameter server answers its mailbox from a thread of its own
    // while the training thread runs collectives: MPI must allow both at once.
    TANDEM_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  }
  int level = 0;
  MPI_Query_thread(&level);
  info.threads = level == MPI_THREAD_MULTIPLE;
  MPI_Comm_rank(MPI_COMM_WORLD, &info.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &info.world_size);
  MPI_Comm node;
  TANDEM_MPI_CHECK(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &node));
  MPI_Comm_rank(node, &info.local_rank);
  MPI_Comm_size(node, &info.local_size);
  MPI_Comm_free(&node);
  // Every rank's host and node-local rank, for the start line and the watchdog.
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  std::vector<char> names(static_cast<size_t>(info.world_size) * MPI_MAX_PROCESSOR_NAME);
  TANDEM_MPI_CHECK(MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names.data(),
                                 MPI_MAX_PROCESSOR_NAME, MPI_CHAR, MPI_COMM_WORLD));
  info.local_ranks.resize(info.world_size);
  TANDEM_MPI_CHECK(MPI_Allgather(&info.local_rank, 1, MPI_INT, info.local_ranks.data(), 1, MPI_INT,
                                 MPI_COMM_WORLD));
  info.hosts.clear();
  for (int r = 0; r < info.world_size; ++r)
    info.hosts.emplace_back(names.data() + static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME);
  watchdog_start(info.hosts);
}

void mpi_finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  watchdog_stop();
  MPI_Finalize();
}

void mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

std::unique_ptr<Communicator> make_mpi_communicator(CommOptions options) {
  return std::make_unique<MpiCommunicator>(options);
}

}  // namespace tandem::comm::detail
