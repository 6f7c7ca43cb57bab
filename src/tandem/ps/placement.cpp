#include "tandem/ps/placement.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <optional>

#include "tandem/data/schema.h"
#include "tandem/util/error.h"

namespace tandem::ps {
namespace {

constexpr int64_t kTableKey = int64_t{1} << 40;  // rows per table stay below it

class Replicated final : public EmbeddingPlacement {
 public:
  explicit Replicated(nn::TableBatchedEmbedding tables) : tables_(std::move(tables)) {}
  at::Tensor prepare(const at::Tensor& sparse) override { return sparse; }
  // The learning rate is already set (a fused update needs it during backward).
  void update(double) override { tables_->apply_gradient(); }

 private:
  nn::TableBatchedEmbedding tables_;
};

class Sharded final : public EmbeddingPlacement {
 public:
  Sharded(nn::TableBatchedEmbedding tables, ParameterServer& ps)
      : tables_(std::move(tables)), ps_(ps) {
    if (!tables_->remote()) throw Error("ps: the embedding module must have remote tables");
    const auto& rows = ps_.sharding().table_rows();
    slot_table_ = nn::slot_tables(tables_->bag_sizes());
    limit_ = at::tensor(rows, at::kLong).index_select(0, slot_table_).view({1, -1});
  }

  at::Tensor prepare(const at::Tensor& sparse) override {
    std::optional<Lookup> current;
    if (next_ && next_->sparse.sizes() == sparse.sizes() && at::equal(next_->sparse, sparse))
      current.swap(next_);
    if (next_) {  // fetched for a batch that did not come (an evaluation came first)
      ps_.discard(next_->request);
      next_.reset();
    }
    if (!current) {
      current = locate(sparse);
      current->request = ps_.request(current->servers, current->slots, ps_.clock());
    }
    tables_->set_working_rows(ps_.collect(current->request), current->counts);
    servers_ = current->servers;
    slots_ = current->slots;
    return current->ids;
  }

  // In lock step a pull waits for the step's pushes anyway.
  bool prefetches() const override { return !ps_.lockstep(); }

  void prefetch(const at::Tensor& next_sparse) override {
    if (next_) ps_.discard(next_->request);
    next_ = locate(next_sparse);
    next_->request = ps_.request(next_->servers, next_->slots, ps_.clock() + 1);
  }

  // The tables' gradient is this worker's own (the Reducer does not touch it).
  void backward_done(double lr) override {
    const at::Tensor& g = tables_->weight.grad();
    at::Tensor rows = at::empty({0}, at::kLong), values = at::empty({0, tables_->dim()});
    if (g.defined()) {
      if (!g.is_sparse()) throw Error("ps: expected the tables' sparse gradient");
      const at::Tensor c = g.coalesce();
      rows = c.indices().view(-1);
      values = c.values();
    }
    ps_.push(servers_.index_select(0, rows), slots_.index_select(0, rows), values, lr);
    tables_->weight.mutable_grad() = at::Tensor();
  }

 private:
  // A batch's distinct rows: where they live, and the batch's ids into them.
  struct Lookup {
    at::Tensor sparse;            ///< the batch's ids, [n, slots]
    at::Tensor servers, slots;    ///< [distinct rows]
    std::vector<int64_t> counts;  ///< distinct rows per table
    at::Tensor ids;               ///< table-local ids into the working rows
    int64_t request = -1;         ///< the pull asked for them
  };

  Lookup locate(const at::Tensor& sparse) const {
    const RowSharding& sh = ps_.sharding();
    const int64_t n = sparse.size(0), tables = sh.tables(), slots = slot_table_.numel();
    if (sparse.dim() != 2 || sparse.size(1) != slots)
      throw Error(fmt::format("ps: expected [n, {}] ids", slots));
    // An empty multi-hot slot (-1) asks for row 0 of its table, which it will look up
    // with weight 0 (see TableBatchedEmbedding::forward), and stays -1.
    const at::Tensor given = sparse.to(at::kLong).contiguous();
    const at::Tensor empty = given == data::Schema::kNoId;
    const at::Tensor ids = given.masked_fill(empty, 0);
    const at::Tensor bad = (ids < 0).logical_or(ids >= limit_);
    if (bad.any().item<bool>()) {
      const at::Tensor where = bad.nonzero()[0];
      const int64_t b = where[0].item<int64_t>(), s = where[1].item<int64_t>();
      const int64_t t = slot_table_[s].item<int64_t>();
      throw DataError(fmt::format(
          "embedding: index {} out of range for table {} ({} rows), sample {} of the batch",
          ids[b][s].item<int64_t>(), t, sh.table_rows()[t], b));
    }
    // One pass over all tables: key = (table, row), whose sorted distinct values
    // group the rows by table, ascending.
    const at::Tensor keys = ids + slot_table_.view({1, slots}) * kTableKey;
    auto [unique, inverse] = nn::unique_inverse(keys);
    const at::Tensor counts_t = at::bincount(at::floor_divide(unique, kTableKey), {}, tables);
    const at::Tensor first = counts_t.cumsum(0) - counts_t;
    Lookup l;
    l.sparse = sparse;
    const int64_t u = unique.numel();
    l.servers = at::empty({u}, at::kLong);
    l.slots = at::empty({u}, at::kLong);
    const int64_t* k = unique.data_ptr<int64_t>();
    int64_t* sv = l.servers.data_ptr<int64_t>();
    int64_t* sl = l.slots.data_ptr<int64_t>();
    for (int64_t i = 0; i < u; ++i) {
      const RowSharding::Place p = sh.place(k[i] / kTableKey, k[i] % kTableKey);
      sv[i] = p.server;
      sl[i] = p.slot;
    }
    l.counts.assign(counts_t.data_ptr<int64_t>(), counts_t.data_ptr<int64_t>() + tables);
    l.ids = (inverse.view({n, slots}) - first.index_select(0, slot_table_).view({1, slots}))
                .masked_fill(empty, data::Schema::kNoId);
    return l;
  }

  nn::TableBatchedEmbedding tables_;
  ParameterServer& ps_;
  at::Tensor slot_table_;       ///< [slots]: each id slot's table
  at::Tensor limit_;            ///< [1, slots]: its table's rows, for the id check
  at::Tensor servers_, slots_;  ///< where each working row lives, from prepare()
  std::optional<Lookup> next_;  ///< the next batch's rows, asked for ahead
};

}  // namespace

std::unique_ptr<EmbeddingPlacement> replicated(nn::TableBatchedEmbedding tables) {
  return std::make_unique<Replicated>(std::move(tables));
}

std::unique_ptr<EmbeddingPlacement> sharded(nn::TableBatchedEmbedding tables, ParameterServer& ps) {
  return std::make_unique<Sharded>(std::move(tables), ps);
}

}  // namespace tandem::ps
