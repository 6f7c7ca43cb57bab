#include "tandem/continuous/state.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/util/error.h"

namespace tandem::continuous {
namespace fs = std::filesystem;

int64_t State::pending_rows() const {
  int64_t rows = 0;
  for (const auto& [name, f] : files)
    if (f.status == "pending") rows += f.rows;
  return rows;
}

nlohmann::json State::to_json() const {
  nlohmann::json fj = nlohmann::json::object();
  for (const auto& [name, f] : files)
    fj[name] = {{"rows", f.rows}, {"bytes", f.bytes}, {"status", f.status}};
  return {{"format", "tandem-continuous-state"},
          {"version", 1},
          {"champion", champion},
          {"champion_ne", std::isfinite(champion_ne) ? nlohmann::json(champion_ne) : nullptr},
          {"earlier", earlier},
          {"next_model", next_model},
          {"last_retrain", last_retrain},
          {"decisions", decisions},
          {"last_decision", last_decision},
          {"files", fj}};
}

State State::from_json(const nlohmann::json& j) {
  if (j.value("format", "") != "tandem-continuous-state")
    throw DataError("not a tandem continuous state");
  State s;
  s.champion = j.at("champion").get<std::string>();
  s.champion_ne = j.at("champion_ne").is_number() ? j.at("champion_ne").get<double>()
                                                   : std::numeric_limits<double>::quiet_NaN();
  s.earlier = j.at("earlier").get<std::vector<std::string>>();
  s.next_model = j.at("next_model").get<int64_t>();
  s.last_retrain = j.at("last_retrain").get<double>();
  s.decisions = j.at("decisions").get<int64_t>();
  s.last_decision = j.at("last_decision");
  for (const auto& [name, f] : j.at("files").items())
    s.files[name] = {f.at("rows").get<int64_t>(), f.at("bytes").get<int64_t>(),
                     f.at("status").get<std::string>()};
  return s;
}

State State::load(const std::string& dir) {
  const std::string path = (fs::path(dir) / "state.json").string();
  std::ifstream in(path);
  if (!in) {
    State fresh;
    fresh.champion_ne = std::numeric_limits<double>::quiet_NaN();
    return fresh;
  }
  try {
    return from_json(nlohmann::json::parse(in));
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: unreadable controller state: {}", path, e.what()));
  }
}

void State::commit(const std::string& dir) const {
  ckpt::write_atomically((fs::path(dir) / "state.json").string(), to_json().dump(1) + "\n");
}

void audit(const std::string& dir, nlohmann::json event) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  nlohmann::json line = {{"time", stamp}};
  line.update(event);
  const std::string text = line.dump() + "\n";
  const std::string path = (fs::path(dir) / "audit.jsonl").string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("{}: cannot open the audit log", path));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw Error(fmt::format("{}: cannot append to the audit log", path));
}

nlohmann::json audited_decision(const std::string& dir, int64_t seq) {
  std::ifstream in((fs::path(dir) / "audit.jsonl").string());
  nlohmann::json found;
  for (std::string line; std::getline(in, line);) {
    const auto e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_discarded() && e.value("seq", int64_t{-1}) == seq) found = e;
  }
  return found;
}

}  // namespace tandem::continuous
