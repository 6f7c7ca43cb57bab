// Google Benchmark of the input path that every training step pays for: parsing
// Criteo lines and reading a rank's slice of a global batch (block read, line
// split, parse, hashing). The anchor is the raw line split alone (memchr-speed).
// The [schema] path (data/schema.h) on the same lines: Criteo's schema (the fast
// path behind one branch), an explicit delimited schema of the same 40 columns,
// and `generate --format csv` lines (decimals, hashed strings, a multi-hot list).
//   build/bin/data_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tandem/data/criteo.h"
#include "tandem/data/dataset.h"
#include "tandem/data/generator.h"
#include "tandem/data/loader.h"
#include "tandem/data/schema.h"

namespace {

namespace td = tandem::data;

// 50,000 generated rows in `format` (tsv or csv), written once per run.
std::string generated(const std::string& format) {
  td::GenerateOptions o;
  o.rows = 50000;
  o.seed = 3;
  o.out = (std::filesystem::temp_directory_path() / ("tandem-data-bench." + format)).string();
  o.format = format;
  td::generate(o);
  return o.out;
}

const std::string& sample_file() {
  static const std::string path = generated("tsv");
  return path;
}

const std::string& sample_csv() {
  static const std::string path = generated("csv");
  return path;
}

std::vector<std::string> lines_of(const std::string& path, bool skip_header) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  if (skip_header) lines.erase(lines.begin());
  return lines;
}

std::vector<std::string> sample_lines() { return lines_of(sample_file(), false); }

const std::vector<int64_t> kTables(td::kNumCategorical, 100000);

// The Criteo columns as an explicit delimited schema: tab, label first, hex ids.
std::shared_ptr<const td::Schema> explicit_criteo() {
  td::SchemaSpec spec;
  spec.format = "delimited";
  spec.delimiter = "tab";
  spec.columns = td::kNumFields;
  spec.label = "1";
  for (int i = 0; i < td::kNumDense; ++i) spec.dense += std::to_string(2 + i) + ",";
  for (int i = 0; i < td::kNumCategorical; ++i)
    spec.categorical += std::to_string(2 + td::kNumDense + i) + ":hex,";
  return td::Schema::from_spec(spec)->bind();
}

// configs/csv_example.ini's schema, bound to the generated CSV's header.
std::shared_ptr<const td::Schema> csv_schema() {
  td::SchemaSpec spec;
  spec.format = "delimited";
  spec.header = true;
  spec.label = "label";
  spec.ignore = "id";
  for (int i = 0; i < td::kNumDense; ++i) spec.dense += fmt::format("i{},", i + 1);
  for (int i = 0; i < td::kNumCategorical; ++i) spec.categorical += fmt::format("c{},", i + 1);
  spec.categorical += "tags:sep=|:max=4:mean";
  std::ifstream in(sample_csv());
  std::string header;
  std::getline(in, header);
  return td::Schema::from_spec(spec)->bind(header, sample_csv());
}

void parse_with(benchmark::State& state, const td::Schema& schema,
                const std::vector<std::string>& lines) {
  std::vector<float> dense(static_cast<size_t>(schema.num_dense()));
  std::vector<int64_t> sparse(static_cast<size_t>(schema.num_slots()));
  const std::vector<int64_t> tables(static_cast<size_t>(schema.num_categorical()), 100000);
  float label;
  std::string why;
  size_t i = 0;
  for (auto _ : state) {
    const bool ok = schema.parse(lines[i++ % lines.size()], tables, dense.data(), sparse.data(),
                                 &label, &why, nullptr);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SchemaCriteo(benchmark::State& state) {
  parse_with(state, *td::Schema::criteo(), sample_lines());
}
BENCHMARK(BM_SchemaCriteo);

void BM_SchemaDelimitedSameColumns(benchmark::State& state) {
  parse_with(state, *explicit_criteo(), sample_lines());
}
BENCHMARK(BM_SchemaDelimitedSameColumns);

void BM_SchemaCsvDecimalsAndStrings(benchmark::State& state) {
  parse_with(state, *csv_schema(), lines_of(sample_csv(), true));
}
BENCHMARK(BM_SchemaCsvDecimalsAndStrings);

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

// The same through configs/csv_example.ini's schema on the generated CSV.
void BM_LoaderBatchCsv(benchmark::State& state) {
  td::IndexOptions o{1024, true};
  o.schema = csv_schema();
  td::Loader loader(td::Dataset::index(sample_csv(), o),
                    std::vector<int64_t>(td::kNumCategorical + 1, 100000),
                    td::LoaderOptions{1, true, state.range(0), 0, 1});
  int64_t step = 0;
  for (auto _ : state) {
    const td::Batch b = loader.batch(0, step++ % loader.steps_per_epoch());
    benchmark::DoNotOptimize(b.labels.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_LoaderBatchCsv)->Arg(2048);

}  // namespace

BENCHMARK_MAIN();
