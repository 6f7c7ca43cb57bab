// Collectives in the nccl-tests format, checked while measured:
//   size count type redop root time(us) algbw(GB/s) busbw(GB/s) #wrong
// then the bucketed gradient all-reduce (the Reducer) against one allreduce of the
// same total bytes. Run under mpirun, e.g.
//   mpirun -np 2 build/bin/comm_bench [--max-mb 64] [--iters 20]
//   build/bin/comm_bench --backend nccl --table-only     (GPU tensors; launch/gpu-check.sh)
// Exits non-zero when any value is wrong.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "tandem/comm/runtime.h"
#include "tandem/train/reducer.h"

using tandem::comm::Communicator;
using tandem::comm::ReduceOp;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Mean seconds per call over `iters`, after warm-up; the slowest rank's time.
double time_op(Communicator& comm, int iters, const std::function<void()>& op) {
  for (int i = 0; i < 3; ++i) op();
  comm.barrier();
  const double t0 = now();
  for (int i = 0; i < iters; ++i) op();
  if (comm.device().is_cuda()) comm.barrier();  // waits for the GPU's queue to drain
  at::Tensor t = at::full({1}, (now() - t0) / iters, at::kDouble);
  comm.allreduce(t, ReduceOp::kMax);
  return t.item<double>();
}

int64_t count_wrong(Communicator& comm, const at::Tensor& got, const at::Tensor& want) {
  at::Tensor wrong = at::full({1}, (got != want).sum().item<int64_t>(), at::kLong);
  comm.allreduce(wrong, ReduceOp::kSum);
  return wrong.item<int64_t>();
}

struct Row {
  const char* op;
  double bus_factor;  // busbw = algbw * factor (nccl-tests PERFORMANCE.md)
};

}  // namespace

int main(int argc, char** argv) {
  auto& rt = tandem::comm::Runtime::init(&argc, &argv);
  double max_mb = 64;
  int iters = 20;
  std::string backend = "auto";
  bool table_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--table-only"))
      table_only = true;
    else if (i + 1 < argc && !std::strcmp(argv[i], "--max-mb"))
      max_mb = std::atof(argv[++i]);
    else if (i + 1 < argc && !std::strcmp(argv[i], "--iters"))
      iters = std::atoi(argv[++i]);
    else if (i + 1 < argc && !std::strcmp(argv[i], "--backend"))
      backend = argv[++i];
  }
  rt.set_threads(1);
  std::unique_ptr<Communicator> comm;
  try {
    comm = rt.make_communicator(backend, {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "comm_bench: %s\n", e.what());
    return 77;  // not available here
  }
  const auto on = at::TensorOptions().device(comm->device());  // NCCL: this rank's GPU
  const int w = comm->size(), r = comm->rank();
  const double n = w;
  int64_t total_wrong = 0;
  auto print = [&](const char* fmt, auto... args) {
    if (r == 0) std::printf(fmt, args...);
  };
  print("# Tandem %s backend, %d ranks, float32, %d iterations per size\n", comm->backend().c_str(),
        w, iters);
  print("# %10s %12s %6s %6s %5s %10s %8s %8s %7s  %s\n", "size", "count", "type", "redop", "root",
        "time(us)", "algbw", "busbw", "#wrong", "op");
  const Row rows[] = {{"allreduce", 2 * (n - 1) / n},
                      {"broadcast", 1},
                      {"allgather", (n - 1) / n},
                      {"alltoall", (n - 1) / n}};
  for (const Row& row : rows) {
    for (int64_t bytes = 8; bytes <= static_cast<int64_t>(max_mb * 1024 * 1024); bytes *= 4) {
      const int64_t count = std::max<int64_t>(w, bytes / 4 / w * w);
      const at::Tensor base = at::arange(count, on.dtype(at::kLong)).remainder(251).to(at::kFloat);
      // `op` is the collective alone; correctness is checked on one more call
      // after the timing, from freshly reset inputs.
      at::Tensor x = base + r, want, got;
      std::function<void()> op;
      const std::string name = row.op;
      if (name == "allreduce") {
        op = [&] { comm->allreduce(x, ReduceOp::kSum); };
        want = base * w + w * (w - 1) / 2;
      } else if (name == "broadcast") {
        op = [&] { comm->broadcast(x, 0); };
        want = base;
      } else if (name == "allgather") {
        // `count` is the gathered size, as in nccl-tests.
        x = (base.narrow(0, 0, count / w) + r).contiguous();
        op = [&] { got = comm->allgather(x); };
        std::vector<at::Tensor> parts;
        for (int q = 0; q < w; ++q) parts.push_back(base.narrow(0, 0, count / w) + q);
        want = at::stack(parts);
      } else {
        op = [&] { got = comm->alltoall(x); };
        std::vector<at::Tensor> parts;
        for (int q = 0; q < w; ++q) parts.push_back(base.narrow(0, r * (count / w), count / w) + q);
        want = at::cat(parts);
      }
      const at::Tensor input = x.clone();
      const double secs = time_op(*comm, iters, op);
      x.copy_(input);
      op();
      const at::Tensor& result = (name == "allreduce" || name == "broadcast") ? x : got;
      const int64_t wrong = count_wrong(*comm, result.reshape(-1), want.reshape(-1));
      total_wrong += wrong;
      const double algbw = count * 4.0 / secs / 1e9;
      print("  %10lld %12lld %6s %6s %5s %10.1f %8.3f %8.3f %7lld  %s\n",
            static_cast<long long>(count * 4), static_cast<long long>(count), "float",
            name == "allreduce" ? "sum" : "none", name == "broadcast" ? "0" : "-1", secs * 1e6,
            algbw, algbw * row.bus_factor, static_cast<long long>(wrong), row.op);
    }
  }

  if (table_only) {
    if (w == 1) print("# world size 1: a sanity check of the path; bandwidth needs several GPUs\n");
    print("# #wrong: %lld\n", static_cast<long long>(total_wrong));
    return total_wrong == 0 ? 0 : 1;
  }

  // Bucketed gradient reduction of a DLRM-sized parameter list (the quickstart
  // model: 26 tables of 20000x16 plus the MLPs) against one allreduce of the same
  // bytes. The Reducer's path: copy into buckets, non-blocking allreduce per
  // bucket, wait, copy back to .grad.
  std::vector<at::Tensor> params;
  for (int64_t s : {13 * 64, 64, 64 * 32, 32, 32 * 16, 16}) params.push_back(at::zeros({s}));
  for (int t = 0; t < 26; ++t) params.push_back(at::zeros({20000, 16}));
  for (int64_t s : {367 * 64, 64, 64 * 32, 32, 32, 1}) params.push_back(at::zeros({s}));
  int64_t total = 0;
  for (auto& p : params) {
    p.set_requires_grad(true);
    p.mutable_grad() = at::full_like(p, r + 1);
    total += p.numel();
  }
  tandem::train::Reducer reducer(params, *comm, tandem::train::ReducerOptions{});
  at::Tensor flat;
  auto run_bucketed = [&] {
    reducer.zero_grad();
    for (auto& p : params) p.mutable_grad() = at::full_like(p, r + 1);
    reducer.prepare(true);
    reducer.finish();
  };
  at::Tensor fresh;
  auto run_single = [&] {
    fresh = at::full({total}, r + 1.0);
    comm->allreduce(fresh, ReduceOp::kSum);
  };
  // The reduction alone, as finish() runs it on buckets already filled during
  // backward: one allreduce per bucket, in order.
  std::vector<at::Tensor> buckets;
  for (const auto& b : reducer.bucket_layout()) {
    int64_t n = 0;
    for (size_t k : b) n += params[k].numel();
    buckets.push_back(at::zeros({n}));
  }
  auto run_buckets_only = [&] {
    for (auto& b : buckets) {
      b.fill_(r + 1);
      comm->allreduce(b, ReduceOp::kSum);
    }
  };
  // The same with overlap on when backward left everything to finish(): all
  // buckets but the last non-blocking, the last blocking.
  auto run_buckets_nonblocking = [&] {
    std::vector<std::unique_ptr<tandem::comm::Work>> works;
    for (size_t i = 0; i + 1 < buckets.size(); ++i) {
      buckets[i].fill_(r + 1);
      works.push_back(comm->iallreduce(buckets[i], ReduceOp::kSum));
    }
    buckets.back().fill_(r + 1);
    for (auto& work : works) work->wait();
    comm->allreduce(buckets.back(), ReduceOp::kSum);
  };
  flat = at::zeros({total});
  auto run_flat_only = [&] {
    flat.fill_(r + 1);
    comm->allreduce(flat, ReduceOp::kSum);
  };
  // The machine is noisy: interleave the paths over several rounds and keep each
  // path's median.
  std::vector<double> t_bucketed, t_single, t_buckets, t_flat, t_nonblocking;
  for (int round = 0; round < 7; ++round) {
    t_single.push_back(time_op(*comm, iters, run_single));
    t_bucketed.push_back(time_op(*comm, iters, run_bucketed));
    t_flat.push_back(time_op(*comm, iters, run_flat_only));
    t_buckets.push_back(time_op(*comm, iters, run_buckets_only));
    t_nonblocking.push_back(time_op(*comm, iters, run_buckets_nonblocking));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double bucketed = median(t_bucketed), single = median(t_single);
  const double buckets_only = median(t_buckets), flat_only = median(t_flat);
  const double nonblocking = median(t_nonblocking);
  int64_t wrong = 0;
  for (auto& p : params) wrong += count_wrong(*comm, p.grad(), at::full_like(p, w * (w + 1) / 2.0));
  wrong += count_wrong(*comm, flat, at::full_like(flat, w * (w + 1) / 2.0));
  total_wrong += wrong;
  const double factor = 2 * (n - 1) / n;
  auto busbw = [&](double secs) { return total * 4.0 / secs / 1e9 * factor; };
  print("#\n# gradient reduction, %lld bytes in %zu tensors, %zu buckets (25 MiB, first 1 MiB)\n",
        static_cast<long long>(total * 4), params.size(), reducer.bucket_layout().size());
  print("# medians of 7 interleaved rounds of %d iterations\n", iters);
  print("# %-44s %10s %8s %8s\n", "path", "time(us)", "busbw", "ratio");
  print("  %-44s %10.1f %8.3f %8s\n", "one MPI allreduce of all bytes (anchor)", flat_only * 1e6,
        busbw(flat_only), "1.000");
  print("  %-44s %10.1f %8.3f %8.3f\n", "bucketed, blocking (overlap off)", buckets_only * 1e6,
        busbw(buckets_only), busbw(buckets_only) / busbw(flat_only));
  print("  %-44s %10.1f %8.3f %8.3f\n", "bucketed, non-blocking but the last", nonblocking * 1e6,
        busbw(nonblocking), busbw(nonblocking) / busbw(flat_only));
  print("  %-44s %10.1f %8.3f %8s\n", "anchor, fresh buffer each time", single * 1e6, busbw(single),
        "1.000");
  print("  %-44s %10.1f %8.3f %8.3f\n", "Reducer prepare+finish (copies into buckets)",
        bucketed * 1e6, busbw(bucketed), busbw(bucketed) / busbw(single));
  print("# #wrong: %lld\n", static_cast<long long>(total_wrong));
  return total_wrong == 0 ? 0 : 1;
}
