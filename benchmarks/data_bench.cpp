// Google Benchmark of the input path that every training step pays for: parsing
// Criteo lines and reading a rank's slice of a global batch (block read, line
// split, parse, hashing). The anchor is the raw line split alone (memchr-speed).
//   build/bin/data_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tandem/data/criteo.h"
#include "tandem/data/dataset.h"
#include "tandem/data/generator.h"
#include "tandem/data/loader.h"

namespace {

namespace td = tandem::data;

const std::string& sample_file() {
  static const std::string path = [] {
    const auto p = std::filesystem::temp_directory_path() / "tandem-data-bench.tsv";
    td::GenerateOptions o;
    o.rows = 50000;
    o.seed = 3;
    o.out = p.string();
    td::generate(o);
    return p.string();
  }();
  return path;
}

std::vector<std::string> sample_lines() {
  std::ifstream in(sample_file());
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

const std::vector<int64_t> kTables(td::kNumCategorical, 100000);

// Anchor: find the 39 tabs of each line, nothing more.
void BM_SplitOnly(benchmark::State& state) {
  const auto lines = sample_lines();
  size_t i = 0, tabs = 0;
  for (auto _ : state) {
    const std::string& l = lines[i++ % lines.size()];
    for (size_t p = l.find('\t'); p != std::string::npos; p = l.find('\t', p + 1)) ++tabs;
    benchmark::DoNotOptimize(tabs);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SplitOnly);

void BM_ParseLine(benchmark::State& state) {
  const auto lines = sample_lines();
  float dense[td::kNumDense], label;
  int64_t sparse[td::kNumCategorical];
  std::string why;
  size_t i = 0;
  for (auto _ : state) {
    const bool ok = td::parse_line(lines[i++ % lines.size()], kTables, dense, sparse, &label, &why);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseLine);

// A rank's slice of a shuffled global batch: arg 0 = global batch, arg 1 = ranks.
void BM_LoaderBatch(benchmark::State& state) {
  const td::Dataset ds = td::Dataset::index(sample_file(), {1024, true});
  td::Loader loader(
      ds, kTables, td::LoaderOptions{1, true, state.range(0), 0, static_cast<int>(state.range(1))});
  int64_t step = 0;
  for (auto _ : state) {
    const td::Batch b = loader.batch(0, step++ % loader.steps_per_epoch());
    benchmark::DoNotOptimize(b.labels.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) / state.range(1));
}
BENCHMARK(BM_LoaderBatch)->Args({256, 1})->Args({2048, 1})->Args({2048, 2});

}  // namespace

BENCHMARK_MAIN();
