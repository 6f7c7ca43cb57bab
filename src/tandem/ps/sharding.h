// Which parameter server holds each embedding row, and where in its shard.
//
// The rows of table t are first permuted by a keyed bijection of [0, rows_t) (a
// four-round Feistel network on the next even power of two, with cycle walking,
// keyed by t), then dealt round-robin: position p = perm_t(row) goes to server
// p % K, at slot p / K of that server's part of table t. So every server holds
// rows_t / K rows of each table (the first rows_t % K servers one more), whatever
// the ids look like: small consecutive ids, or ids in steps of K, spread like
// random ones. (Range partitioning, as in ps-lite, puts all small ids on one
// server.) A server stacks its parts of the tables in table order.
//
// The mapping is a pure function of (table rows, K, table, row): workers and
// servers compute it independently, and a checkpoint can be resharded to another K.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace tandem::ps {

class RowSharding {
 public:
  RowSharding(std::vector<int64_t> table_rows, int servers);

  int servers() const { return servers_; }
  int64_t tables() const { return static_cast<int64_t>(table_rows_.size()); }
  const std::vector<int64_t>& table_rows() const { return table_rows_; }

  /// The position of `row` in table t's permuted order, and back.
  int64_t position(int64_t table, int64_t row) const { return walk(table, row, false); }
  int64_t row_at(int64_t table, int64_t position) const { return walk(table, position, true); }

  int server_of(int64_t table, int64_t row) const {
    return static_cast<int>(position(table, row) % servers_);
  }
  /// Rows of table t on `server`, and the first slot of table t in its shard.
  int64_t rows_on(int server, int64_t table) const;
  int64_t table_offset(int server, int64_t table) const;
  /// All rows on `server`.
  int64_t rows_on(int server) const;

  /// Where (table, row) lives: its server and the slot in that server's shard.
  struct Place {
    int server;
    int64_t slot;
  };
  Place place(int64_t table, int64_t row) const;
  /// The global (table-local) rows of server `server`'s part of table t, in slot order.
  at::Tensor rows_of(int server, int64_t table) const;

 private:
  int64_t walk(int64_t table, int64_t x, bool inverse) const;

  std::vector<int64_t> table_rows_;
  int servers_;
  std::vector<int> half_bits_;                 ///< per table: the Feistel halves' width
  std::vector<std::vector<int64_t>> offsets_;  ///< [server][table] first slot
};

}  // namespace tandem::ps
