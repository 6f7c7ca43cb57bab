// Built without Protocol Buffers: RunDir never opens an event file (it checks
// TANDEM_WITH_TENSORBOARD); these definitions only complete the class.
#include "tandem/tensorboard/event_writer.h"

#include "tandem/util/error.h"

namespace tandem::tensorboard {

EventWriter::EventWriter(const std::string&, int64_t) {
  throw Error("tensorboard: this Tandem was built without Protocol Buffers (libprotobuf-dev)");
}
EventWriter::~EventWriter() = default;
void EventWriter::scalar(const std::string&, double, int64_t) {}
void EventWriter::histogram(const std::string&, const Histogram&, int64_t) {}
void EventWriter::text(const std::string&, const std::string&, int64_t) {}
void EventWriter::flush() {}

}  // namespace tandem::tensorboard
