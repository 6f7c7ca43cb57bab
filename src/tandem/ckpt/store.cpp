#include "tandem/ckpt/store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include "tandem/ckpt/sharded.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::ckpt {
namespace fs = std::filesystem;
namespace {

int64_t step_of(const std::string& file) {
  // step-000000123.h5
  // (not its shards, step-000000123.h5.shard-*.h5)
  const std::string name = fs::path(file).filename().string();
  if (name.rfind("step-", 0) != 0 || name.size() < 9 || name.substr(name.size() - 3) != ".h5")
    return -1;
  const std::string digits = name.substr(5, name.size() - 8);
  if (digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

}  // namespace

Store::Store(std::string dir, StoreOptions options) : dir_(std::move(dir)), options_(options) {
  fs::create_directories(dir_);
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().extension() == ".tmp") {
      log::infof("checkpoint: removing {} (left by an interrupted save)", e.path().string());
      fs::remove(e.path());
    }
}

std::vector<std::string> Store::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const int64_t step = step_of(e.path().string());
    if (step >= 0 && e.path().extension() == ".h5") found.push_back({step, e.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [step, p] : found) out.push_back(p);
  return out;
}

std::string Store::save(const State& s, const std::function<void(const std::string&)>& commit) {
  const std::string path = (fs::path(dir_) / fmt::format("step-{:09d}.h5", s.step)).string();
  write(path, s, options_.write);
  if (commit) commit(path);
  crash_point("latest");
  write_atomically((fs::path(dir_) / "latest").string(), fs::path(path).filename().string() + "\n");
  prune(path);
  return path;
}

void Store::set_aside(const std::string& path, const std::string& why) {
  const fs::path aside = fs::path(dir_) / "corrupt";
  std::error_code ec;
  fs::create_directories(aside, ec);
  const std::string name = fs::path(path).filename().string();
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_regular_file() && e.path().filename().string().rfind(name, 0) == 0)
      fs::rename(e.path(), aside / e.path().filename(), ec);  // with its manifest and shards
  log::warn(fmt::format("checkpoint: {} does not load ({}); moved to {}", path, why,
                        (aside / name).string()));
}

void Store::remove(const std::string& path) {
  // The manifest first: without it the shards are no checkpoint any more.
  fs::remove(manifest_path(path));
  fs::remove(path);
  const std::string shard_prefix = fs::path(path).filename().string() + ".shard-";
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().rfind(shard_prefix, 0) == 0) fs::remove(e.path());
}

void Store::prune(const std::string& saved) {
  // Only this run's checkpoints whose header reads count; the unreadable go aside,
  // so that no file with a higher step crowds out the one just saved.
  std::vector<std::pair<std::string, double>> all;  // path, monitor
  for (const std::string& p : list()) {
    try {
      const State h = read_header(p, options_.write.locking);
      if (p == saved || ours(h.run_id)) all.push_back({p, h.monitor});
    } catch (const Error& e) {
      set_aside(p, e.what());
    }
  }
  std::vector<std::string> keep{saved};
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = std::max<int64_t>(0, n - options_.keep_last); i < n; ++i)
    keep.push_back(all[i].first);
  std::vector<std::pair<double, std::string>> scored;
  for (const auto& [p, m] : all)
    if (std::isfinite(m)) scored.push_back({options_.maximize ? -m : m, p});
  std::sort(scored.begin(), scored.end());
  for (int64_t i = 0; i < std::min<int64_t>(options_.keep_best, scored.size()); ++i)
    keep.push_back(scored[i].second);
  for (const auto& [p, m] : all)
    if (std::find(keep.begin(), keep.end(), p) == keep.end()) remove(p);
}

std::optional<std::string> Store::latest_valid() {
  std::vector<std::string> candidates = list();
  std::reverse(candidates.begin(), candidates.end());
  // `latest` first when it names an existing file (it is the newest committed).
  std::ifstream pointer((fs::path(dir_) / "latest").string());
  std::string name;
  if (pointer && std::getline(pointer, name) && !name.empty()) {
    const std::string p = (fs::path(dir_) / name).string();
    candidates.erase(std::remove(candidates.begin(), candidates.end(), p), candidates.end());
    if (fs::exists(p)) candidates.insert(candidates.begin(), p);
  }
  for (const std::string& p : candidates) {
    try {
      const State h = read_header(p, options_.write.locking);
      if (!ours(h.run_id)) {
        log::warn(fmt::format("checkpoint: {} is of run {}, not this run ({}); not resumed", p,
                              h.run_id, run_));
        continue;
      }
      verify(p, options_.write.locking);
      if (h.table_shards > 0) verify_sharded(p, options_.write.locking, /*deep=*/false);
      return p;
    } catch (const Error& e) {
      set_aside(p, e.what());
    }
  }
  return std::nullopt;
}

std::string Store::claim(const std::string& spec, bool overwrite) {
  const std::string id_file = (fs::path(dir_) / "run_id").string();
  std::string owner;
  if (std::ifstream in(id_file); in) std::getline(in, owner);
  std::string resume;
  if (spec == "auto") {
    // The directory's run continues; a directory without an id (none yet, or
    // checkpoints from before runs had ids) becomes a new run's.
    run_ = owner;
    if (const auto found = latest_valid()) resume = *found;
    if (run_.empty() && !resume.empty()) run_ = read_header(resume, options_.write.locking).run_id;
  } else if (!spec.empty()) {
    resume = spec;
    run_ = read_header(spec, options_.write.locking).run_id;
  }
  // A fresh start over a directory whose run saved nothing keeps its id (as when
  // the parameter-server launch claims it before the trainer does).
  if (run_.empty()) run_ = spec.empty() && !owner.empty() && list().empty() ? owner : new_run_id();
  const auto claim_id = [&] {
    if (owner != run_) write_atomically(id_file, run_ + "\n");
  };
  if (spec == "auto") {  // another run's files are skipped, saying so
    claim_id();
    return resume;
  }
  // Another run's checkpoints (for a fresh start, any file): refused, or deleted
  // when the user says so. One from before runs had ids is another run's only when
  // the directory names one.
  std::vector<std::string> foreign;
  for (const std::string& p : list()) {
    if (p == resume) continue;
    if (spec.empty()) {
      foreign.push_back(p);
      continue;
    }
    try {
      const std::string of = read_header(p, options_.write.locking).run_id;
      if (of != run_ && !(of.empty() && (owner.empty() || owner == run_))) foreign.push_back(p);
    } catch (const Error&) {
      // unreadable: the next save sets it aside
    }
  }
  if (!foreign.empty() && !overwrite)
    throw ConfigError(fmt::format(
        "ckpt.dir: '{}' holds {} checkpoint(s) of another run{} (newest {}): resume it with "
        "--resume auto, choose another run.dir or ckpt.dir, or set run.overwrite=true to "
        "delete them",
        dir_, foreign.size(), owner.empty() ? "" : " (" + owner + ")",
        fs::path(foreign.back()).filename().string()));
  // The id first: what a crash leaves of the deletion is another run's.
  claim_id();
  if (!foreign.empty())
    log::warn(fmt::format("checkpoint: run.overwrite: deleting {} checkpoint(s) of run {} in {}",
                          foreign.size(), owner.empty() ? "?" : owner, dir_));
  for (const std::string& p : foreign) remove(p);
  return resume;
}

std::string new_run_id() {
  std::random_device rd;
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y%m%d-%H%M%S", &utc);
  return fmt::format("{}-{:08x}", when, static_cast<uint32_t>(rd()));
}

}  // namespace tandem::ckpt
