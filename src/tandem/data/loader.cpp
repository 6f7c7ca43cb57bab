#include "tandem/data/loader.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <numeric>
#include <optional>
#include <random>
#include <string_view>

#include "tandem/data/criteo.h"
#include "tandem/util/error.h"
#include "tandem/util/hash.h"

namespace tandem::data {
namespace {

constexpr size_t kCachedBlocks = 4;
// Fewer rows per parsing thread cost more in thread start-up than they save.
constexpr int64_t kMinRowsPerThread = 512;

}  // namespace

// One block's text, its line starts and (when shuffling) its row permutation.
struct Loader::Cached {
  size_t block = 0;
  int64_t epoch = -1;
  std::string text;
  std::vector<int64_t> valid_line_start;  ///< start of each valid row's line
  std::vector<int64_t> valid_line_no;     ///< its 1-based line number in the file
  std::vector<int64_t> perm;              ///< epoch position in block -> valid row
};

Loader::Loader(Dataset dataset, std::vector<int64_t> table_rows, LoaderOptions options)
    : ds_(std::move(dataset)), table_rows_(std::move(table_rows)), opt_(options) {
  if (opt_.global_batch < 1) throw ConfigError("loader: global batch must be >= 1");
  if (opt_.threads < 1) throw ConfigError("loader: parsing threads must be >= 1");
  if (!ds_.schema) ds_.schema = Schema::criteo();
  if (!table_rows_.empty() && static_cast<int>(table_rows_.size()) != ds_.schema->num_categorical())
    throw ConfigError(fmt::format("model.embedding_rows: {} tables for {} categorical columns",
                                  table_rows_.size(), ds_.schema->num_categorical()));
  int64_t start = 0;
  for (const Block& b : ds_.blocks) {
    block_start_.push_back(start);
    start += b.rows;
  }
  files_.resize(ds_.files.size());
}

Loader::~Loader() = default;

int64_t Loader::steps_per_epoch() const {
  return (ds_.rows + opt_.global_batch - 1) / opt_.global_batch;
}

std::pair<int64_t, int64_t> Loader::slice(int64_t n, int rank, int world) {
  const int64_t base = n / world, extra = n % world;
  const int64_t first = rank * base + std::min<int64_t>(rank, extra);
  return {first, base + (rank < extra ? 1 : 0)};
}

void Loader::set_epoch(int64_t epoch) {
  if (epoch == epoch_) return;
  epoch_ = epoch;
  order_.resize(ds_.blocks.size());
  std::iota(order_.begin(), order_.end(), size_t{0});
  if (opt_.shuffle) {
    std::mt19937_64 rng(mix64(opt_.seed) ^ mix64(static_cast<uint64_t>(epoch) + 1));
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  prefix_.assign(order_.size() + 1, 0);
  for (size_t k = 0; k < order_.size(); ++k)
    prefix_[k + 1] = prefix_[k] + ds_.blocks[order_[k]].rows;
  cache_.clear();  // permutations depend on the epoch
}

Loader::Where Loader::locate(int64_t position) const {
  const auto it = std::upper_bound(prefix_.begin(), prefix_.end(), position);
  const size_t k = static_cast<size_t>(it - prefix_.begin()) - 1;
  return {order_[k], position - prefix_[k]};
}

std::shared_ptr<const Loader::Cached> Loader::load(size_t block) {
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if ((*it)->block == block) {
      cache_.splice(cache_.begin(), cache_, it);  // most recently used first
      return cache_.front();
    }
  }
  const Block& b = ds_.blocks[block];
  auto& file = files_[b.file];
  if (!file) {
    file = std::make_unique<std::ifstream>(ds_.files[b.file], std::ios::binary);
    if (!*file) throw DataError(fmt::format("'{}': cannot open", ds_.files[b.file]));
  }
  auto c = std::make_unique<Cached>();
  c->block = block;
  c->epoch = epoch_;
  c->text.resize(static_cast<size_t>(b.bytes));
  file->clear();
  file->seekg(b.offset);
  file->read(c->text.data(), b.bytes);
  if (file->gcount() != b.bytes)
    throw DataError(fmt::format("'{}': file shrank since it was indexed", ds_.files[b.file]));
  size_t bad = 0;
  int64_t start = 0;
  for (int64_t line = 0; start < b.bytes; ++line) {
    const size_t nl = c->text.find('\n', static_cast<size_t>(start));
    const int64_t end = nl == std::string::npos ? b.bytes : static_cast<int64_t>(nl) + 1;
    if (bad < b.bad.size() && b.bad[bad] == line) {
      ++bad;
    } else {
      c->valid_line_start.push_back(start);
      c->valid_line_no.push_back(b.first_line + line);
    }
    start = end;
  }
  if (static_cast<int64_t>(c->valid_line_start.size()) != b.rows)
    throw DataError(
        fmt::format("'{}':{}: file changed since it was indexed", ds_.files[b.file], b.first_line));
  c->perm.resize(static_cast<size_t>(b.rows));
  std::iota(c->perm.begin(), c->perm.end(), int64_t{0});
  if (opt_.shuffle) {
    std::mt19937_64 rng(mix64(opt_.seed ^ mix64(block + 0x1000)) ^
                        mix64(static_cast<uint64_t>(epoch_) + 7));
    std::shuffle(c->perm.begin(), c->perm.end(), rng);
  }
  cache_.push_front(std::move(c));
  if (cache_.size() > kCachedBlocks) cache_.pop_back();
  return cache_.front();
}

int64_t Loader::row_id(int64_t epoch, int64_t position) {
  set_epoch(epoch);
  const Where w = locate(position);
  return block_start_[w.block] + load(w.block)->perm[static_cast<size_t>(w.row)];
}

Batch Loader::batch(int64_t epoch, int64_t step) {
  const int64_t first = step * opt_.global_batch;
  const int64_t n = std::min(opt_.global_batch, ds_.rows - first);
  if (step < 0 || n <= 0)
    throw Error(fmt::format("loader: step {} is past the end of the epoch", step));
  const auto [begin, count] = slice(n, opt_.rank, opt_.world);
  Batch b = read(epoch, first + begin, count);
  b.global_size = n;
  return b;
}

Batch Loader::read(int64_t epoch, int64_t begin, int64_t count) {
  set_epoch(epoch);
  if (begin < 0 || count < 0 || begin + count > ds_.rows)
    throw Error(
        fmt::format("loader: rows [{}, {}) outside the {} rows", begin, begin + count, ds_.rows));
  // The rows lie in runs, one per block in the epoch's order. The blocks are loaded
  // here, by one thread (the cache is not shared); the parsing is split over threads.
  struct Run {
    std::shared_ptr<const Cached> block;
    int64_t row;    ///< first epoch position inside the block
    int64_t first;  ///< its row in the batch
  };
  std::vector<Run> runs;
  for (int64_t i = 0; i < count;) {
    const Where w = locate(begin + i);
    runs.push_back({load(w.block), w.row, i});
    i += std::min(count - i, ds_.blocks[w.block].rows - w.row);
  }
  Batch out;
  const auto host = at::TensorOptions().pinned_memory(opt_.pinned);
  const Schema& schema = *ds_.schema;
  const int64_t D = schema.num_dense(), C = schema.num_slots();
  out.dense = at::empty({count, D}, host.dtype(at::kFloat));
  out.sparse = at::empty({count, C}, host.dtype(at::kLong));
  out.labels = at::empty({count}, host.dtype(at::kFloat));
  out.global_size = count;
  float* dense = out.dense.data_ptr<float>();
  int64_t* sparse = out.sparse.data_ptr<int64_t>();
  float* labels = out.labels.data_ptr<float>();
  // Parses batch rows [lo, hi); the first bad row's error, if any.
  auto parse = [&](int64_t lo, int64_t hi) -> std::optional<std::pair<int64_t, std::string>> {
    if (lo >= hi) return std::nullopt;
    auto run = std::upper_bound(runs.begin(), runs.end(), lo,
                                [](int64_t i, const Run& r) { return i < r.first; }) - 1;
    std::string why;
    for (int64_t i = lo; i < hi; ++i) {
      if (run + 1 != runs.end() && (run + 1)->first == i) ++run;
      const Cached& c = *run->block;
      const size_t v = static_cast<size_t>(c.perm[static_cast<size_t>(run->row + i - run->first)]);
      const int64_t start = c.valid_line_start[v];
      const size_t nl = c.text.find('\n', static_cast<size_t>(start));
      const size_t end = nl == std::string::npos ? c.text.size() : nl;
      const std::string_view line(c.text.data() + start, end - static_cast<size_t>(start));
      if (!schema.parse(line, table_rows_, dense + i * D, sparse + i * C, labels + i, &why,
                        nullptr))
        return std::pair{i, fmt::format("{}:{}: {} (file changed since it was indexed)",
                                        ds_.files[ds_.blocks[c.block].file], c.valid_line_no[v],
                                        why)};
    }
    return std::nullopt;
  };
  const int64_t threads =
      std::clamp<int64_t>(count / kMinRowsPerThread, 1, static_cast<int64_t>(opt_.threads));
  std::vector<std::future<std::optional<std::pair<int64_t, std::string>>>> others;
  for (int64_t t = 1; t < threads; ++t)
    others.push_back(std::async(std::launch::async, parse, count * t / threads,
                                count * (t + 1) / threads));
  std::optional<std::pair<int64_t, std::string>> bad = parse(0, count / threads);
  for (auto& f : others)  // chunks in row order: the first bad row is reported
    if (auto b = f.get(); b && !bad) bad = std::move(b);
  if (bad) throw DataError(bad->second);
  return out;
}

Batch Batch::to(const at::Device& device) const {
  if (device.is_cpu()) return *this;
  const auto on = at::TensorOptions().device(device);
  return {dense.to(on, /*non_blocking=*/true), sparse.to(on, true), labels.to(on, true),
          global_size};
}

}  // namespace tandem::data
