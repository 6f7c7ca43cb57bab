// A run directory: the effective config.ini and metrics.jsonl (one JSON object per
// event; the last line is the final evaluation), and with log.tensorboard the same
// metrics as TensorBoard scalars in tb/ (every number of an event, tagged
// "<event>/<key>"), the config as text, and the histograms the trainer adds. Only
// rank 0 writes. Every write is checked: a failure is an IoError with the operating
// system's reason, and a line that could not be written whole is cut off again, so
// the file holds whole lines.
#pragma once

#include <nlohmann/json.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "tandem/tensorboard/event_writer.h"

namespace tandem::train {

class RunDir {
 public:
  /// An empty `path` or a non-writing rank makes every call a no-op. A
  /// metrics.jsonl already there (an earlier run's) is a ConfigError unless
  /// `replace` (run.overwrite, or a resume, which rewrites it with its history).
  RunDir(const std::string& path, bool writer, bool replace, bool tensorboard = false);
  void write_config(const std::string& ini_text);
  void append_metrics(const nlohmann::json& event);
  /// Every line appended so far (for checkpoints).
  const std::string& history() const { return history_; }
  /// Replaces metrics.jsonl with `history` (a resumed run continues its own, from
  /// step `step`: TensorBoard drops what an earlier process logged after it).
  void restore_history(const std::string& history, int64_t step = 0);
  /// TensorBoard only (no-ops without it): a scalar that is not in metrics.jsonl,
  /// and a histogram of `values`.
  void scalar(const std::string& tag, double value, int64_t step);
  void histogram(const std::string& tag, const at::Tensor& values, int64_t step);
  const std::string& path() const { return path_; }
  bool enabled() const { return enabled_; }

 private:
  std::string path_;
  bool enabled_;
  std::string metrics_path_;
  int metrics_fd_ = -1;
  int64_t metrics_bytes_ = 0;  ///< whole lines written
  std::string history_;
  bool tensorboard_ = false;
  std::string config_text_;
  int64_t start_step_ = 0;
  std::unique_ptr<tensorboard::EventWriter> events_;
  /// The event file, opened at its first use (once a resume's step is known).
  tensorboard::EventWriter* events();
  /// Writes `text` at the end of metrics.jsonl, all of it or (cut back) nothing.
  void append(const std::string& text);

 public:
  ~RunDir();
  RunDir(RunDir&& other) noexcept { *this = std::move(other); }
  RunDir& operator=(RunDir&& other) noexcept;
};

}  // namespace tandem::train
