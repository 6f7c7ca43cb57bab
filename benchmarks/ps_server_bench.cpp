// One parameter server under load from one worker: pull and push latency, and rows
// per second, against the batch size.
//   mpirun -np 2 build/bin/ps_server_bench [ROWS_PER_TABLE=1000000] [DIM=16] [MAX_BATCH=65536]
// Rank 0 is the worker, rank 1 the dedicated server (BSP, row-wise Adagrad). A
// batch of B samples x 26 tables draws ids uniformly; its distinct rows are pulled
// (request to answer), then their gradients pushed and applied (a push, then an
// empty pull at the next clock, which BSP answers once the push is applied). Each
// figure is the median of 20 batches after 3 warm-up batches.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "tandem/comm/runtime.h"
#include "tandem/ps/parameter_server.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  auto& runtime = tandem::comm::Runtime::init(&argc, &argv);
  const int64_t rows = argc > 1 ? std::stoll(argv[1]) : 1000000;
  const int64_t dim = argc > 2 ? std::stoll(argv[2]) : 16;
  const int64_t max_batch = argc > 3 ? std::stoll(argv[3]) : 65536;
  runtime.set_threads(1);
  auto world = runtime.make_communicator("auto", {});
  if (world->size() != 2) {
    std::fprintf(stderr, "ps_server_bench: run it on 2 ranks (mpirun -np 2)\n");
    return 2;
  }
  tandem::ps::ServerOptions o;
  o.table_rows.assign(26, rows);
  o.dim = dim;
  o.servers = 1;
  o.update = tandem::kernels::RowUpdate::kRowwiseAdagrad;
  tandem::ps::ParameterServer ps(o, *world);
  if (!ps.trains()) {
    ps.serve();
    return 0;
  }
  const tandem::ps::RowSharding& sh = ps.sharding();
  const at::Tensor none = at::empty({0}, at::kLong);
  std::printf("one server, one worker (mpirun -np 2, 1 thread each), 26 tables x %ld rows x %ld\n",
              static_cast<long>(rows), static_cast<long>(dim));
  std::printf(
      "| batch | distinct rows | pull ms | pull Mrows/s | push + apply ms | push Mrows/s |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  at::manual_seed(1);
  for (int64_t batch = 256; batch <= max_batch; batch *= 4) {
    std::vector<double> pull_ms, push_ms;
    int64_t distinct = 0;
    for (int it = 0; it < 23; ++it) {
      // The batch's distinct (table, row) places, as the worker's placement finds them.
      const at::Tensor ids = at::randint(rows, {batch, 26}, at::kLong);
      const at::Tensor keys =
          std::get<0>(at::_unique(ids + at::arange(26, at::kLong).view({1, 26}) * rows));
      const int64_t n = keys.numel();
      at::Tensor servers = at::zeros({n}, at::kLong), slots = at::empty({n}, at::kLong);
      const int64_t* k = keys.data_ptr<int64_t>();
      int64_t* s = slots.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) s[i] = sh.place(k[i] / rows, k[i] % rows).slot;
      auto t = Clock::now();
      const at::Tensor got = ps.pull(servers, slots);
      const double pull = ms_since(t);
      t = Clock::now();
      ps.push(servers, slots, at::full_like(got, 0.01), 0.05);
      ps.pull(none, none);  // answered once the push is applied
      const double push = ms_since(t);
      if (it < 3) continue;
      pull_ms.push_back(pull);
      push_ms.push_back(push);
      distinct = n;
    }
    const double pull = median(pull_ms), push = median(push_ms);
    std::printf("| %ld | %ld | %.2f | %.2f | %.2f | %.2f |\n", static_cast<long>(batch),
                static_cast<long>(distinct), pull, distinct / pull / 1e3, push,
                distinct / push / 1e3);
  }
  ps.stop();
  return 0;
}
