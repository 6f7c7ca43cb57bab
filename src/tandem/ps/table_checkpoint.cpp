#include "tandem/ps/table_checkpoint.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <vector>

#include "tandem/ckpt/sharded.h"
#include "tandem/nn/dlrm.h"
#include "tandem/util/error.h"

namespace tandem::ps {
namespace {

std::string table_entry(const char* name) { return fmt::format("{}.{}", nn::kTablesModule, name); }

const at::Tensor& entry(const std::map<std::string, at::Tensor>& m, const std::string& name,
                        const std::string& file) {
  const auto it = m.find(name);
  if (it == m.end()) throw DataError(fmt::format("{}: no '{}' in the checkpoint", file, name));
  return it->second;
}

// The table sizes a shard was saved with, checked against `expected` (if given).
std::vector<int64_t> shard_table_rows(const std::map<std::string, at::Tensor>& shard,
                                      const std::string& file,
                                      const std::vector<int64_t>* expected) {
  const at::Tensor t = entry(shard, "table_rows", file).to(at::kLong).contiguous();
  std::vector<int64_t> rows(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  if (expected && rows != *expected)
    throw DataError(fmt::format(
        "model.embedding_rows: {} holds tables of other sizes than configured ({} tables, the "
        "first with {} rows; configured {} tables, the first with {})",
        file, rows.size(), rows.empty() ? 0 : rows[0], expected->size(),
        expected->empty() ? 0 : (*expected)[0]));
  return rows;
}

void check_dim(const at::Tensor& rows, int64_t dim, const std::string& file) {
  if (rows.dim() != 2 || rows.size(1) != dim)
    throw DataError(fmt::format("model.embedding_dim: {} holds rows of width {}, configured {}",
                                file, rows.dim() == 2 ? rows.size(1) : -1, dim));
}

// Calls fn(table, rows, weight, state) for every table part of every shard of the
// sharded checkpoint at `path`, one shard in memory at a time.
template <class F>
void for_each_part(const std::string& path, bool locking, const std::vector<int64_t>* expected,
                   F&& fn) {
  const int k = ckpt::shard_count(path);
  for (int s = 0; s < k; ++s) {
    const std::string file = ckpt::shard_path(path, s, k);
    const std::map<std::string, at::Tensor> shard = ckpt::read_shard(path, s, k, locking);
    const std::vector<int64_t> rows = shard_table_rows(shard, file, expected);
    for (size_t t = 0; t < rows.size(); ++t)
      fn(static_cast<int64_t>(t), rows, entry(shard, fmt::format("rows/{}", t), file),
         entry(shard, fmt::format("weight/{}", t), file),
         entry(shard, fmt::format("state/{}", t), file), file);
  }
}

}  // namespace

std::map<std::string, at::Tensor> shard_tensors(const RowSharding& sh, int server,
                                                const at::Tensor& weight, const at::Tensor& state) {
  std::map<std::string, at::Tensor> out;
  out["table_rows"] = at::tensor(sh.table_rows(), at::kLong);
  for (int64_t t = 0; t < sh.tables(); ++t) {
    const int64_t first = sh.table_offset(server, t), n = sh.rows_on(server, t);
    out[fmt::format("rows/{}", t)] = sh.rows_of(server, t);
    out[fmt::format("weight/{}", t)] = weight.narrow(0, first, n);
    out[fmt::format("state/{}", t)] = state.narrow(0, first, n);
  }
  return out;
}

void load_shard(const std::string& path, const RowSharding& sh, int server, at::Tensor& weight,
                at::Tensor& state, bool locking) {
  const int64_t dim = weight.size(1);
  int64_t filled = 0;
  if (ckpt::read_header(path, locking).table_shards > 0) {
    // Saved by servers: keep the rows that are this server's now.
    for_each_part(path, locking, &sh.table_rows(),
                  [&](int64_t t, const std::vector<int64_t>&, const at::Tensor& rows,
                      const at::Tensor& w, const at::Tensor& st, const std::string& file) {
                    check_dim(w, dim, file);
                    const at::Tensor ids = rows.to(at::kLong).contiguous();
                    const int64_t* r = ids.data_ptr<int64_t>();
                    std::vector<int64_t> picked, slots;
                    for (int64_t i = 0; i < ids.numel(); ++i) {
                      const RowSharding::Place p = sh.place(t, r[i]);
                      if (p.server != server) continue;
                      picked.push_back(i);
                      slots.push_back(p.slot);
                    }
                    const at::Tensor from = at::tensor(picked, at::kLong),
                                     to = at::tensor(slots, at::kLong);
                    weight.index_copy_(0, to, w.index_select(0, from));
                    state.index_copy_(0, to, st.index_select(0, from));
                    filled += static_cast<int64_t>(picked.size());
                  });
  } else {
    // A replicated checkpoint: this server's rows of the whole tables.
    const ckpt::State s = ckpt::read(path, locking);
    const at::Tensor& full = entry(s.params, table_entry("weight"), path);
    const at::Tensor& full_state = entry(s.buffers, table_entry("rowwise_state"), path);
    check_dim(full, dim, path);
    int64_t first = 0;
    for (int64_t t = 0; t < sh.tables(); ++t) {
      const int64_t rows = sh.table_rows()[t], n = sh.rows_on(server, t);
      if (first + rows > full.size(0) || full_state.size(0) != full.size(0))
        throw DataError(fmt::format("model.embedding_rows: {} holds {} table rows, configured more",
                                    path, full.size(0)));
      const at::Tensor mine = sh.rows_of(server, t) + first;
      weight.narrow(0, sh.table_offset(server, t), n).copy_(full.index_select(0, mine));
      state.narrow(0, sh.table_offset(server, t), n).copy_(full_state.index_select(0, mine));
      filled += n;
      first += rows;
    }
    if (first != full.size(0))
      throw DataError(fmt::format("model.embedding_rows: {} holds {} table rows, configured {}",
                                  path, full.size(0), first));
  }
  if (filled != sh.rows_on(server))
    throw DataError(fmt::format("{}: holds {} of server {}'s {} rows", path, filled, server,
                                sh.rows_on(server)));
}

void complete_tables(ckpt::State& s, const std::string& path, bool locking) {
  if (s.table_shards == 0) return;
  at::Tensor weight, state;
  std::vector<int64_t> table_rows, first;
  int64_t filled = 0;
  for_each_part(
      path, locking, nullptr,
      [&](int64_t t, const std::vector<int64_t>& rows, const at::Tensor& ids, const at::Tensor& w,
          const at::Tensor& st, const std::string& file) {
        if (!weight.defined()) {
          table_rows = rows;
          int64_t total = 0;
          for (int64_t r : rows) {
            first.push_back(total);
            total += r;
          }
          weight = at::zeros({total, w.size(1)}, w.options());
          state = at::zeros({total}, st.options());
        }
        if (rows != table_rows)
          throw DataError(fmt::format("{}: tables of other sizes than its first shard's", file));
        weight.index_copy_(0, ids.to(at::kLong) + first[t], w);
        state.index_copy_(0, ids.to(at::kLong) + first[t], st);
        filled += ids.numel();
      });
  if (!weight.defined() || filled != weight.size(0))
    throw DataError(fmt::format("{}: its shards hold {} of the tables' rows", path, filled));
  s.params[table_entry("weight")] = weight;
  s.buffers[table_entry("rowwise_state")] = state;
  s.buffers[table_entry("table_offsets")] = at::tensor(first, at::kLong);
  s.buffers[table_entry("table_sizes")] = at::tensor(table_rows, at::kLong);
  s.table_shards = 0;
}

}  // namespace tandem::ps
