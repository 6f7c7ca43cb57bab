#include "tandem/ps/sharding.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "tandem/util/error.h"
#include "tandem/util/hash.h"

namespace tandem::ps {
namespace {

constexpr int kRounds = 4;

uint64_t round_key(int64_t table, int round, uint64_t half) {
  return mix64(static_cast<uint64_t>(table) * 0x100000001b3ULL +
               static_cast<uint64_t>(round) * 0x9e37ULL + (half << 8));
}

// One pass of the balanced Feistel network on 2 * bits bits, or its inverse.
uint64_t feistel(uint64_t x, int bits, int64_t table, bool inverse) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t left = x >> bits, right = x & mask;
  if (!inverse) {
    for (int r = 0; r < kRounds; ++r) {
      const uint64_t next = left ^ (round_key(table, r, right) & mask);
      left = right;
      right = next;
    }
  } else {
    for (int r = kRounds - 1; r >= 0; --r) {
      const uint64_t prev = right ^ (round_key(table, r, left) & mask);
      right = left;
      left = prev;
    }
  }
  return (left << bits) | right;
}

}  // namespace

RowSharding::RowSharding(std::vector<int64_t> table_rows, int servers)
    : table_rows_(std::move(table_rows)), servers_(servers) {
  if (servers_ < 1) throw ConfigError(fmt::format("ps: {} servers; need at least 1", servers_));
  for (int64_t rows : table_rows_) {
    if (rows < 1 || rows >= (int64_t{1} << 40))
      throw ConfigError(
          fmt::format("ps: a table of {} rows; the parameter server takes 1 to 2^40", rows));
    int bits = 1;
    while (bits < 31 && (uint64_t{1} << (2 * bits)) < static_cast<uint64_t>(rows)) ++bits;
    half_bits_.push_back(bits);
  }
  offsets_.assign(servers_, std::vector<int64_t>(table_rows_.size() + 1, 0));
  for (int s = 0; s < servers_; ++s)
    for (size_t t = 0; t < table_rows_.size(); ++t)
      offsets_[s][t + 1] = offsets_[s][t] + rows_on(s, static_cast<int64_t>(t));
}

int64_t RowSharding::walk(int64_t table, int64_t x, bool inverse) const {
  // Cycle walking: the network permutes [0, 4^bits); stepping again from a value
  // past the table lands back inside it, and the walk is a permutation of [0, rows)
  // (walking the inverse network undoes it).
  const int bits = half_bits_[table];
  uint64_t p = static_cast<uint64_t>(x);
  do p = feistel(p, bits, table, inverse);
  while (p >= static_cast<uint64_t>(table_rows_[table]));
  return static_cast<int64_t>(p);
}

int64_t RowSharding::rows_on(int server, int64_t table) const {
  const int64_t rows = table_rows_[table];
  return rows / servers_ + (server < rows % servers_ ? 1 : 0);
}

int64_t RowSharding::table_offset(int server, int64_t table) const {
  return offsets_[server][table];
}

int64_t RowSharding::rows_on(int server) const { return offsets_[server].back(); }

RowSharding::Place RowSharding::place(int64_t table, int64_t row) const {
  const int64_t p = position(table, row);
  const int server = static_cast<int>(p % servers_);
  return {server, offsets_[server][table] + p / servers_};
}

at::Tensor RowSharding::rows_of(int server, int64_t table) const {
  const int64_t n = rows_on(server, table);
  at::Tensor out = at::empty({n}, at::kLong);
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t k = 0; k < n; ++k) o[k] = row_at(table, k * servers_ + server);
  return out;
}

}  // namespace tandem::ps
