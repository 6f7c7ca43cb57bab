#include "tandem/train/run_dir.h"

#include <fmt/format.h>

#include <filesystem>

#include "tandem/util/error.h"

namespace tandem::train {

RunDir::RunDir(const std::string& path, bool writer)
    : path_(path), enabled_(writer && !path.empty()) {
  if (!enabled_) return;
  std::error_code ec;
  std::filesystem::create_directories(path_, ec);
  if (ec) throw ConfigError(fmt::format("run.dir: cannot create '{}': {}", path_, ec.message()));
  const std::string file = path_ + "/metrics.jsonl";
  metrics_.open(file, std::ios::trunc);
  if (!metrics_) throw ConfigError(fmt::format("run.dir: cannot write '{}'", file));
}

void RunDir::write_config(const std::string& ini_text) {
  if (!enabled_) return;
  std::ofstream out(path_ + "/config.ini", std::ios::trunc);
  out << ini_text;
  if (!out) throw Error(fmt::format("cannot write '{}/config.ini'", path_));
}

void RunDir::append_metrics(const nlohmann::json& event) {
  history_ += event.dump() + "\n";
  if (!enabled_) return;
  metrics_ << event.dump() << '\n';
  metrics_.flush();
}

void RunDir::restore_history(const std::string& history) {
  history_ = history;
  if (!enabled_) return;
  metrics_.close();
  metrics_.open(path_ + "/metrics.jsonl", std::ios::trunc);
  metrics_ << history;
  metrics_.flush();
  if (!metrics_) throw Error(fmt::format("cannot write '{}/metrics.jsonl'", path_));
}

}  // namespace tandem::train
