// Indexing, malformed-line policy, the held-out split, the generator, and the
// distributed loader's promise: every example exactly once per epoch for any
// world size, in an order fixed by (seed, epoch).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "tandem/data/criteo.h"
#include "tandem/data/dataset.h"
#include "tandem/data/generator.h"
#include "tandem/data/loader.h"
#include "tandem/util/error.h"

using namespace tandem::data;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("tandem-data-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string generated(const std::string& name, int64_t rows, uint64_t seed = 5) {
  GenerateOptions o;
  o.rows = rows;
  o.seed = seed;
  o.out = tmp(name);
  o.cardinalities = {50};
  generate(o);
  return o.out;
}

const std::vector<int64_t> kTables(kNumCategorical, 64);

TEST(Generator, IsDeterministicAndSplitsIntoFilesIdentically) {
  const std::string a = generated("a.tsv", 3000), b = generated("b.tsv", 3000);
  EXPECT_EQ(slurp(a), slurp(b));
  EXPECT_NE(slurp(a), slurp(generated("c.tsv", 3000, 6)));
  GenerateOptions o;
  o.rows = 3000;
  o.seed = 5;
  o.out = tmp("parts");
  o.files = 4;
  o.cardinalities = {50};
  const auto parts = generate(o);
  ASSERT_EQ(parts.size(), 4u);
  std::string joined;
  for (const auto& p : parts) joined += slurp(p);
  EXPECT_EQ(joined, slurp(a));
}

TEST(Generator, LabelsAreNotConstantAndSomeFieldsAreMissing) {
  const Dataset ds = Dataset::index(generated("d.tsv", 5000), {512, true});
  EXPECT_EQ(ds.rows, 5000);
  EXPECT_GT(ds.positives, 500);
  EXPECT_LT(ds.positives, 4500);
  EXPECT_NE(slurp(tmp("d.tsv")).find("\t\t"), std::string::npos);
}

TEST(Dataset, SkipsOrFailsOnMalformedLinesWithFileAndLine) {
  const std::string good = slurp(generated("g.tsv", 10));
  std::istringstream lines(good);
  std::string l, text;
  for (int i = 1; std::getline(lines, l); ++i) {
    text += l + "\n";
    if (i == 3) text += "1\tnot\tenough\n";  // line 4
  }
  const std::string path = tmp("bad.tsv");
  std::ofstream(path) << text;
  const Dataset ds = Dataset::index(path, {4, false, /*max_bad_fraction=*/1.0});
  EXPECT_EQ(ds.rows, 10);
  EXPECT_EQ(ds.malformed, 1);
  ASSERT_EQ(ds.malformed_examples.size(), 1u);
  EXPECT_NE(ds.malformed_examples[0].find(path + ":4: expected 40"), std::string::npos);
  try {
    Dataset::index(path, {4, true});
    FAIL();
  } catch (const tandem::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":4:"), std::string::npos) << e.what();
  }
  // The skipped line is invisible to the loader: all 10 good rows come back.
  Loader loader(ds, kTables, LoaderOptions{1, true, 10, 0, 1});
  EXPECT_EQ(loader.batch(0, 0).size(), 10);
}

// Lines of a generated file, with `edit(line number, fields)` applied to each.
static std::string edited(const std::string& name, int rows,
                          const std::function<void(int, std::vector<std::string>&)>& edit) {
  std::istringstream lines(slurp(generated(name, rows)));
  std::string l, text;
  for (int no = 1; std::getline(lines, l); ++no) {
    std::vector<std::string> f;
    std::istringstream fields(l);
    for (std::string x; std::getline(fields, x, '\t');) f.push_back(x);
    while (f.size() < 40) f.emplace_back();  // trailing empty fields
    edit(no, f);
    for (size_t i = 0; i < f.size(); ++i) text += (i ? "\t" : "") + f[i];
    text += "\n";
  }
  const std::string path = tmp(name + ".edited");
  std::ofstream(path) << text;
  return path;
}

TEST(Dataset, TooManyMalformedLinesStopWithCountShareAndTheFirstThree) {
  // Lines 2, 5, 7 and 9 of 20 have a label that is not 0 or 1.
  const std::string path = edited("limits", 20, [](int no, std::vector<std::string>& f) {
    if (no == 2 || no == 5 || no == 7 || no == 9) f[0] = "7";
  });
  try {
    Dataset::index(path, {4, false});  // the default limit: 0.1 %
    FAIL();
  } catch (const tandem::DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("4 of 20 lines (20%) are malformed"), std::string::npos) << m;
    EXPECT_NE(m.find("data.max_bad_fraction = 0.001"), std::string::npos) << m;
    for (const char* line : {":2: label '7'", ":5: label", ":7: label"})
      EXPECT_NE(m.find(path + line), std::string::npos) << m;
    EXPECT_EQ(m.find(path + ":9:"), std::string::npos) << m;  // three, not all
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;          // one line
  }
  EXPECT_EQ(Dataset::index(path, {4, false, 0.2}).rows, 16);  // 20 % is not more than 20 %
  EXPECT_THROW(Dataset::index(path, {4, false, 0.19}), tandem::DataError);
  try {
    Dataset::index(path, {4, false, 1.0, 3});
    FAIL();
  } catch (const tandem::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("data.max_bad_lines = 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Dataset::index(path, {4, false, 1.0, 4}).malformed, 4);
  // A clean file passes the strictest limits.
  EXPECT_EQ(Dataset::index(generated("clean", 30), {4, false, 0.0, 0}).rows, 30);
}

TEST(Dataset, NegativeDenseValuesAreCountedPerColumnAndReported) {
  // I2 is negative on lines 3 and 8, I13 on line 6; log1p(max(x, 0)) reads them as 0.
  const std::string path = edited("negative", 10, [](int no, std::vector<std::string>& f) {
    if (no == 3 || no == 8) f[2] = "-5";
    if (no == 6) f[13] = "-1";
  });
  const Dataset ds = Dataset::index(path, {4, true});
  EXPECT_EQ(ds.rows, 10);
  for (int i = 0; i < tandem::data::kNumDense; ++i)
    EXPECT_EQ(ds.negative[i], i == 1 ? 2 : i == 12 ? 1 : 0) << "I" << i + 1;
  EXPECT_EQ(ds.first_negative[1], path + ":3");
  EXPECT_EQ(ds.first_negative[12], path + ":6");
  const std::vector<std::string> said = ds.findings("train");
  ASSERT_EQ(said.size(), 2u);
  EXPECT_NE(said[0].find("I2 has 2 negative value(s) in train"), std::string::npos) << said[0];
  EXPECT_NE(said[0].find("first: " + path + ":3"), std::string::npos) << said[0];
  EXPECT_NE(said[1].find("I13 has 1 negative value(s)"), std::string::npos) << said[1];
  // Merged datasets add their counts and keep the first occurrence.
  const Dataset both = Dataset::merged({ds, ds});
  EXPECT_EQ(both.negative[1], 4);
  EXPECT_EQ(both.first_negative[1], path + ":3");
  // The parser reads the value as log1p(0) = 0 and flags it.
  float dense[tandem::data::kNumDense], label;
  std::string why;
  uint32_t negative = 0;
  std::string line = "1\t-3" + std::string(12, '\t') + std::string(26, '\t');
  ASSERT_TRUE(tandem::data::parse_line(line, {}, dense, nullptr, &label, &why, &negative)) << why;
  EXPECT_EQ(dense[0], 0.0f);
  EXPECT_EQ(negative, 1u);
}

TEST(Dataset, VeryLongLinesAreIndexedAndReadBack) {
  // A valid line made 2 MB long by a long categorical hex value is malformed; a
  // valid line after it is still found and read at the right offset.
  std::istringstream lines(slurp(generated("long-src.tsv", 3)));
  std::string l1, l2, l3;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  const std::string path = tmp("long.tsv");
  std::ofstream(path) << l1 << "\n" << l2 << std::string(2 << 20, 'f') << "\n" << l3 << "\n";
  const Dataset ds = Dataset::index(path, {2, false, /*max_bad_fraction=*/1.0});
  EXPECT_EQ(ds.rows, 2);
  EXPECT_EQ(ds.malformed, 1);
  EXPECT_NE(ds.malformed_examples[0].find(path + ":2: field C26"), std::string::npos);
  Loader loader(ds, kTables, LoaderOptions{1, false, 2, 0, 1});
  Loader plain(Dataset::index(tmp("long-src.tsv"), {2, true}), kTables,
               LoaderOptions{1, false, 3, 0, 1});
  const Batch got = loader.batch(0, 0), want = plain.batch(0, 0);
  EXPECT_TRUE(at::equal(got.sparse[0], want.sparse[0]));
  EXPECT_TRUE(at::equal(got.sparse[1], want.sparse[2]));
}

TEST(Dataset, EmptyFilesCrlfAndMissingPaths) {
  const std::string empty = tmp("empty.tsv");
  std::ofstream(empty).close();
  EXPECT_EQ(Dataset::index(empty, {8, true}).rows, 0);
  std::string crlf;
  std::istringstream lines(slurp(generated("crlf-src.tsv", 20)));
  for (std::string l; std::getline(lines, l);) crlf += l + "\r\n";
  const std::string path = tmp("crlf.tsv");
  std::ofstream(path, std::ios::binary) << crlf;
  const Dataset ds = Dataset::index(path, {8, true});
  EXPECT_EQ(ds.rows, 20);
  Loader loader(ds, kTables, LoaderOptions{1, false, 20, 0, 1});
  const Batch b = loader.batch(0, 0);
  Loader plain(Dataset::index(tmp("crlf-src.tsv"), {8, true}), kTables,
               LoaderOptions{1, false, 20, 0, 1});
  EXPECT_TRUE(at::equal(b.sparse, plain.batch(0, 0).sparse));
  EXPECT_THROW(Dataset::index(tmp("does-not-exist.tsv"), {8, true}), tandem::DataError);
}

TEST(Dataset, SplitIsDeterministicAndDisjoint) {
  const Dataset ds = Dataset::index(generated("s.tsv", 1000), {50, true});
  const auto [train, held] = ds.split(0.2);
  EXPECT_EQ(held.blocks.size(), 4u);
  EXPECT_EQ(train.rows + held.rows, 1000);
  EXPECT_EQ(train.positives + held.positives, ds.positives);
  const auto [train2, held2] = ds.split(0.2);
  for (size_t i = 0; i < held.blocks.size(); ++i)
    EXPECT_EQ(held.blocks[i].offset, held2.blocks[i].offset);
}

// Every example exactly once per epoch, for world sizes 1 to 4, with a short last
// batch, and the global batches identical whatever the world size.
TEST(Loader, EveryExampleExactlyOncePerEpochForAnyWorldSize) {
  const Dataset ds = Dataset::index(generated("e.tsv", 1003), {64, true});
  const int64_t batch = 60;
  std::vector<std::vector<int64_t>> reference;  // world 1's global batches
  for (int world = 1; world <= 4; ++world) {
    const int64_t global = batch - batch % world;  // divisible, as the config demands
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      std::multiset<int64_t> seen;
      std::vector<std::unique_ptr<Loader>> ranks;
      for (int r = 0; r < world; ++r)
        ranks.push_back(
            std::make_unique<Loader>(ds, kTables, LoaderOptions{9, true, global, r, world}));
      const int64_t steps = ranks[0]->steps_per_epoch();
      EXPECT_EQ(steps, (1003 + global - 1) / global);
      for (int64_t s = 0; s < steps; ++s) {
        int64_t rows = 0;
        for (int r = 0; r < world; ++r) {
          const Batch b = ranks[r]->batch(epoch, s);
          rows += b.size();
          const auto [first, count] = Loader::slice(b.global_size, r, world);
          for (int64_t i = 0; i < count; ++i)
            seen.insert(ranks[r]->row_id(epoch, s * global + first + i));
        }
        EXPECT_EQ(rows, std::min(global, 1003 - s * global));
      }
      std::set<int64_t> unique(seen.begin(), seen.end());
      EXPECT_EQ(seen.size(), 1003u) << "world " << world << " epoch " << epoch;
      EXPECT_EQ(unique.size(), 1003u) << "world " << world << " epoch " << epoch;
    }
  }
}

TEST(Loader, ShuffleIsDeterministicPerSeedAndEpoch) {
  const Dataset ds = Dataset::index(generated("f.tsv", 500), {32, true});
  Loader a(ds, kTables, LoaderOptions{3, true, 100, 0, 1});
  Loader b(ds, kTables, LoaderOptions{3, true, 100, 0, 1});
  Loader c(ds, kTables, LoaderOptions{4, true, 100, 0, 1});
  std::vector<int64_t> e0, e0b, e1, seed4;
  for (int64_t p = 0; p < 500; ++p) {
    e0.push_back(a.row_id(0, p));
    seed4.push_back(c.row_id(0, p));
  }
  for (int64_t p = 0; p < 500; ++p) e1.push_back(a.row_id(1, p));
  for (int64_t p = 0; p < 500; ++p) e0b.push_back(b.row_id(0, p));
  EXPECT_EQ(e0, e0b);
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, seed4);
  // Missing dense values are NaN, which equal() would call different: compare bits.
  const at::Tensor da = a.batch(0, 2).dense, db = b.batch(0, 2).dense;
  EXPECT_TRUE(at::equal(da.view(at::kInt), db.view(at::kInt)));
  Loader ordered(ds, kTables, LoaderOptions{3, false, 100, 0, 1});
  for (int64_t p = 0; p < 500; ++p) EXPECT_EQ(ordered.row_id(0, p), p);
}

TEST(Loader, ParallelParsingReadsTheSameRowsAndReportsTheFirstBadOne) {
  // 100-row blocks: a 3000-row batch spans about 31 of them, more than are cached.
  const std::string path = generated("par.tsv", 5000);
  const Dataset ds = Dataset::index(path, {100, true});
  Loader one(ds, kTables, LoaderOptions{8, true, 3000, 0, 1, 1});
  Loader many(ds, kTables, LoaderOptions{8, true, 3000, 0, 1, 8});
  for (int64_t epoch : {0, 1})
    for (int64_t step : {0, 1}) {  // step 1 is the short last batch (2000 rows)
      const Batch a = one.batch(epoch, step), b = many.batch(epoch, step);
      EXPECT_TRUE(at::equal(a.sparse, b.sparse));
      EXPECT_TRUE(at::equal(a.labels, b.labels));
      EXPECT_TRUE(at::equal(a.dense.view(at::kInt), b.dense.view(at::kInt)));
    }
  // Two lines go bad after indexing (same length, so the index still fits): every
  // thread count reports the one that comes first in the batch, by file and line.
  std::string text = slurp(path);
  size_t line = 1;
  for (size_t i = 0; i < text.size(); ++i)
    if (i == 0 || text[i - 1] == '\n') {
      if (line == 1200 || line == 4100) text[i] = 'x';  // the label
      ++line;
    }
  std::ofstream(path, std::ios::binary) << text;
  auto error = [&](int threads) {
    Loader l(ds, kTables, LoaderOptions{8, true, 5000, 0, 1, threads});
    try {
      l.batch(0, 0);
    } catch (const tandem::DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string first = error(1);
  EXPECT_TRUE(first.find(path + ":1200:") != std::string::npos ||
              first.find(path + ":4100:") != std::string::npos)
      << first;
  EXPECT_EQ(error(8), first);
  EXPECT_THROW(Loader(ds, kTables, LoaderOptions{8, true, 10, 0, 1, 0}), tandem::ConfigError);
}

}  // namespace
