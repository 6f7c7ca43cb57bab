#include "tandem/stats/drift.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
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
  std::stringstream items(spec);
  for (std::string item; std::getline(items, item, ',');) {
    if (item.empty()) continue;
    const size_t colon = item.find(':'), eq = item.find('=');
    const std::string feature = item.substr(0, colon);
    const std::string metric =
        colon == std::string::npos || eq == std::string::npos || eq < colon
            ? ""
            : item.substr(colon + 1, eq - colon - 1);
    const bool integer = feature.size() > 1 && feature[0] == 'I';
    int n = 0;
    try {
      n = std::stoi(feature.substr(1));
    } catch (...) {
      n = 0;
    }
    const bool known = (integer && n >= 1 && n <= data::kNumDense) ||
                       (feature.size() > 1 && feature[0] == 'C' && n >= 1 &&
                        n <= data::kNumCategorical);
    double value = -1;
    try {
      value = std::stod(item.substr(eq + 1));
    } catch (...) {
      value = -1;
    }
    if (!known || (integer ? metric != "psi" : metric != "js" && metric != "linf") ||
        !(value > 0))
      throw ConfigError(fmt::format(
          "{}: '{}' is not FEATURE:METRIC=VALUE (I1-I13 with psi, C1-C26 with js or linf, a "
          "value > 0)",
          key, item));
    per_feature[feature][metric] = value;
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
  const int64_t D = data::kNumDense, C = data::kNumCategorical;
  const int64_t bins = ref.hist_edges.size(1) - 1, top = ref.top_values.size(1);
  // The window's counts in the reference's buckets: [D, bins + missing] and
  // [C, top + other], then the rows.
  at::Tensor dense = at::zeros({D, bins + 1}, at::kLong);
  at::Tensor cat = at::zeros({C, top + 1}, at::kLong);
  int64_t rows = 0;
  const at::Tensor lo = ref.hist_edges.select(1, 0).to(at::kDouble);
  const at::Tensor span = (ref.hist_edges.select(1, bins).to(at::kDouble) - lo).clamp_min(0);
  const at::Tensor values = ref.top_values.to(at::kLong);
  for (int64_t step = 0; step < window.steps_per_epoch(); ++step) {
    const data::Batch b = window.batch(0, step);
    const int64_t n = b.size();
    if (n == 0) continue;
    rows += n;
    // As FeatureStats::fit bins them; outside the range: the first or last bin.
    const at::Tensor x = b.dense.to(at::kDouble);
    at::Tensor bin = ((x - lo) / span.clamp_min(1e-300) * bins).floor().clamp(0, bins - 1);
    bin = at::where(span > 0, bin, at::zeros_like(bin));
    bin = at::where(x.isnan(), at::full_like(bin, static_cast<double>(bins)), bin).to(at::kLong);
    for (int64_t f = 0; f < D; ++f) dense[f] += at::bincount(bin.select(1, f), {}, bins + 1);
    for (int64_t f = 0; f < C; ++f) {
      const at::Tensor hits = b.sparse.select(1, f).to(at::kLong).unsqueeze(1) ==
                              values[f].unsqueeze(0);  // [n, top]
      const at::Tensor per_value = hits.sum(0);
      cat[f].narrow(0, 0, top) += per_value;
      cat[f][top] += n - per_value.sum();
    }
  }
  at::Tensor total = at::tensor({rows}, at::kLong);
  comm.allreduce(dense, comm::ReduceOp::kSum);
  comm.allreduce(cat, comm::ReduceOp::kSum);
  comm.allreduce(total, comm::ReduceOp::kSum);

  DriftReport r;
  r.rows = total[0].item<int64_t>();
  if (r.rows == 0) return r;
  for (int64_t f = 0; f < D; ++f) {
    FeatureDrift d;
    d.feature = fmt::format("I{}", f + 1);
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
    d.feature = fmt::format("C{}", f + 1);
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
    if (d.feature[0] == 'I') {
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
