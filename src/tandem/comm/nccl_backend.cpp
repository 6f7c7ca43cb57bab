// NCCL backend: collectives on this rank's GPU. The only file that includes nccl.h.
//
// Ordering: every collective runs on one dedicated stream. Before it, the stream
// waits for an event recorded on the compute stream (so the collective sees the
// finished gradients); after it, an event is recorded that the compute stream
// waits for (blocking ops at once, non-blocking ones in Work::wait()). The host
// never blocks on the GPU here.
//
// Watchdog: a thread follows every collective in flight. If NCCL reports an
// asynchronous error, or one takes longer than CommOptions::timeout_s, it names
// the op, its sequence number and the rank, aborts the NCCL communicator and ends
// the job (Runtime::abort: MPI_Abort under mpirun), so a lost peer never hangs it.
//
// CPU tensors (the trainer's flags, metrics and statistics) go to the host
// communicator (MPI, or single in one process).
#include "tandem/comm/nccl_backend.h"

#include <ATen/ATen.h>
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "tandem/util/cuda_stream.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::comm::detail {
namespace {

void cuda_check(cudaError_t rc, const char* call, int rank) {
  if (rc != cudaSuccess)
    throw CommError(fmt::format("{} failed on rank {}: {}", call, rank, cudaGetErrorString(rc)));
}
void nccl_check(ncclResult_t rc, const char* call, int rank) {
  if (rc != ncclSuccess)
    throw CommError(fmt::format("{} failed on rank {}: {}", call, rank, ncclGetErrorString(rc)));
}
#define TANDEM_CUDA_CHECK(call) cuda_check((call), #call, rank_)
#define TANDEM_NCCL_CHECK(call) nccl_check((call), #call, rank_)

ncclDataType_t nccl_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    default:
      throw CommError(fmt::format("comm: no NCCL type for {}", c10::toString(t)));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMin:
      return ncclMin;
    case ReduceOp::kMax:
      return ncclMax;
  }
  return ncclSum;
}


class EventWork final : public Work {
 public:
  explicit EventWork(cudaEvent_t done) : done_(done) {}
  ~EventWork() override { cudaEventDestroy(done_); }
  void wait() override {
    if (cudaStreamWaitEvent(current_cuda_stream(), done_, 0) != cudaSuccess)
      throw CommError("comm: cudaStreamWaitEvent failed");
  }
  bool test() override { return cudaEventQuery(done_) == cudaSuccess; }

 private:
  cudaEvent_t done_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(CommOptions options, const RuntimeInfo& info, std::unique_ptr<Communicator> host)
      : Communicator(options), host_(std::move(host)), rank_(info.rank), size_(info.world_size) {
    int devices = 0;
    const cudaError_t found = cudaGetDeviceCount(&devices);
    if (found != cudaSuccess || devices == 0)
      throw ConfigError(fmt::format("comm.backend=nccl: rank {} sees no CUDA device ({})", rank_,
                                    found != cudaSuccess ? cudaGetErrorString(found) : "0 devices"));
    if (info.local_size > devices)
      throw ConfigError(fmt::format(
          "comm.backend=nccl: {} ranks on this node but {} GPU(s); NCCL cannot run two ranks on "
          "one GPU (launch at most one rank per GPU)",
          info.local_size, devices));
    device_ = info.local_rank % devices;
    TANDEM_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop;
    TANDEM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    log::infof("comm: rank {} (local {}) bound to GPU {} ({})", rank_, info.local_rank, device_,
               prop.name);

    // Rank 0's unique id reaches every rank over the host communicator.
    ncclUniqueId id;
    if (rank_ == 0) TANDEM_NCCL_CHECK(ncclGetUniqueId(&id));
    at::Tensor bytes = at::empty({static_cast<int64_t>(sizeof(id) / sizeof(int32_t))}, at::kInt);
    std::memcpy(bytes.data_ptr(), &id, sizeof(id));
    host_->broadcast(bytes, 0);
    std::memcpy(&id, bytes.data_ptr(), sizeof(id));
    TANDEM_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
    TANDEM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TANDEM_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    cudaStreamSynchronize(stream_);
    for (auto& f : in_flight_) cudaEventDestroy(f.done);
    ncclCommDestroy(comm_);
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  at::Device device() const override { return {at::kCUDA, static_cast<c10::DeviceIndex>(device_)}; }
  bool accepts(const at::Device& d) const override {
    return d.is_cpu() || (d.is_cuda() && d.index() == device_);
  }

 protected:
  void do_allreduce(at::Tensor& t, ReduceOp op) override {
    if (t.is_cpu()) return host_->allreduce(t, op);
    finish_on_compute(launch("allreduce", [&](cudaStream_t s) {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()),
                           nccl_op(op), comm_, s);
    }));
  }
  std::unique_ptr<Work> do_iallreduce(at::Tensor& t, ReduceOp op) override {
    if (t.is_cpu()) return host_->iallreduce(t, op);
    if (grouped_ > 0) throw CommError("comm: iallreduce inside a group; use allreduce there");
    return std::make_unique<EventWork>(launch("iallreduce", [&](cudaStream_t s) {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()),
                           nccl_op(op), comm_, s);
    }));
  }
  void do_broadcast(at::Tensor& t, int root) override {
    if (t.is_cpu()) return host_->broadcast(t, root);
    finish_on_compute(launch("broadcast", [&](cudaStream_t s) {
      return ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), root,
                           comm_, s);
    }));
  }
  void do_allgather(const at::Tensor& in, at::Tensor& out) override {
    if (in.is_cpu()) {
      out.copy_(host_->allgather(in).view(out.sizes()));
      return;
    }
    finish_on_compute(launch("allgather", [&](cudaStream_t s) {
      return ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), nccl_type(in.scalar_type()),
                           comm_, s);
    }));
  }
  void do_allgatherv(const at::Tensor& in, at::Tensor& out,
                     const std::vector<int64_t>& counts) override {
    if (in.is_cpu()) {
      out.copy_(host_->allgatherv(in).view(out.sizes()));
      return;
    }
    // One broadcast per rank into its slice, as one group.
    const size_t item = in.element_size();
    finish_on_compute(launch("allgatherv", [&](cudaStream_t s) {
      ncclResult_t rc = ncclGroupStart();
      int64_t offset = 0;
      for (int r = 0; r < size_ && rc == ncclSuccess; ++r) {
        char* dst = static_cast<char*>(out.data_ptr()) + offset * item;
        rc = ncclBroadcast(r == rank_ ? in.data_ptr() : dst, dst, counts[r],
                           nccl_type(in.scalar_type()), r, comm_, s);
        offset += counts[r];
      }
      const ncclResult_t end = ncclGroupEnd();
      return rc != ncclSuccess ? rc : end;
    }));
  }
  void do_alltoallv(const at::Tensor& in, const std::vector<int64_t>& send_counts, at::Tensor& out,
                    const std::vector<int64_t>& recv_counts) override {
    if (in.is_cpu()) throw CommError("comm: the nccl backend takes alltoallv on GPU tensors only");
    const size_t item = in.element_size();
    const ncclDataType_t type = nccl_type(in.scalar_type());
    finish_on_compute(launch("alltoallv", [&](cudaStream_t s) {
      ncclResult_t rc = ncclGroupStart();
      int64_t soff = 0, roff = 0;
      for (int r = 0; r < size_ && rc == ncclSuccess; ++r) {
        rc = ncclSend(static_cast<const char*>(in.data_ptr()) + soff * item, send_counts[r], type, r,
                      comm_, s);
        if (rc == ncclSuccess)
          rc = ncclRecv(static_cast<char*>(out.data_ptr()) + roff * item, recv_counts[r], type, r,
                        comm_, s);
        soff += send_counts[r];
        roff += recv_counts[r];
      }
      const ncclResult_t end = ncclGroupEnd();
      return rc != ncclSuccess ? rc : end;
    }));
  }
  void do_send(const at::Tensor& t, int dst, int tag) override {
    if (t.is_cpu()) return host_->send(t, dst, tag);
    finish_on_compute(launch("send", [&](cudaStream_t s) {
      return ncclSend(t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), dst, comm_, s);
    }));
  }
  void do_recv(at::Tensor& t, int src, int tag) override {
    if (t.is_cpu()) return host_->recv(t, src, tag);
    finish_on_compute(launch("recv", [&](cudaStream_t s) {
      return ncclRecv(t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), src, comm_, s);
    }));
  }
  void group_start() override {
    if (grouped_++ == 0) {
      begin_on_stream();
      TANDEM_NCCL_CHECK(ncclGroupStart());
      group_first_ = sequence();
    }
  }
  void group_end() override {
    if (grouped_ == 0 || --grouped_ > 0) return;
    TANDEM_NCCL_CHECK(ncclGroupEnd());
    // The group's ops are enqueued only now: one event marks them all done.
    finish_on_compute(track("group", group_first_));
  }

  void do_barrier() override {
    at::Tensor one = at::ones({1}, at::TensorOptions().device(device()));
    do_allreduce(one, ReduceOp::kSum);
    TANDEM_CUDA_CHECK(cudaStreamSynchronize(current_cuda_stream()));
    host_->barrier();
  }

  std::unique_ptr<Work> do_ibarrier() override {
    TANDEM_CUDA_CHECK(cudaStreamSynchronize(current_cuda_stream()));
    return host_->ibarrier();
  }

  std::unique_ptr<Mailbox> do_mailbox() override { return host_->mailbox(); }

 private:
  struct InFlight {
    const char* op;
    uint64_t seq;
    cudaEvent_t done;
    std::chrono::steady_clock::time_point start;
  };

  // stream_ waits for the compute stream's work so far.
  void begin_on_stream() {
    TANDEM_CUDA_CHECK(cudaSetDevice(device_));
    TANDEM_CUDA_CHECK(cudaEventRecord(ready_, current_cuda_stream()));
    TANDEM_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
  }

  // An event recorded on stream_ now (owned by the caller), and a second one the
  // watchdog follows for op #seq.
  cudaEvent_t track(const char* op, uint64_t seq) {
    cudaEvent_t done, watched;
    TANDEM_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    TANDEM_CUDA_CHECK(cudaEventCreateWithFlags(&watched, cudaEventDisableTiming));
    TANDEM_CUDA_CHECK(cudaEventRecord(done, stream_));
    TANDEM_CUDA_CHECK(cudaEventRecord(watched, stream_));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      in_flight_.push_back({op, seq, watched, std::chrono::steady_clock::now()});
    }
    wake_.notify_all();
    return done;
  }

  // Orders `call` after the compute stream's work, runs it on stream_, and returns
  // an event that completes with it (owned by the caller). Inside a group the call
  // is only queued: the group's end makes the compute stream wait (null here).
  template <class F>
  cudaEvent_t launch(const char* op, F&& call) {
    if (grouped_ > 0) {
      TANDEM_NCCL_CHECK(call(stream_));
      return nullptr;
    }
    begin_on_stream();
    TANDEM_NCCL_CHECK(call(stream_));
    return track(op, sequence() - 1);
  }

  void finish_on_compute(cudaEvent_t done) {
    if (!done) return;  // grouped: see group_end()
    const cudaError_t rc = cudaStreamWaitEvent(current_cuda_stream(), done, 0);
    cudaEventDestroy(done);
    TANDEM_CUDA_CHECK(rc);
  }

  void watch() {
    cudaSetDevice(device_);
    const auto timeout = std::chrono::duration<double>(options().timeout_s);
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100));
      while (!in_flight_.empty() && cudaEventQuery(in_flight_.front().done) == cudaSuccess) {
        cudaEventDestroy(in_flight_.front().done);
        in_flight_.pop_front();
      }
      if (in_flight_.empty()) continue;
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      const InFlight& f = in_flight_.front();
      const bool late = std::chrono::steady_clock::now() - f.start > timeout;
      if (async == ncclSuccess && !late) continue;
      const std::string why =
          async != ncclSuccess
              ? fmt::format("NCCL reported: {}", ncclGetErrorString(async))
              : fmt::format("not done after {:g} s (comm.timeout_s)", options().timeout_s);
      log::warnf("comm: nccl {} #{} on rank {} failed: {}; aborting the job", f.op, f.seq, rank_,
                 why);
      ncclCommAbort(comm_);
      // From this thread: MPI_Abort takes every rank down; alone, _Exit skips the
      // destructors the training thread may still be running.
      std::fflush(nullptr);
      if (size_ > 1) Runtime::get().abort(4);
      std::_Exit(4);
    }
  }

  std::unique_ptr<Communicator> host_;
  int rank_, size_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  std::thread watchdog_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<InFlight> in_flight_;
  bool stop_ = false;
  int grouped_ = 0;              ///< group_start() depth
  uint64_t group_first_ = 0;     ///< sequence number of the group's first op
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(CommOptions options, const RuntimeInfo& info,
                                                     std::unique_ptr<Communicator> host) {
  return std::make_unique<NcclCommunicator>(options, info, std::move(host));
}

}  // namespace tandem::comm::detail
