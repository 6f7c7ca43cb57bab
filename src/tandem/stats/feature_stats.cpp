#include "tandem/stats/feature_stats.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <unordered_map>
#include <vector>

#include "tandem/ckpt/h5file.h"
#include "tandem/data/criteo.h"
#include "tandem/util/error.h"

namespace tandem::stats {
namespace {

using Counts = std::unordered_map<int64_t, int64_t>;

void count_values(const at::Tensor& column, Counts& counts) {
  const auto [values, inverse, n] = at::_unique2(column, /*sorted=*/false, false, true);
  const at::Tensor v = values.contiguous(), c = n.contiguous();
  for (int64_t i = 0; i < v.numel(); ++i)
    counts[v.data_ptr<int64_t>()[i]] += c.data_ptr<int64_t>()[i];
}

// The `m` most frequent values of `counts` (ties: smaller value first).
std::vector<std::pair<int64_t, int64_t>> most_frequent(const Counts& counts, size_t m) {
  std::vector<std::pair<int64_t, int64_t>> all(counts.begin(), counts.end());
  const auto by_count = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  const size_t k = std::min(m, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(), by_count);
  all.resize(k);
  return all;
}

}  // namespace

FeatureStats fit(data::Loader& loader, comm::Communicator& comm, const FitOptions& o) {
  if (o.bins < 1 || o.top < 1) throw ConfigError("fit-stats: --bins and --top must be >= 1");
  const int64_t steps = loader.steps_per_epoch();
  const data::Schema& schema = loader.schema();
  const int64_t D = schema.num_dense(), C = schema.num_categorical();
  FeatureStats s;
  // Pass 1: moments of the integer features, value counts of the categorical ones.
  Moments local = Moments::empty(D);
  std::vector<Counts> counts(C);
  at::Tensor ids_seen = at::zeros({C}, at::kLong);  // a multi-hot column's ids, not rows
  int64_t rows = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const data::Batch b = loader.batch(0, step);
    if (b.size() == 0) continue;
    local = local.merged(Moments::of(b.dense.to(at::kDouble)));
    for (int64_t f = 0; f < C; ++f) {
      const data::Schema::Categorical& c = schema.categorical()[static_cast<size_t>(f)];
      at::Tensor ids = b.sparse.narrow(1, c.slot, c.max_ids).reshape(-1);
      if (c.max_ids > 1) ids = ids.index({ids != data::Schema::kNoId});
      count_values(ids.contiguous(), counts[f]);
      ids_seen[f] += ids.numel();
    }
    rows += b.size();
  }
  s.dense = allmerge(local, comm);
  at::Tensor total = at::tensor({rows}, at::kLong);
  comm.allreduce(total, comm::ReduceOp::kSum);
  comm.allreduce(ids_seen, comm::ReduceOp::kSum);
  s.rows = total[0];

  // Exact top values: every rank proposes its local top 4k; the counts of the union
  // are then summed exactly over all ranks.
  const int64_t m = 4 * o.top;
  at::Tensor proposals = at::full({C, m}, -1, at::kLong);
  for (int64_t f = 0; f < C; ++f) {
    const auto top = most_frequent(counts[f], static_cast<size_t>(m));
    for (size_t i = 0; i < top.size(); ++i) proposals[f][static_cast<int64_t>(i)] = top[i].first;
  }
  const at::Tensor all = comm.allgather(proposals);  // [ranks, C, m]
  std::vector<at::Tensor> candidates(C);
  std::vector<int64_t> offsets{0};
  for (int64_t f = 0; f < C; ++f) {
    const at::Tensor v = all.select(1, f).reshape(-1);
    candidates[f] = std::get<0>(at::_unique(v.index({v >= 0}), /*sorted=*/true));
    offsets.push_back(offsets.back() + candidates[f].numel());
  }
  at::Tensor exact = at::zeros({offsets.back()}, at::kLong);
  for (int64_t f = 0; f < C; ++f)
    for (int64_t i = 0; i < candidates[f].numel(); ++i) {
      const auto it = counts[f].find(candidates[f][i].item<int64_t>());
      if (it != counts[f].end()) exact[offsets[f] + i] = it->second;
    }
  comm.allreduce(exact, comm::ReduceOp::kSum);
  s.top_values = at::full({C, o.top}, -1, at::kLong);
  s.top_counts = at::zeros({C, o.top}, at::kLong);
  s.other = at::zeros({C}, at::kLong);
  for (int64_t f = 0; f < C; ++f) {
    Counts merged;
    for (int64_t i = 0; i < candidates[f].numel(); ++i)
      merged[candidates[f][i].item<int64_t>()] = exact[offsets[f] + i].item<int64_t>();
    const auto top = most_frequent(merged, static_cast<size_t>(o.top));
    int64_t kept = 0;
    for (size_t i = 0; i < top.size(); ++i) {
      s.top_values[f][static_cast<int64_t>(i)] = top[i].first;
      s.top_counts[f][static_cast<int64_t>(i)] = top[i].second;
      kept += top[i].second;
    }
    s.other[f] = ids_seen[f].item<int64_t>() - kept;
  }

  // Pass 2: histograms over the global [min, max] of each integer feature.
  const at::Tensor lo = s.dense.min, hi = s.dense.max;
  s.hist_edges = at::empty({D, o.bins + 1}, at::kDouble);
  for (int64_t f = 0; f < D; ++f) {
    const double a = lo[f].item<double>(), b = hi[f].item<double>();
    s.hist_edges[f] = std::isfinite(a) ? at::linspace(a, b, o.bins + 1, at::kDouble)
                                       : at::zeros({o.bins + 1}, at::kDouble);
  }
  s.hist_counts = at::zeros({D, o.bins}, at::kLong);
  const at::Tensor span = (hi - lo).clamp_min(0);
  for (int64_t step = 0; step < steps; ++step) {
    const data::Batch b = loader.batch(0, step);
    if (b.size() == 0) continue;
    const at::Tensor x = b.dense.to(at::kDouble);
    // Bin = floor((x - min) / (max - min) * bins), the maximum in the last bin; a
    // constant feature puts everything in bin 0.
    at::Tensor bin = ((x - lo) / span.clamp_min(1e-300) * o.bins).floor().clamp(0, o.bins - 1);
    bin = at::where(span > 0, bin, at::zeros_like(bin));
    for (int64_t f = 0; f < D; ++f) {
      const at::Tensor col = bin.select(1, f);
      const at::Tensor present = col.index({x.select(1, f).isnan().logical_not()});
      s.hist_counts[f] += at::bincount(present.to(at::kLong), {}, o.bins);
    }
  }
  comm.allreduce(s.hist_counts, comm::ReduceOp::kSum);
  return s;
}

std::map<std::string, at::Tensor> to_tensors(const FeatureStats& s) {
  const Moments& m = s.dense;
  return {{"dense/count", m.count},
          {"dense/shift", m.shift},
          {"dense/mean_shifted", m.mean},
          {"dense/m2", m.m2},
          {"dense/min", m.min},
          {"dense/max", m.max},
          {"dense/missing", m.missing},
          {"dense/mean", m.global_mean()},
          {"dense/variance", m.variance()},
          {"dense/hist_edges", s.hist_edges},
          {"dense/hist_counts", s.hist_counts},
          {"categorical/top_values", s.top_values},
          {"categorical/top_counts", s.top_counts},
          {"categorical/other", s.other},
          {"rows", s.rows}};
}

void save(const FeatureStats& s, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    ckpt::H5File f = ckpt::H5File::create(tmp, true);
    f.set_attr("/", "format", std::string("tandem-feature-stats"));
    f.set_attr("/", "format_version", int64_t{1});
    f.set_attr("/", "rows", s.rows.item<int64_t>());
    for (const auto& [name, t] : to_tensors(s))
      if (name != "rows") f.write_tensor("/" + name, t, 0);
    f.close();
  }
  std::filesystem::rename(tmp, path);
}

FeatureStats load(const std::string& path) {
  const ckpt::H5File f = ckpt::H5File::open(path, true);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "tandem-feature-stats")
    throw DataError(path + ": not a Tandem statistics file");
  std::map<std::string, at::Tensor> tensors;
  for (const std::string& name : f.datasets("/")) tensors[name.substr(1)] = f.read_tensor(name);
  tensors["rows"] = at::tensor(f.attr_int("/", "rows"), at::kLong);
  return from_tensors(tensors, path);
}

FeatureStats from_tensors(const std::map<std::string, at::Tensor>& tensors,
                          const std::string& where) {
  const auto t = [&](const std::string& name) {
    const auto it = tensors.find(name);
    if (it == tensors.end())
      throw DataError(fmt::format("{}: no feature statistic '{}'", where, name));
    return it->second;
  };
  FeatureStats s;
  s.dense = {t("dense/count"), t("dense/shift"), t("dense/mean_shifted"), t("dense/m2"),
             t("dense/min"),   t("dense/max"),   t("dense/missing")};
  s.hist_edges = t("dense/hist_edges");
  s.hist_counts = t("dense/hist_counts");
  s.top_values = t("categorical/top_values");
  s.top_counts = t("categorical/top_counts");
  s.other = t("categorical/other");
  s.rows = t("rows").reshape({});
  return s;
}

nlohmann::json to_json(const FeatureStats& s) {
  const at::Tensor mean = s.dense.global_mean(), var = s.dense.variance();
  const auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  nlohmann::json dense = nlohmann::json::array();
  for (int64_t f = 0; f < s.dense.features(); ++f)
    dense.push_back({{"feature", fmt::format("I{}", f + 1)},
                     {"count", s.dense.count[f].item<int64_t>()},
                     {"mean", num(mean[f].item<double>())},
                     {"variance", num(var[f].item<double>())},
                     {"min", num(s.dense.min[f].item<double>())},
                     {"max", num(s.dense.max[f].item<double>())},
                     {"missing", s.dense.missing[f].item<int64_t>()}});
  nlohmann::json cat = nlohmann::json::array();
  for (int64_t f = 0; f < s.top_values.size(0); ++f) {
    nlohmann::json top = nlohmann::json::array();
    for (int64_t i = 0; i < s.top_values.size(1); ++i)
      if (s.top_values[f][i].item<int64_t>() >= 0)
        top.push_back({s.top_values[f][i].item<int64_t>(), s.top_counts[f][i].item<int64_t>()});
    cat.push_back({{"feature", fmt::format("C{}", f + 1)},
                   {"top", top},
                   {"other", s.other[f].item<int64_t>()}});
  }
  return {{"rows", s.rows.item<int64_t>()}, {"dense", dense}, {"categorical", cat}};
}

}  // namespace tandem::stats
