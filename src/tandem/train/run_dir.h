// A run directory: the effective config.ini and metrics.jsonl (one JSON object per
// event; the last line is the final evaluation). Only rank 0 writes. Every write is
// checked: a failure is an IoError with the operating system's reason, and a line
// that could not be written whole is cut off again, so the file holds whole lines.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace tandem::train {

class RunDir {
 public:
  /// An empty `path` or a non-writing rank makes every call a no-op. A
  /// metrics.jsonl already there (an earlier run's) is a ConfigError unless
  /// `replace` (run.overwrite, or a resume, which rewrites it with its history).
  RunDir(const std::string& path, bool writer, bool replace);
  void write_config(const std::string& ini_text);
  void append_metrics(const nlohmann::json& event);
  /// Every line appended so far (for checkpoints).
  const std::string& history() const { return history_; }
  /// Replaces metrics.jsonl with `history` (a resumed run continues its own).
  void restore_history(const std::string& history);
  const std::string& path() const { return path_; }
  bool enabled() const { return enabled_; }

 private:
  std::string path_;
  bool enabled_;
  std::string metrics_path_;
  int metrics_fd_ = -1;
  int64_t metrics_bytes_ = 0;  ///< whole lines written
  std::string history_;
  /// Writes `text` at the end of metrics.jsonl, all of it or (cut back) nothing.
  void append(const std::string& text);

 public:
  ~RunDir();
  RunDir(RunDir&& other) noexcept { *this = std::move(other); }
  RunDir& operator=(RunDir&& other) noexcept;
};

}  // namespace tandem::train
