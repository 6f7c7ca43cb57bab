// Reads the next global batch on a background thread while the current one trains,
// so parsing overlaps compute. Batches are still read in the order asked for; a
// request for anything but the predicted next step (a seek) is read in the calling
// thread. The Loader is touched by one thread at a time.
#pragma once

#include <cstdint>
#include <future>

#include "tandem/data/loader.h"

namespace tandem::data {

class Prefetcher {
 public:
  explicit Prefetcher(Loader& loader) : loader_(loader) {}
  ~Prefetcher();
  /// This rank's slice of (epoch, step); starts reading the step after it.
  Batch batch(int64_t epoch, int64_t step);

 private:
  Loader& loader_;
  std::future<Batch> next_;
  int64_t next_epoch_ = -1, next_step_ = -1;
};

}  // namespace tandem::data
