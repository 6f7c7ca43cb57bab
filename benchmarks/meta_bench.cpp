// Meta-learning speed and memory: meta-iterations per second of MetaLearner::step()
// (the step `tandem meta` runs: sampling, inner loop, meta-gradient, reduction,
// Adam), and the peak bytes tensors hold during an iteration, counted by a CPU
// allocator that wraps LibTorch's. Prints one JSON line; meta_bench.sh runs it
// beside the PyTorch anchor (maml_pytorch.py) and prints the tables of RESULTS.md.
//   meta_bench --algorithm maml --inner-steps 1 --iterations 1000 --threads 1
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "tandem/comm/runtime.h"
#include "tandem/comm/single_communicator.h"
#include "tandem/config/meta_config.h"
#include "tandem/meta/meta_learner.h"

namespace {

// Counts the bytes of live CPU tensor storage and their peak. Both signatures of
// allocate() are declared without `override`: LibTorch 1.13 has the const one,
// 2.x the other (and copy_data, pure there), so either way the right one overrides.
class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(size_t n) const { return wrap(n); }
  c10::DataPtr allocate(size_t n) { return wrap(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const {
    std::copy_n(static_cast<const char*>(src), count, static_cast<char*>(dest));
  }
  static int64_t live() { return live_; }
  static int64_t peak() { return peak_; }
  static void reset_peak() { peak_ = live_.load(); }

 private:
  struct Held {
    c10::DataPtr inner;
    int64_t bytes;
  };
  static void release(void* ctx) {
    auto* h = static_cast<Held*>(ctx);
    live_ -= h->bytes;
    delete h;
  }
  c10::DataPtr wrap(size_t n) const {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    const c10::Device device = inner.device();
    const int64_t now = live_ += static_cast<int64_t>(n);
    int64_t p = peak_;
    while (now > p && !peak_.compare_exchange_weak(p, now)) {
    }
    return {data, new Held{std::move(inner), static_cast<int64_t>(n)}, &release, device};
  }
  c10::Allocator* base_;
  static inline std::atomic<int64_t> live_{0}, peak_{0};
};

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  static CountingAllocator counting(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&counting, /*priority=*/100);
  tandem::comm::Runtime::init(&argc, &argv);
  const int threads = std::stoi(arg(argc, argv, "threads", "1"));
  at::set_num_threads(threads);
  const int64_t iterations = std::stoll(arg(argc, argv, "iterations", "1000"));

  tandem::config::MetaConfig cfg;
  cfg.run.dir = "";  // nothing written
  cfg.meta.algorithm = arg(argc, argv, "algorithm", "maml");
  cfg.meta.inner_steps = std::stoll(arg(argc, argv, "inner-steps", "1"));
  cfg.meta.meta_batch = std::stoll(arg(argc, argv, "meta-batch", "25"));
  cfg.meta.shots = cfg.meta.queries = std::stoll(arg(argc, argv, "shots", "10"));
  cfg.meta.baseline = false;  // the anchor trains no baseline either
  auto comm = tandem::comm::make_single_communicator();
  tandem::meta::MetaLearner learner(cfg, *comm);

  for (int i = 0; i < 10; ++i) learner.step();  // warm-up
  int64_t peak = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iterations; ++i) {
    const int64_t before = CountingAllocator::live();
    CountingAllocator::reset_peak();
    learner.step();
    peak = std::max(peak, CountingAllocator::peak() - before);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const nlohmann::json out = {{"impl", "tandem"},
                              {"algorithm", cfg.meta.algorithm},
                              {"inner_steps", cfg.meta.inner_steps},
                              {"threads", threads},
                              {"iterations_per_s", iterations / seconds},
                              {"peak_bytes", peak}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
