// Batches onto the GPU without stalling it: the Prefetcher's thread parses each
// batch into page-locked host memory; the feeder copies it to the device on its own
// copy stream into one of two device buffers, so batch k+1 crosses PCIe while the
// GPU computes on batch k. Events order the copy before the compute stream's use
// and a buffer's reuse after the compute stream is done with it.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "tandem/data/loader.h"

namespace tandem::data {

class DeviceFeeder {
 public:
  virtual ~DeviceFeeder() = default;
  /// `host` (pinned, at most the rows given at construction) on the device. The
  /// result stays valid until the call after next.
  virtual Batch feed(const Batch& host) = 0;
};

/// A feeder for `device` holding up to `max_rows` rows per batch of `dense` and
/// `id_slots` id slots (Schema::num_slots); null when this build has no CUDA (the
/// trainer then copies with Batch::to).
std::unique_ptr<DeviceFeeder> make_device_feeder(const at::Device& device, int64_t max_rows,
                                                 int64_t dense, int64_t id_slots);

}  // namespace tandem::data
