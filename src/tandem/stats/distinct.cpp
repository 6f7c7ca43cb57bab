#include "tandem/stats/distinct.h"

#include <ATen/ATen.h>

#include <cmath>
#include <unordered_set>

namespace tandem::stats {

std::vector<int64_t> distinct_values(data::Loader& raw_ids, comm::Communicator& comm) {
  const int64_t C = raw_ids.schema().num_categorical(), world = comm.size();
  const std::vector<int64_t> slot_column = raw_ids.schema().slot_columns();
  const int64_t S = static_cast<int64_t>(slot_column.size());
  std::vector<std::unordered_set<int64_t>> mine(static_cast<size_t>(C));
  for (int64_t step = 0; step < raw_ids.steps_per_epoch(); ++step) {
    const at::Tensor ids = raw_ids.batch(0, step).sparse.contiguous();
    // (column, id) pairs grouped by owner rank; missing values (row 0) and empty
    // multi-hot slots (kNoId) stay out.
    std::vector<std::vector<int64_t>> to(static_cast<size_t>(world));
    const int64_t* p = ids.data_ptr<int64_t>();
    for (int64_t i = 0; i < ids.numel(); ++i)
      if (p[i] > 0) {
        auto& dst = to[static_cast<size_t>(p[i] % world)];
        dst.push_back(slot_column[static_cast<size_t>(i % S)]);
        dst.push_back(p[i]);
      }
    std::vector<int64_t> flat, rows;
    for (const auto& v : to) {
      flat.insert(flat.end(), v.begin(), v.end());
      rows.push_back(static_cast<int64_t>(v.size() / 2));
    }
    const at::Tensor sent = at::tensor(flat, at::kLong).view({-1, 2});
    const at::Tensor got = world > 1 ? comm.alltoallv(sent, rows) : sent;
    const int64_t* g = got.data_ptr<int64_t>();
    for (int64_t k = 0; k < got.size(0); ++k)
      mine[static_cast<size_t>(g[2 * k])].insert(g[2 * k + 1]);
  }
  at::Tensor counts = at::empty({C}, at::kLong);
  for (int64_t c = 0; c < C; ++c)
    counts[c] = static_cast<int64_t>(mine[static_cast<size_t>(c)].size());
  comm.allreduce(counts, comm::ReduceOp::kSum);
  return std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + C);
}

int64_t suggested_rows(int64_t distinct, double share) {
  if (distinct <= 1) return 2;
  // 1 - (1 - 1/m)^(n - 1) <= share  <=>  1/m <= 1 - (1 - share)^(1 / (n - 1)).
  const double per_row = -std::expm1(std::log1p(-share) / static_cast<double>(distinct - 1));
  return 1 + static_cast<int64_t>(std::ceil(1.0 / per_row));
}

}  // namespace tandem::stats
