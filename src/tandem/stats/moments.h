// Mergeable per-feature moments (kernels/moments.h on tensors): count, mean,
// population variance via M2, min, max and missing count, in float64, fitted in
// one pass per batch and merged with Chan's formula: across batches, and across
// ranks in rank order, so a distributed fit is deterministic for a world size and
// agrees with a one-rank fit to rounding.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "tandem/comm/communicator.h"

namespace tandem::stats {

struct Moments {
  at::Tensor count;     ///< [features] int64, present values
  at::Tensor shift;     ///< [features] float64, the reference value of `mean`
  at::Tensor mean;      ///< [features] float64, mean of (x - shift)
  at::Tensor m2;        ///< [features] float64, sum of squared deviations
  at::Tensor min, max;  ///< [features] float64 (+inf / -inf when no value)
  at::Tensor missing;   ///< [features] int64, NaN values

  /// No data yet.
  static Moments empty(int64_t features);
  /// One pass over x ([rows, features], float32/float64, CPU or CUDA; NaN =
  /// missing). The result is on the CPU.
  static Moments of(const at::Tensor& x);

  int64_t features() const { return count.numel(); }
  /// This merged with `other` (Chan); both must have the same features.
  Moments merged(const Moments& other) const;
  /// Mean of the present values; NaN where there are none.
  at::Tensor global_mean() const;
  /// Population variance (ddof = 0); NaN where there are no values.
  at::Tensor variance() const;
};

/// Every rank's moments merged in rank order; collective, the same on every rank.
Moments allmerge(const Moments& local, comm::Communicator& comm);

}  // namespace tandem::stats
