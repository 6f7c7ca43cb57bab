#include "tandem/data/prefetcher.h"

namespace tandem::data {

Prefetcher::~Prefetcher() {
  if (next_.valid()) next_.wait();
}

Batch Prefetcher::batch(int64_t epoch, int64_t step) {
  Batch out;
  if (next_.valid() && epoch == next_epoch_ && step == next_step_) {
    out = next_.get();  // rethrows a read error here, on the training thread
  } else {
    if (next_.valid()) next_.wait();
    out = loader_.batch(epoch, step);
  }
  next_epoch_ = step + 1 < loader_.steps_per_epoch() ? epoch : epoch + 1;
  next_step_ = step + 1 < loader_.steps_per_epoch() ? step + 1 : 0;
  next_ = std::async(std::launch::async,
                     [this, e = next_epoch_, s = next_step_] { return loader_.batch(e, s); });
  return out;
}

}  // namespace tandem::data
