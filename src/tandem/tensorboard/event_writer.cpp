#include "tandem/tensorboard/event_writer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "tandem/tensorboard/events.pb.h"
#include "tandem/util/error.h"

namespace tandem::tensorboard {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char host[256] = {};
  return gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "localhost";
}

// An event at `step` holding one summary value named `tag`, for the caller to fill.
Summary::Value* summary_value(Event& e, const std::string& tag, int64_t step) {
  e.set_wall_time(now_seconds());
  e.set_step(step);
  Summary::Value* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  return v;
}

}  // namespace

uint32_t masked_crc32c(const void* data, size_t n) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, n);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir, int64_t start_step) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("tensorboard: cannot create '{}': {}", dir, ec.message()));
  const auto seconds = static_cast<int64_t>(now_seconds());
  path_ = fmt::format("{}/events.out.tfevents.{}.{}.{}", dir, seconds, host_name(), getpid());
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_)
    throw IoError(fmt::format("tensorboard: cannot write '{}': {}", path_, std::strerror(errno)));
  Event e;
  e.set_wall_time(now_seconds());
  e.set_file_version("brain.Event:2");
  record(e.SerializeAsString());
  if (start_step > 0) {
    Event start;
    start.set_wall_time(now_seconds());
    start.set_step(start_step + 1);  // readers keep the steps below a START's
    start.mutable_session_log()->set_status(SessionLog::START);
    record(start.SerializeAsString());
  }
  flush();
}

EventWriter::~EventWriter() {
  if (file_) std::fclose(file_);
}

void EventWriter::record(const std::string& bytes) {
  // Little-endian on every machine Tandem builds for (x86-64, aarch64).
  const uint64_t length = bytes.size();
  const uint32_t length_crc = masked_crc32c(&length, sizeof length);
  const uint32_t data_crc = masked_crc32c(bytes.data(), bytes.size());
  const bool ok = std::fwrite(&length, sizeof length, 1, file_) == 1 &&
                  std::fwrite(&length_crc, sizeof length_crc, 1, file_) == 1 &&
                  std::fwrite(bytes.data(), 1, bytes.size(), file_) == bytes.size() &&
                  std::fwrite(&data_crc, sizeof data_crc, 1, file_) == 1;
  if (!ok)
    throw IoError(fmt::format("tensorboard: cannot write '{}': {}", path_, std::strerror(errno)));
}

void EventWriter::flush() {
  if (std::fflush(file_) != 0)
    throw IoError(fmt::format("tensorboard: cannot write '{}': {}", path_, std::strerror(errno)));
}

void EventWriter::scalar(const std::string& tag, double value, int64_t step) {
  Event e;
  summary_value(e, tag, step)->set_simple_value(static_cast<float>(value));
  record(e.SerializeAsString());
}

void EventWriter::histogram(const std::string& tag, const Histogram& h, int64_t step) {
  Event e;
  HistogramProto* p = summary_value(e, tag, step)->mutable_histo();
  p->set_min(h.min);
  p->set_max(h.max);
  p->set_num(h.num);
  p->set_sum(h.sum);
  p->set_sum_squares(h.sum_squares);
  for (size_t b = 0; b < h.limits.size(); ++b) {
    p->add_bucket_limit(h.limits[b]);
    p->add_bucket(h.counts[b]);
  }
  record(e.SerializeAsString());
}

void EventWriter::text(const std::string& tag, const std::string& text, int64_t step) {
  Event e;
  Summary::Value* v = summary_value(e, tag, step);
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  TensorProto* t = v->mutable_tensor();
  t->set_dtype(7);  // DT_STRING
  t->add_string_val(text);
  record(e.SerializeAsString());
}

}  // namespace tandem::tensorboard
