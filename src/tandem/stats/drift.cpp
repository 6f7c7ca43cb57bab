#include "tandem/stats/drift.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <sstream>

#include "tandem/data/criteo.h"
#include "tandem/util/error.h"

namespace tandem::stats {
namespace {

constexpr double kFloor = 1e-4;  // a bucket's least share in PSI and JS (Evidently's)

std::vector<double> shares(const std::vector<double>& counts, bool floored) {
  double total = 0;
  for (double c : counts) total += c;
  std::vector<double> p(counts.size(), 0.0);
  if (total <= 0) return p;
  for (size_t i = 0; i < counts.size(); ++i)
    p[i] = floored ? std::max(counts[i] / total, kFloor) : counts[i] / total;
  return p;
}

std::vector<double> row(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kDouble).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

// A categorical feature's top values -> their bucket, by open addressing in a
// table that stays in L1: a lookup is a multiply and a probe or two.
class TopIndex {
 public:
  explicit TopIndex(const at::Tensor& values) {
    const at::Tensor v = values.to(at::kLong).contiguous();
    size_t size = 16;
    while (size < 4 * static_cast<size_t>(v.numel())) size *= 2;
    keys_.assign(size, kEmpty);
    buckets_.assign(size, 0);
    mask_ = size - 1;
    for (int64_t i = 0; i < v.numel(); ++i) {
      const int64_t key = v.data_ptr<int64_t>()[i];
      if (key < 0) continue;  // an unused slot
      size_t h = slot(key);
      while (keys_[h] != kEmpty && keys_[h] != key) h = (h + 1) & mask_;
      keys_[h] = key;
      buckets_[h] = i;
    }
  }
  /// The bucket of `value`: its index among the top values, or `other`.
  int64_t bucket(int64_t value, int64_t other) const {
    for (size_t h = slot(value);; h = (h + 1) & mask_) {
      if (keys_[h] == value) return buckets_[h];
      if (keys_[h] == kEmpty) return other;
    }
  }

 private:
  static constexpr int64_t kEmpty = -1;  // table rows are >= 0
  size_t slot(int64_t key) const {
    return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ULL) >> 40) &
           mask_;
  }
  std::vector<int64_t> keys_, buckets_;
  size_t mask_ = 0;
};

bool empty(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double c) { return c <= 0; });
}

}  // namespace

double psi(const std::vector<double>& reference, const std::vector<double>& window) {
  if (empty(reference) || empty(window)) return 0;
  const std::vector<double> p = shares(reference, true), q = shares(window, true);
  double out = 0;
  for (size_t i = 0; i < p.size(); ++i) out += (q[i] - p[i]) * std::log(q[i] / p[i]);
  return out;
}

double js_distance(const std::vector<double>& reference, const std::vector<double>& window) {
  if (empty(reference) || empty(window)) return 0;
  const std::vector<double> p = shares(reference, true), q = shares(window, true);
  double kl_p = 0, kl_q = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double m = 0.5 * (p[i] + q[i]);
    kl_p += p[i] * std::log(p[i] / m);
    kl_q += q[i] * std::log(q[i] / m);
  }
  return std::sqrt(std::max(0.0, 0.5 * kl_p + 0.5 * kl_q));
}

double linf(const std::vector<double>& reference, const std::vector<double>& window) {
  if (empty(reference) || empty(window)) return 0;
  const std::vector<double> p = shares(reference, false), q = shares(window, false);
  double out = 0;
  for (size_t i = 0; i < p.size(); ++i) out = std::max(out, std::abs(p[i] - q[i]));
  return out;
}

double ks(const std::vector<double>& reference, const std::vector<double>& window) {
  if (empty(reference) || empty(window)) return 0;
  const std::vector<double> p = shares(reference, false), q = shares(window, false);
  double cp = 0, cq = 0, out = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    cp += p[i];
    cq += q[i];
    out = std::max(out, std::abs(cp - cq));
  }
  return out;
}

void DriftThresholds::parse_overrides(const std::string& key, const std::string& spec) {
  source = key;
  std::stringstream items(spec);
  for (std::string item; std::getline(items, item, ',');) {
    if (item.empty()) continue;
    const size_t colon = item.find(':'), eq = item.find('=');
    const std::string feature = item.substr(0, colon);
    const std::string metric = colon == std::string::npos || eq == std::string::npos || eq < colon
                                   ? ""
                                   : item.substr(colon + 1, eq - colon - 1);
    double value = -1;
    try {
      value = std::stod(item.substr(eq + 1));
    } catch (...) {
      value = -1;
    }
    if (feature.empty() || (metric != "psi" && metric != "js" && metric != "linf") || !(value > 0))
      throw ConfigError(fmt::format(
          "{}: '{}' is not FEATURE:METRIC=VALUE (a dense column with psi, a categorical one "
          "with js or linf, a value > 0)",
          key, item));
    per_feature[feature][metric] = value;
  }
}

void DriftThresholds::check(const data::Schema& schema) const {
  for (const auto& [feature, metrics] : per_feature) {
    bool dense = false, categorical = false;
    for (int i = 0; i < schema.num_dense(); ++i) dense |= schema.dense_name(i) == feature;
    for (int i = 0; i < schema.num_categorical(); ++i)
      categorical |= schema.categorical_name(i) == feature;
    if (!dense && !categorical)
      throw ConfigError(fmt::format("{}: '{}' is not a dense or categorical column of the data",
                                    source, feature));
    for (const auto& [metric, value] : metrics)
      if ((metric == "psi") != dense)
        throw ConfigError(fmt::format(
            "{}: '{}:{}': {} is for {} columns, and {} is {}", source, feature, metric, metric,
            metric == "psi" ? "dense" : "categorical", feature, dense ? "dense" : "categorical"));
  }
}

double DriftThresholds::get(const std::string& feature, const std::string& metric) const {
  const auto f = per_feature.find(feature);
  if (f != per_feature.end()) {
    const auto m = f->second.find(metric);
    if (m != f->second.end()) return m->second;
  }
  return metric == "psi" ? psi : metric == "js" ? js : linf;
}

DriftReport drift(data::Loader& window, comm::Communicator& comm, const FeatureStats& ref,
                  const DriftThresholds& th) {
  const data::Schema& schema = window.schema();
  th.check(schema);
  const int64_t D = schema.num_dense(), C = schema.num_categorical(), S = schema.num_slots();
  const std::vector<int64_t> slot_column = schema.slot_columns();
  if (ref.dense.count.size(0) != D || ref.top_values.size(0) != C)
    throw DataError(fmt::format(
        "drift: the reference has {} dense and {} categorical columns, the data {} and {}",
        ref.dense.count.size(0), ref.top_values.size(0), D, C));
  const int64_t bins = ref.hist_edges.size(1) - 1, top = ref.top_values.size(1);
  // The window's counts in the reference's buckets: [D, bins + missing] and
  // [C, top + other], counted by a plain loop (tensor ops per feature cost as much
  // as parsing the rows). Each batch is counted on a helper thread while the next
  // one parses, so the counting hides behind the reading.
  const int64_t dense_width = bins + 1, cat_width = top + 1;
  std::vector<int64_t> counts(D * dense_width + C * cat_width, 0);
  int64_t rows = 0;
  const at::Tensor edges = ref.hist_edges.to(at::kDouble).contiguous();
  std::vector<double> lo(D), span(D);
  for (int64_t f = 0; f < D; ++f) {
    lo[f] = edges[f][0].item<double>();
    span[f] = std::max(0.0, edges[f][bins].item<double>() - lo[f]);
  }
  std::vector<TopIndex> index;
  for (int64_t f = 0; f < C; ++f) index.emplace_back(ref.top_values[f]);
  const auto count = [&](const data::Batch& b) {
    const int64_t n = b.size();
    const at::Tensor dense = b.dense.to(at::kFloat).contiguous();
    const at::Tensor sparse = b.sparse.to(at::kLong).contiguous();
    const float* x = dense.data_ptr<float>();
    const int64_t* ids = sparse.data_ptr<int64_t>();
    int64_t* dense_counts = counts.data();
    int64_t* cat_counts = counts.data() + D * dense_width;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t f = 0; f < D; ++f) {
        const double v = x[i * D + f];
        int64_t bin = bins;  // missing
        if (!std::isnan(v)) {
          // As FeatureStats::fit bins them (floor, then clamp: outside the range,
          // the first or last bin); truncating a non-negative value is its floor.
          const double t = span[f] > 0 ? (v - lo[f]) / span[f] * static_cast<double>(bins) : 0;
          bin = t <= 0                               ? 0
                : t >= static_cast<double>(bins - 1) ? bins - 1
                                                     : static_cast<int64_t>(t);
        }
        ++dense_counts[f * dense_width + bin];
      }
      for (int64_t k = 0; k < S; ++k) {
        const int64_t f = slot_column[static_cast<size_t>(k)], id = ids[i * S + k];
        if (id != data::Schema::kNoId) ++cat_counts[f * cat_width + index[f].bucket(id, top)];
      }
    }
  };
  std::future<void> counting;  // the previous batch's (declared after what it uses)
  for (int64_t step = 0; step < window.steps_per_epoch(); ++step) {
    data::Batch b = window.batch(0, step);
    if (b.size() == 0) continue;
    rows += b.size();
    if (counting.valid()) counting.get();
    counting = std::async(std::launch::async, [&count, b = std::move(b)] { count(b); });
  }
  if (counting.valid()) counting.get();
  at::Tensor all = at::tensor(counts, at::kLong);
  const at::Tensor dense = all.narrow(0, 0, D * dense_width).view({D, dense_width});
  const at::Tensor cat = all.narrow(0, D * dense_width, C * cat_width).view({C, cat_width});
  at::Tensor total = at::tensor({rows}, at::kLong);
  comm.allreduce(all, comm::ReduceOp::kSum);
  comm.allreduce(total, comm::ReduceOp::kSum);

  DriftReport r;
  r.rows = total[0].item<int64_t>();
  if (r.rows == 0) return r;
  for (int64_t f = 0; f < D; ++f) {
    FeatureDrift d;
    d.feature = schema.dense_name(static_cast<int>(f));
    std::vector<double> p = row(ref.hist_counts[f]), q = row(dense[f]);
    d.ks = ks(p, std::vector<double>(q.begin(), q.begin() + bins));  // present values
    p.push_back(ref.dense.missing[f].item<double>());
    d.psi = psi(p, q);
    const double limit = th.get(d.feature, "psi");
    if (d.psi > limit) {
      d.drifted = true;
      d.because = fmt::format("psi {:.4g} > {:.4g}", d.psi, limit);
    }
    r.features.push_back(d);
  }
  for (int64_t f = 0; f < C; ++f) {
    FeatureDrift d;
    d.feature = schema.categorical_name(static_cast<int>(f));
    d.categorical = true;
    std::vector<double> p = row(ref.top_counts[f]), q = row(cat[f]);
    p.push_back(ref.other[f].item<double>());
    d.js = js_distance(p, q);
    d.linf = linf(p, q);
    const double js_limit = th.get(d.feature, "js"), linf_limit = th.get(d.feature, "linf");
    if (d.js > js_limit) d.because = fmt::format("js {:.4g} > {:.4g}", d.js, js_limit);
    if (d.linf > linf_limit)
      d.because += fmt::format("{}linf {:.4g} > {:.4g}", d.because.empty() ? "" : ", ", d.linf,
                               linf_limit);
    d.drifted = !d.because.empty();
    r.features.push_back(d);
  }
  for (const FeatureDrift& d : r.features) r.drifted += d.drifted;
  r.share = static_cast<double>(r.drifted) / static_cast<double>(r.features.size());
  r.window_drifted = r.share >= th.share;
  return r;
}

nlohmann::json DriftReport::to_json(bool drifted_only) const {
  nlohmann::json fs = nlohmann::json::array();
  for (const FeatureDrift& d : features) {
    if (drifted_only && !d.drifted) continue;
    nlohmann::json f = {{"feature", d.feature}, {"drifted", d.drifted}};
    if (!d.categorical) {
      f["psi"] = d.psi;
      f["ks"] = d.ks;
    } else {
      f["js"] = d.js;
      f["linf"] = d.linf;
    }
    if (d.drifted) f["because"] = d.because;
    fs.push_back(f);
  }
  return {{"rows", rows},
          {"drifted_features", drifted},
          {"drifted_share", share},
          {"window_drifted", window_drifted},
          {"features", fs}};
}

std::string DriftReport::summary() const {
  std::vector<const FeatureDrift*> bad;
  for (const FeatureDrift& d : features)
    if (d.drifted) bad.push_back(&d);
  std::sort(bad.begin(), bad.end(), [](const FeatureDrift* a, const FeatureDrift* b) {
    return std::max({a->psi, a->js, a->linf}) > std::max({b->psi, b->js, b->linf});
  });
  std::string out;
  for (const FeatureDrift* d : bad) out += fmt::format("{}{} ({})", out.empty() ? "" : ", ",
                                                       d->feature, d->because);
  return out.empty() ? "none" : out;
}

}  // namespace tandem::stats
