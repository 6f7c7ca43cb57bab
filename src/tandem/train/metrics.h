// Binary-classification metrics of a CTR model, reduced exactly across ranks.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "tandem/comm/communicator.h"

namespace tandem::train {

struct EvalMetrics {
  int64_t count = 0;
  int64_t positives = 0;
  double logloss = 0;   ///< mean binary cross-entropy
  double ne = 0;        ///< logloss / entropy of the positive rate (normalized entropy)
  double auc = 0;       ///< area under the ROC curve, ties counted half; NaN if one class
  double accuracy = 0;  ///< share of correct predictions at threshold 0.5
};

/// Exact ROC AUC of scores (any monotone score, e.g. logits) against 0/1 labels.
double roc_auc(const at::Tensor& scores, const at::Tensor& labels);

/// Binary entropy of a positive rate p, in nats.
double binary_entropy(double p);

/// Metrics over every rank's (logits, labels). Sums are reduced in float64 and the
/// AUC is computed on all ranks' gathered scores, so the result equals the
/// single-process result on the same predictions. Collective: every rank calls it.
EvalMetrics reduce_metrics(const at::Tensor& logits, const at::Tensor& labels,
                           comm::Communicator& comm);

/// The metrics of the base-rate predictor (predicts the positive rate of the data
/// itself): NE 1, AUC 0.5.
EvalMetrics baseline_metrics(int64_t count, int64_t positives);

}  // namespace tandem::train
