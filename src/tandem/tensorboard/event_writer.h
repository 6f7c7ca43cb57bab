// TensorBoard event files: records of Event protocol buffers (events.proto), each
// framed as TensorFlow's TFRecord: the length (uint64, little-endian), its masked
// CRC-32C, the bytes, their masked CRC-32C. One file per process:
// <dir>/events.out.tfevents.<unix time>.<host>.<pid>, so a resumed run adds a file
// and TensorBoard reads the directory as one run.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

// Free of LibTorch on purpose: PyTorch 2.x puts its own, older protobuf headers on
// LibTorch's include path, so this and the generated code build without it.
namespace tandem::tensorboard {

/// A histogram as TensorBoard stores it: bucket i counts the values up to
/// limits[i] (and above limits[i - 1]).
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> limits, counts;
};

class EventWriter {
 public:
  /// Creates `dir` and a new event file in it, and writes its version record; a
  /// run resumed after step `start_step` > 0 also writes a START at the next step,
  /// so readers drop what an earlier process logged after start_step. IoError if
  /// it cannot.
  EventWriter(const std::string& dir, int64_t start_step);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void scalar(const std::string& tag, double value, int64_t step);
  void histogram(const std::string& tag, const Histogram& h, int64_t step);
  /// Text for TensorBoard's text dashboard (shown as Markdown).
  void text(const std::string& tag, const std::string& text, int64_t step);
  /// Hands what was written to the operating system.
  void flush();
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& bytes);
  std::string path_;
  std::FILE* file_ = nullptr;
};

/// TFRecord's masked CRC-32C (Castagnoli) of `n` bytes.
uint32_t masked_crc32c(const void* data, size_t n);

}  // namespace tandem::tensorboard
