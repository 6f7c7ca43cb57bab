// A run directory: the effective config.ini and metrics.jsonl (one JSON object per
// event; the last line is the final evaluation). Only rank 0 writes.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace tandem::train {

class RunDir {
 public:
  /// An empty `path` or a non-writing rank makes every call a no-op.
  RunDir(const std::string& path, bool writer);
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
  std::ofstream metrics_;
  std::string history_;
};

}  // namespace tandem::train
