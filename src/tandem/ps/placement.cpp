#include "tandem/ps/placement.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "tandem/util/error.h"

namespace tandem::ps {
namespace {

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
  }

  at::Tensor prepare(const at::Tensor& sparse) override {
    const RowSharding& sh = ps_.sharding();
    const int64_t n = sparse.size(0), tables = sh.tables();
    if (sparse.dim() != 2 || sparse.size(1) != tables)
      throw Error(fmt::format("ps: expected [n, {}] ids", tables));
    const at::Tensor ids = sparse.to(at::kLong).contiguous();
    // Per table, the distinct rows (ascending) and each id's place among them.
    std::vector<at::Tensor> uniques, local(tables);
    std::vector<int64_t> counts(tables);
    int64_t first = 0;
    for (int64_t t = 0; t < tables; ++t) {
      const at::Tensor col = ids.select(1, t).contiguous();
      if (n > 0) {
        const int64_t lo = col.min().item<int64_t>(), hi = col.max().item<int64_t>();
        if (lo < 0 || hi >= sh.table_rows()[t]) {
          const at::Tensor bad = (col < 0).logical_or(col >= sh.table_rows()[t]).nonzero();
          const int64_t b = bad[0][0].item<int64_t>();
          throw DataError(fmt::format(
              "embedding: index {} out of range for table {} ({} rows), sample {} of the batch",
              col[b].item<int64_t>(), t, sh.table_rows()[t], b));
        }
      }
      auto [u, inverse] = at::_unique(col, /*sorted=*/true, /*return_inverse=*/true);
      uniques.push_back(u);
      local[t] = inverse;  // table-local, as the module takes them
      counts[t] = u.numel();
      first += u.numel();
    }
    // Where each distinct row lives; one pull for all tables.
    servers_ = at::empty({first}, at::kLong);
    slots_ = at::empty({first}, at::kLong);
    int64_t* sv = servers_.data_ptr<int64_t>();
    int64_t* sl = slots_.data_ptr<int64_t>();
    int64_t k = 0;
    for (int64_t t = 0; t < tables; ++t) {
      const int64_t* u = uniques[t].data_ptr<int64_t>();
      for (int64_t i = 0; i < counts[t]; ++i, ++k) {
        const RowSharding::Place p = sh.place(t, u[i]);
        sv[k] = p.server;
        sl[k] = p.slot;
      }
    }
    tables_->set_working_rows(ps_.pull(servers_, slots_), counts);
    return n > 0 ? at::stack(local, 1) : at::empty({0, tables}, at::kLong);
  }

  void update(double lr) override {
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
  nn::TableBatchedEmbedding tables_;
  ParameterServer& ps_;
  at::Tensor servers_, slots_;  ///< where each working row lives, from prepare()
};

}  // namespace

std::unique_ptr<EmbeddingPlacement> replicated(nn::TableBatchedEmbedding tables) {
  return std::make_unique<Replicated>(std::move(tables));
}

std::unique_ptr<EmbeddingPlacement> sharded(nn::TableBatchedEmbedding tables, ParameterServer& ps) {
  return std::make_unique<Sharded>(std::move(tables), ps);
}

}  // namespace tandem::ps
