#include "tandem/train/metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace tandem::train {

double binary_entropy(double p) {
  if (p <= 0 || p >= 1) return 0;
  return -(p * std::log(p) + (1 - p) * std::log1p(-p));
}

double roc_auc(const at::Tensor& scores, const at::Tensor& labels) {
  // The rank sort runs on the host (scores gathered on a GPU come back here).
  const auto host = at::TensorOptions().device(at::kCPU).dtype(at::kDouble);
  const at::Tensor s = scores.to(host).contiguous();
  const at::Tensor y = labels.to(host).contiguous();
  const int64_t n = s.numel();
  const double* sp = s.data_ptr<double>();
  const double* yp = y.data_ptr<double>();
  // A diverged model scores NaN; NaN has no order (and would break the sort).
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(sp[i])) return std::numeric_limits<double>::quiet_NaN();
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return sp[a] < sp[b]; });
  // Mann-Whitney U: sum of the (tie-averaged, 1-based) ranks of the positives.
  double rank_sum = 0, pos = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    double group_pos = 0;
    while (j < n && sp[idx[j]] == sp[idx[i]]) group_pos += yp[idx[j++]] > 0.5;
    const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);
    rank_sum += group_pos * avg_rank;
    pos += group_pos;
    i = j;
  }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

EvalMetrics reduce_metrics(const at::Tensor& logits, const at::Tensor& labels,
                           comm::Communicator& comm) {
  const at::Tensor z = logits.to(at::kDouble);
  const at::Tensor y = labels.to(at::kDouble);
  // BCE from logits: softplus(z) - y*z, stable for large |z|.
  const double loss_sum = (at::softplus(z) - y * z).sum().item<double>();
  const double correct = ((z > 0).to(at::kDouble) == y).sum().item<double>();
  at::Tensor sums = at::tensor(
      {loss_sum, correct, static_cast<double>(z.numel()), y.sum().item<double>()}, at::kDouble);
  comm.allreduce(sums, comm::ReduceOp::kSum);
  const at::Tensor all_scores = comm.allgatherv(logits.to(at::kFloat).contiguous());
  const at::Tensor all_labels = comm.allgatherv(labels.to(at::kFloat).contiguous());

  EvalMetrics m;
  const double* s = sums.data_ptr<double>();
  m.count = static_cast<int64_t>(s[2]);
  m.positives = static_cast<int64_t>(s[3]);
  if (m.count == 0) return m;
  m.logloss = s[0] / s[2];
  const double h = binary_entropy(s[3] / s[2]);
  m.ne = h > 0 ? m.logloss / h : std::numeric_limits<double>::quiet_NaN();
  m.accuracy = s[1] / s[2];
  m.auc = roc_auc(all_scores, all_labels);
  return m;
}

EvalMetrics baseline_metrics(int64_t count, int64_t positives) {
  EvalMetrics m;
  m.count = count;
  m.positives = positives;
  if (count == 0) return m;
  const double p = static_cast<double>(positives) / static_cast<double>(count);
  m.logloss = binary_entropy(p);
  m.ne = m.logloss > 0 ? 1.0 : std::numeric_limits<double>::quiet_NaN();
  m.auc = 0.5;
  m.accuracy = std::max(p, 1 - p);
  return m;
}

}  // namespace tandem::train
