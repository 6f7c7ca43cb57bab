// Checkpoint save/load throughput against torch::save/torch::load of the same
// tensors and against the disk's own sequential write speed with fsync (dd), all
// in one run, interleaved, medians; plus the training time an async save blocks,
// as a fraction of a synchronous save. The state is what Tandem saves for a DLRM
// with `mb` MB of parameters: the stacked embedding tables (90%) with their
// row-wise Adagrad state, and MLP matrices (10%) with LibTorch Adagrad's sums.
//   build/bin/ckpt_bench [DIR=/tmp] [ROUNDS=5] [MB=100]
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/serialize.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/ckpt/optimizer_state.h"
#include "tandem/nn/row_snapshot.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds(const std::function<void()>& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void drop_file(const std::string& p) { fs::remove(p); }

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp";
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const int64_t mb = argc > 3 ? std::atoll(argv[3]) : 100;
  at::set_num_threads(1);
  tandem::ckpt::State s;
  const int64_t floats = mb * 1000 * 1000 / 4, dim = 16;
  at::manual_seed(1);
  const int64_t rows = floats * 9 / 10 / dim;  // of the tables, stacked
  s.params["embeddings.weight"] = at::randn({rows, dim});
  s.buffers["embeddings.rowwise_state"] = at::rand({rows});
  s.params["top.0.weight"] = at::randn({floats / 20 / 512, 512});
  s.params["bottom.0.weight"] = at::randn({floats / 20 / 512, 512});
  for (const auto* name : {"top.0.weight", "bottom.0.weight"})
    s.optimizer[std::string(name) + "/sum"] = at::rand_like(s.params[name]);
  s.optimizer_name = "adagrad";
  s.config = "[run]\n";
  double bytes = 0;
  std::vector<at::Tensor> flat;
  for (const auto* m : {&s.params, &s.buffers, &s.optimizer})
    for (const auto& [name, t] : *m) {
      bytes += static_cast<double>(t.nbytes());
      flat.push_back(t);
    }

  const std::string ours = dir + "/tandem-ckpt-bench.h5", theirs = dir + "/tandem-ckpt-bench.pt",
                    raw = dir + "/tandem-ckpt-bench.dd";
  std::vector<double> t_save, t_load, t_tsave, t_tsave_sync, t_tload, t_dd, t_copy;
  const std::string dd = fmt::format("dd if=/dev/zero of={} bs=1M count={} conv=fsync status=none",
                                     raw, static_cast<int64_t>(bytes / (1 << 20)));
  for (int r = 0; r < rounds; ++r) {
    t_dd.push_back(seconds([&] {
      if (std::system(dd.c_str()) != 0) std::exit(1);
    }));
    drop_file(raw);
    t_save.push_back(seconds([&] { tandem::ckpt::write(ours, s, {0, true}); }));
    t_load.push_back(seconds([&] { tandem::ckpt::read(ours); }));
    t_tsave.push_back(seconds([&] { torch::save(flat, theirs); }));
    drop_file(theirs);
    t_tsave_sync.push_back(seconds([&] {
      torch::save(flat, theirs);
      const std::string sync = "sync " + theirs;  // coreutils sync FILE: fsync
      if (std::system(sync.c_str()) != 0) std::exit(1);
    }));
    t_tload.push_back(seconds([&] {
      std::vector<at::Tensor> back;
      torch::load(back, theirs);
    }));
    drop_file(ours);
    drop_file(theirs);
  }
  // What an async save would block if it copied the whole state at the step
  // boundary (as it does on a GPU), into the previous save's buffers (the first
  // round allocates), with the Trainer's intra-op threads (run.threads = 0: the
  // cores of one rank); after the disk rounds, with the thread count set once. On
  // the CPU the Trainer copies only the MLP state there and the table rows in the
  // background: benchmarks/ckpt_train_bench.sh measures that inside `tandem train`.
  const int copy_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(copy_threads);
  std::map<std::string, at::Tensor> host;
  for (int r = 0; r <= rounds; ++r)
    t_copy.push_back(seconds([&] {
      for (const auto* m : {&s.params, &s.buffers, &s.optimizer})
        for (const auto& [name, t] : *m) tandem::ckpt::copy_into(host[name], t);
    }));
  // The Trainer's way's worst case: row updates back to back from the moment the
  // background copy starts (no training step between, which in `tandem train`
  // gives the copy its lead), batches of 4096 x 26 random rows. Blocked: the
  // boundary copy of the rest plus the guard (which saves rows, or for updates
  // this large waits for the copy to end).
  at::Tensor& weight = s.params["embeddings.weight"];
  at::Tensor& state = s.buffers["embeddings.rowwise_state"];
  std::vector<at::Tensor> batches;
  for (int b = 0; b < 4; ++b) batches.push_back(at::randint(0, rows, {4096 * 26}, at::kLong));
  std::vector<double> t_deferred;
  for (int r = 0; r <= rounds; ++r) {
    std::shared_ptr<tandem::nn::RowSnapshot> snap;
    const double boundary = seconds([&] {
      for (const auto* m : {&s.params, &s.buffers, &s.optimizer})
        for (const auto& [name, t] : *m)
          if (!t.is_same(weight) && !t.is_same(state)) tandem::ckpt::copy_into(host[name], t);
      snap = std::make_shared<tandem::nn::RowSnapshot>(
          std::vector<at::Tensor>{weight, state},
          std::vector<at::Tensor>{host["embeddings.weight"], host["embeddings.rowwise_state"]});
    });
    auto copier = std::async(std::launch::async, [&] { snap->complete(); });
    for (size_t b = 0; !snap->completed(); ++b) {
      const at::Tensor& ids = batches[b % batches.size()];
      snap->before_update(ids);
      state.index_add_(0, ids, at::ones({ids.numel()}));  // the update itself
    }
    copier.get();
    t_deferred.push_back(boundary + snap->guard_seconds());
  }
  const double gb = bytes / 1e9;
  const auto line = [&](const char* what, double secs, const std::string& note) {
    fmt::print("  {:<44} {:>8.3f} {:>9.2f}  {}\n", what, secs, gb / secs, note);
  };
  fmt::print(
      "# {:.1f} MB: DLRM tables + row-wise Adagrad, MLP + Adagrad; {} rounds, medians; dir {}\n",
      bytes / 1e6, rounds, dir);
  fmt::print("# {:<44} {:>8} {:>9}\n", "operation", "s", "GB/s");
  const double dd_s = median(t_dd), save_s = median(t_save), tsave_s = median(t_tsave);
  line("dd conv=fsync (disk anchor)", dd_s, "");
  line("tandem save (write, fsync, verify, rename)", save_s,
       fmt::format("{:.2f} of disk, {:.2f}x torch::save", dd_s / save_s, tsave_s / save_s));
  line("torch::save (no fsync)", tsave_s, "");
  line("torch::save + fsync", median(t_tsave_sync),
       fmt::format("tandem {:.2f}x", median(t_tsave_sync) / save_s));
  line("tandem load (checksums verified)", median(t_load),
       fmt::format("{:.2f}x torch::load", median(t_tload) / median(t_load)));
  line("torch::load", median(t_tload), "");
  t_copy.erase(t_copy.begin());  // the first copy allocates; later ones reuse
  line(fmt::format("async, all copied at the boundary, {} thr", copy_threads).c_str(),
       median(t_copy), fmt::format("{:.3f} of a synchronous save", median(t_copy) / save_s));
  t_deferred.erase(t_deferred.begin());
  line("async, table rows deferred, worst case", median(t_deferred),
       fmt::format("{:.3f} of a synchronous save", median(t_deferred) / save_s));
  return 0;
}
