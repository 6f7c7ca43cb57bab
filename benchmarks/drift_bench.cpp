// What drift detection costs against reading the data it looks at:
//   build/bin/drift_bench [ROWS=500000] [ROUNDS=3]
// Generates ROWS Criteo-format rows (cardinality 100,000), fits the reference
// statistics on them, then times, interleaved, ROUNDS times each: one pass of the
// loader that only parses (the parser's rows/s, the anchor), and one drift()
// pass over the same rows (parsing plus counting in the reference's buckets, the
// counting on a helper thread while the next batch parses). One rank, all cores.
// Prints medians of the wall and the CPU time (all threads) of each pass, and the
// drift pass's overhead over the parse in both.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "tandem/comm/runtime.h"
#include "tandem/data/criteo.h"
#include "tandem/data/dataset.h"
#include "tandem/data/generator.h"
#include "tandem/data/loader.h"
#include "tandem/stats/drift.h"

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  auto& runtime = tandem::comm::Runtime::init(&argc, &argv);
  const int64_t rows = argc > 1 ? std::stoll(argv[1]) : 500000;
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 3;
  const int threads = runtime.set_threads(0);
  auto comm = runtime.make_communicator("single", {});
  const auto dir = std::filesystem::temp_directory_path() / "tandem-drift-bench";
  std::filesystem::create_directories(dir);
  tandem::data::GenerateOptions g;
  g.rows = rows;
  g.seed = 3;
  g.out = (dir / "data.tsv").string();
  tandem::data::generate(g);
  const std::vector<int64_t> tables(tandem::data::kNumCategorical, 100000);
  const auto loader = [&] {
    return tandem::data::Loader(tandem::data::Dataset::index(g.out, {1024, false}), tables,
                                tandem::data::LoaderOptions{0, false, 8192, 0, 1});
  };
  tandem::data::Loader fit_loader = loader();
  const tandem::stats::FeatureStats ref = tandem::stats::fit(fit_loader, *comm, {});
  std::vector<double> parse_s, drift_s, parse_cpu, drift_cpu;
  using Clock = std::chrono::steady_clock;
  for (int r = 0; r < rounds; ++r) {
    tandem::data::Loader a = loader();
    auto t = Clock::now();
    double cpu = cpu_seconds();
    int64_t seen = 0;
    for (int64_t s = 0; s < a.steps_per_epoch(); ++s) seen += a.batch(0, s).size();
    parse_s.push_back(std::chrono::duration<double>(Clock::now() - t).count());
    parse_cpu.push_back(cpu_seconds() - cpu);
    tandem::data::Loader b = loader();
    t = Clock::now();
    cpu = cpu_seconds();
    const tandem::stats::DriftReport report = tandem::stats::drift(b, *comm, ref, {});
    drift_s.push_back(std::chrono::duration<double>(Clock::now() - t).count());
    drift_cpu.push_back(cpu_seconds() - cpu);
    if (seen != report.rows) return 1;
  }
  const double p = median(parse_s), d = median(drift_s);
  const double pc = median(parse_cpu), dc = median(drift_cpu);
  std::printf("%ld rows, %d thread(s), %d rounds (medians)\n", static_cast<long>(rows), threads,
              rounds);
  std::printf("| pass | seconds | rows/s | vs parsing | CPU seconds | vs parsing |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  std::printf("| parse only (anchor) | %.3f | %.0f | 1.00x | %.3f | 1.00x |\n", p, rows / p, pc);
  std::printf("| drift (parse + count) | %.3f | %.0f | %.2fx | %.3f | %.2fx |\n", d, rows / d,
              d / p, dc, dc / pc);
  std::printf("drift detection costs %.1f%% on top of reading the rows (%.1f%% in CPU time)\n",
              100 * (d - p) / p, 100 * (dc - pc) / pc);
  std::filesystem::remove_all(dir);
  return 0;
}
