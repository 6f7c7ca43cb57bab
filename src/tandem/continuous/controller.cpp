#include "tandem/continuous/controller.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <thread>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/comm/agree.h"
#include "tandem/data/loader.h"
#include "tandem/train/trainer.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::continuous {
namespace fs = std::filesystem;
namespace {

volatile std::sig_atomic_t g_stop = 0, g_manual = 0;
extern "C" void on_stop(int) { g_stop = 1; }
extern "C" void on_hup(int) { g_manual = 1; }

void install_signals() {
  std::signal(SIGTERM, on_stop);
  std::signal(SIGINT, on_stop);
  std::signal(SIGHUP, on_hup);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Test hook for the crash tests: die like kill -9 at a named point.
void maybe_die(const char* point) {
  const char* at = std::getenv("TANDEM_CONTINUOUS_KILL");
  if (at && std::strcmp(at, point) == 0) std::raise(SIGKILL);
}

nlohmann::json metrics_json(const train::EvalMetrics& m) {
  return {{"rows", m.count}, {"ne", m.ne}, {"auc", m.auc}, {"logloss", m.logloss}};
}

bool data_file(const std::string& name) {
  const auto ends = [&](const char* s) {
    const size_t n = std::strlen(s);
    return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
  };
  return !name.empty() && name[0] != '.' && !ends(".tmp") && !ends(".part") &&
         (ends(".tsv") || ends(".txt") || ends(".csv"));
}

}  // namespace

Controller::Controller(config::ContinuousConfig cfg, comm::Communicator& comm)
    : cfg_(std::move(cfg)), comm_(comm), dir_(cfg_.continuous.dir) {
  const config::ContinuousSection& c = cfg_.continuous;
  thresholds_.psi = c.psi;
  thresholds_.js = c.js;
  thresholds_.linf = c.linf;
  thresholds_.share = c.drift_share;
  thresholds_.parse_overrides("continuous.thresholds", c.thresholds);
  comm::agree_on(comm_, [&] {
    if (comm_.rank() != 0) return;
    for (const char* sub : {"", "models", "quarantine"}) fs::create_directories(path(sub));
    fs::create_directories(c.incoming);
    state_ = State::load(dir_);
#if TANDEM_WITH_TENSORBOARD
    if (cfg_.train.log.tensorboard)  // a restarted controller goes on after its last decision
      events_ = std::make_unique<tensorboard::EventWriter>(path("tb"), state_.decisions);
#endif
    // A decision committed just before a crash, but not yet in the audit log.
    if (state_.decisions > 0 && audited_decision(dir_, state_.decisions).is_null()) {
      nlohmann::json e = state_.last_decision;
      e["recovered"] = true;
      audit(dir_, e);
    }
    if (state_.champion.empty() && !c.initial.empty()) {
      ckpt::verify(c.initial);  // a bad checkpoint stops here, before anything starts
      const std::string name = "models/initial.h5";
      fs::copy_file(c.initial, path(name), fs::copy_options::overwrite_existing);
      state_.champion = name;
      // Its NE at promotion: the last evaluation of the run that trained it (on that
      // run's held-out rows); unknown, the first measurement on new rows stands in.
      state_.champion_ne = std::numeric_limits<double>::quiet_NaN();
      std::istringstream history(ckpt::read(c.initial).metrics);
      for (std::string line; std::getline(history, line);) {
        const auto e = nlohmann::json::parse(line, nullptr, false);
        if (!e.is_discarded() && e.contains("ne") && e.value("event", "") != "baseline")
          state_.champion_ne = e["ne"].get<double>();
      }
      commit();
      audit(dir_, {{"event", "bootstrap"},
                   {"champion", name},
                   {"from", c.initial},
                   {"ne", std::isfinite(state_.champion_ne) ? nlohmann::json(state_.champion_ne)
                                                             : nlohmann::json()}});
    }
    audit(dir_, {{"event", "start"},
                 {"ranks", comm_.size()},
                 {"champion", state_.champion},
                 {"pending_rows", state_.pending_rows()}});
  });
  share_state();
  load_reference();
}

std::string Controller::path(const std::string& relative) const {
  return (fs::path(dir_) / relative).string();
}

void Controller::commit() {
  if (comm_.rank() == 0) state_.commit(dir_);
}

void Controller::share_state() {
  const std::string text =
      comm::broadcast_text(comm_, comm_.rank() == 0 ? state_.to_json().dump() : "");
  if (comm_.rank() != 0) state_ = State::from_json(nlohmann::json::parse(text));
}

void Controller::load_reference() {
  reference_.reset();
  judged_.clear();
  if (state_.champion.empty()) return;
  const ckpt::State s = ckpt::read(path(state_.champion));
  if (!s.stats.empty()) reference_ = stats::from_tensors(s.stats, path(state_.champion));
}

std::vector<std::string> Controller::pending() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : state_.files)
    if (f.status == "pending") out.push_back(name);
  return out;
}

data::Dataset Controller::dataset_of(const std::vector<std::string>& names) {
  std::vector<data::Dataset> parts;
  for (const std::string& n : names) {
    auto it = indexed_.find(n);
    if (it == indexed_.end()) {
      const std::string file = (fs::path(cfg_.continuous.incoming) / n).string();
      it = indexed_.emplace(n, data::Dataset::index(file, cfg_.train.index_options())).first;
    }
    parts.push_back(it->second);
  }
  return data::Dataset::merged(parts);
}

void Controller::take(const std::vector<std::string>& names) {
  std::vector<std::string> refused;
  for (const std::string& name : names) {
    const std::string file = (fs::path(cfg_.continuous.incoming) / name).string();
    std::string why;
    try {
      indexed_[name] = data::Dataset::index(file, cfg_.train.index_options());
      if (comm_.rank() == 0)
        for (const std::string& line : indexed_[name].findings(file)) log::info(line);
    } catch (const std::exception& e) {
      why = e.what();
    }
    // The same verdict on every rank (a file one rank cannot read is unreadable).
    at::Tensor ok = at::tensor({why.empty() ? int64_t{1} : int64_t{0}}, at::kLong);
    comm_.allreduce(ok, comm::ReduceOp::kMin);
    if (ok.item<int64_t>() != 1) refused.push_back(name);
    if (comm_.rank() != 0) continue;
    std::error_code ec;
    const int64_t bytes = static_cast<int64_t>(fs::file_size(file, ec));
    if (ok.item<int64_t>() == 1) {
      state_.files[name] = {indexed_[name].rows, bytes, "pending"};
      continue;
    }
    if (why.empty()) why = "unreadable on another rank";
    fs::rename(file, path("quarantine/" + name), ec);
    if (ec) {  // another filesystem: copy, then remove
      fs::copy_file(file, path("quarantine/" + name), fs::copy_options::overwrite_existing, ec);
      fs::remove(file, ec);
    }
    state_.files[name] = {0, bytes, "quarantined"};
    log::warnf("continuous: {} quarantined: {}", file, why);
    audit(dir_, {{"event", "quarantine"}, {"file", name}, {"reason", why}});
  }
  for (const std::string& name : refused) indexed_.erase(name);
}

config::TrainConfig Controller::trainer_config() const {
  config::TrainConfig tc = cfg_.train;
  // The controller hands the trainer its data and keeps the models itself.
  if (tc.data.train.empty()) tc.data.train = cfg_.continuous.incoming;
  tc.run.dir = "";
  tc.run.resume = "";
  tc.ckpt.at_end = false;
  tc.ckpt.every_steps = 0;
  tc.ckpt.every_seconds = 0;
  return tc;
}

train::EvalMetrics Controller::judge(const data::Dataset& rows) {
  const train::Datasets data{rows, rows};  // evaluation only: the training side is unused
  train::Trainer t(trainer_config(), comm_, "", nullptr, &data);
  t.restore(ckpt::read(path(state_.champion)));
  return t.evaluate();
}

Controller::Outcome Controller::poll() {
  const config::ContinuousSection& c = cfg_.continuous;
  ++polls_;
  // 1. What arrived, what rank 0's clock and signals say.
  nlohmann::json seen = {{"new", nlohmann::json::array()}, {"settling", 0}};
  if (comm_.rank() == 0) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(c.incoming, ec)) {
      const std::string name = e.path().filename().string();
      if (!e.is_regular_file() || !data_file(name) || state_.files.count(name)) continue;
      const auto age = fs::file_time_type::clock::now() - fs::last_write_time(e.path());
      if (std::chrono::duration<double>(age).count() < c.settle_s) {
        seen["settling"] = seen["settling"].get<int>() + 1;
        continue;
      }
      names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    seen["new"] = names;
    seen["manual"] = g_manual != 0 || fs::exists(path("RETRAIN"));
    seen["since_retrain"] = now_s() - state_.last_retrain;
    seen["stop"] = g_stop != 0;
  }
  seen = nlohmann::json::parse(comm::broadcast_text(comm_, seen.dump()));
  at::Tensor stop = at::tensor({static_cast<int64_t>(g_stop != 0 || seen["stop"].get<bool>())});
  comm_.allreduce(stop, comm::ReduceOp::kMax);
  if (stop.item<int64_t>() != 0) return Outcome::kStop;

  // 2. New files join the ledger.
  const std::vector<std::string> names = seen["new"].get<std::vector<std::string>>();
  if (!names.empty()) {
    take(names);
    commit();
    share_state();
  }

  // 3. The triggers.
  const std::vector<std::string> window = pending();
  const int64_t rows = state_.pending_rows();
  nlohmann::json triggers;
  std::vector<std::string> fired;
  const auto note = [&](const char* name, bool on, nlohmann::json figures) {
    figures["fired"] = on;
    triggers[name] = figures;
    if (on) fired.push_back(name);
  };
  if (c.min_new_rows > 0)
    note("new_data", rows >= c.min_new_rows, {{"rows", rows}, {"min_new_rows", c.min_new_rows}});
  if (c.every_s > 0) {
    const double since = seen["since_retrain"].get<double>();
    note("schedule", rows > 0 && since >= c.every_s, {{"seconds", since}, {"every_s", c.every_s}});
  }
  // Drift and decay look at the pending rows; computed again only when they change.
  std::string key = state_.champion;
  for (const std::string& n : window) key += "|" + n;
  if (rows == 0) {
    drift_ = {};
    decay_.reset();
    judged_.clear();
  } else if (key != judged_) {
    const data::Dataset pending_rows = dataset_of(window);
    drift_ = {};
    if (c.drift && reference_) {
      data::Loader loader(pending_rows, cfg_.train.table_rows(),
                          data::LoaderOptions{0, false, 8192, comm_.rank(), comm_.size()});
      drift_ = stats::drift(loader, comm_, *reference_, thresholds_);
    }
    decay_.reset();
    if (c.max_ne_rise > 0 && !state_.champion.empty()) decay_ = judge(pending_rows);
    judged_ = key;
  }
  if (c.drift) {
    if (!reference_)
      triggers["drift"] = {{"fired", false}, {"off", "the champion has no feature statistics"}};
    else
      note("drift", rows > 0 && drift_.window_drifted,
           {{"drifted_features", drift_.drifted},
            {"share", drift_.share},
            {"drift_share", c.drift_share},
            {"features", drift_.summary()}});
  }
  if (c.max_ne_rise > 0 && rows > 0 && decay_) {
    // A champion whose NE at promotion is unknown (the initial one): its first
    // measurement is the baseline.
    if (std::isnan(state_.champion_ne)) {
      state_.champion_ne = decay_->ne;
      commit();
    }
    const double rise = (decay_->ne - state_.champion_ne) / state_.champion_ne;
    note("decay", rise > c.max_ne_rise,
         {{"ne", decay_->ne},
          {"ne_at_promotion", state_.champion_ne},
          {"rise", rise},
          {"max_ne_rise", c.max_ne_rise}});
  }
  note("manual", rows > 0 && seen["manual"].get<bool>(), nlohmann::json::object());
  // Without a champion the first window that fires trains one.
  if (state_.champion.empty() && !fired.empty())
    log::infof("continuous: no champion yet; this window trains the first one");

  nlohmann::json poll_event = {{"event", "poll"},
                               {"poll", polls_},
                               {"new_files", names},
                               {"settling", seen["settling"]},
                               {"pending_files", window.size()},
                               {"pending_rows", rows},
                               {"triggers", triggers},
                               {"fired", fired}};
  if (c.drift && reference_ && rows > 0) poll_event["drift"] = drift_.to_json(/*drifted_only=*/true);
  if (comm_.rank() == 0) audit(dir_, poll_event);
  log::infof("continuous: poll {}: {} new file(s), {} pending row(s); fired: {}", polls_,
             names.size(), rows, fired.empty() ? "none" : nlohmann::json(fired).dump());
  if (fired.empty()) return Outcome::kIdle;
  nlohmann::json decision;
  if (!retrain(fired, decision)) return Outcome::kStop;
  return Outcome::kRetrained;
}

bool Controller::retrain(const std::vector<std::string>& reasons, nlohmann::json& decision) {
  const config::ContinuousSection& c = cfg_.continuous;
  const auto began = std::chrono::steady_clock::now();
  // The window: the newest pending files, as many as hold window_rows and at most
  // window_files. The older pending files are superseded: never trained on, but
  // eligible for replay.
  std::vector<std::string> window = pending(), superseded;
  {
    int64_t rows = 0;
    size_t first = window.size();
    const auto more = [&] {
      const size_t taken = window.size() - first;
      return first > 0 && (c.window_rows <= 0 || rows < c.window_rows) &&
             (c.window_files <= 0 || static_cast<int64_t>(taken) < c.window_files);
    };
    while (more()) rows += state_.files[window[--first]].rows;
    superseded.assign(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(first));
    window.erase(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(first));
  }
  auto [train_part, holdout] = dataset_of(window).split(c.holdout);
  // Replay: the newest older files (trained, or superseded now or before), as many
  // rows as replay x the window's.
  std::vector<std::string> replay;
  if (c.replay > 0) {
    const double want = c.replay * static_cast<double>(train_part.rows);
    double got = 0;
    for (auto it = state_.files.rbegin(); it != state_.files.rend() && got < want; ++it)
      if (it->second.status == "trained" || it->second.status == "superseded" ||
          std::find(superseded.begin(), superseded.end(), it->first) != superseded.end()) {
        replay.insert(replay.begin(), it->first);
        got += static_cast<double>(it->second.rows);
      }
  }
  const data::Dataset train_rows = data::Dataset::merged({train_part, dataset_of(replay)});
  if (holdout.rows == 0 || train_part.rows == 0) {
    if (comm_.rank() == 0)
      audit(dir_, {{"event", "retrain_skipped"},
                   {"reason", fmt::format("the window ({} rows in {} blocks) is too small to "
                                          "hold out {} of its blocks and train on the rest",
                                          train_part.rows + holdout.rows,
                                          train_part.blocks.size() + holdout.blocks.size(),
                                          c.holdout)}});
    return true;
  }

  config::TrainConfig tc = trainer_config();
  tc.run.seed += state_.next_model;  // another shuffle each retrain
  const train::Datasets data{train_rows, holdout};
  train::Trainer challenger(tc, comm_, "", nullptr, &data);
  const bool warm = !state_.champion.empty();
  if (warm) challenger.warm_start(ckpt::read(path(state_.champion)));
  const train::TrainSummary summary = challenger.run();
  install_signals();  // the trainer restored the default handlers
  if (summary.preempted) return false;
  maybe_die("trained");

  // The challenger with its drift reference: the statistics of its training rows
  // (the trainer fitted them itself when it did not start warm).
  ckpt::State saved = challenger.snapshot();
  if (warm || saved.stats.empty()) {
    data::Loader loader(train_rows, cfg_.train.table_rows(),
                        data::LoaderOptions{0, false, 8192, comm_.rank(), comm_.size()});
    saved.stats = stats::to_tensors(stats::fit(loader, comm_, {c.bins, c.top}));
  }
  const std::string model = fmt::format("models/model-{:06d}.h5", state_.next_model);
  comm::agree_on(comm_, [&] {
    if (comm_.rank() == 0) ckpt::write(path(model), saved, {});
  });
  maybe_die("written");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();

  // Both models on the same held-out rows.
  const train::EvalMetrics& mine = summary.final;
  std::optional<train::EvalMetrics> champion;
  if (warm) champion = judge(holdout);
  bool promote = true;
  std::string reason = "no champion yet";
  if (champion) {
    const double gain = champion->ne - mine.ne, auc_drop = champion->auc - mine.auc;
    promote = gain >= c.min_gain && auc_drop <= c.max_auc_drop;
    reason = fmt::format("NE {:.5f} vs {:.5f} (gain {:+.5f}, needs {}), AUC {:.5f} vs {:.5f} "
                         "(drop {:+.5f}, at most {})",
                         mine.ne, champion->ne, gain, c.min_gain, mine.auc, champion->auc,
                         auc_drop, c.max_auc_drop);
  }
  nlohmann::json retrain_event = {{"event", "retrain"},
                                  {"model", model},
                                  {"reasons", reasons},
                                  {"warm_start", warm ? state_.champion : ""},
                                  {"files", window},
                                  {"superseded_files", superseded},
                                  {"replay_files", replay},
                                  {"rows", train_rows.rows},
                                  {"held_out_rows", holdout.rows},
                                  {"steps", summary.steps},
                                  {"seconds", seconds}};
  nlohmann::json evaluation = {{"event", "evaluation"},
                               {"challenger", model},
                               {"challenger_metrics", metrics_json(mine)}};
  if (champion) {
    evaluation["champion"] = state_.champion;
    evaluation["champion_metrics"] = metrics_json(*champion);
  }
  if (comm_.rank() == 0) {
    audit(dir_, retrain_event);
    audit(dir_, evaluation);
    // One atomic write: the decision and the files it consumed.
    for (const std::string& n : window) state_.files[n].status = "trained";
    for (const std::string& n : superseded) state_.files[n].status = "superseded";
    state_.next_model += 1;
    state_.last_retrain = now_s();
    state_.decisions += 1;
    decision = {{"event", promote ? "promotion" : "rejection"},
                {"seq", state_.decisions},
                {"challenger", model},
                {"champion", state_.champion},
                {"reason", reason}};
    if (promote) {
      if (!state_.champion.empty()) state_.earlier.push_back(state_.champion);
      state_.champion = model;
      state_.champion_ne = mine.ne;
    }
    state_.last_decision = decision;
    // Earlier champions beyond `keep` are deleted after the commit.
    std::vector<std::string> drop;
    while (static_cast<int64_t>(state_.earlier.size()) > c.keep) {
      drop.push_back(state_.earlier.front());
      state_.earlier.erase(state_.earlier.begin());
    }
    commit();
    maybe_die("committed");
    audit(dir_, decision);
    if (events_) {  // at the decision's number: the models' metrics and the verdict
      const int64_t seq = state_.decisions;
      const std::pair<const char*, const train::EvalMetrics*> models[] = {
          {"challenger", &mine}, {"champion", champion ? &*champion : nullptr}};
      for (const auto& [who, m] : models) {
        if (!m) continue;
        const nlohmann::json metrics = metrics_json(*m);  // alive while items() walks it
        for (const auto& [key, value] : metrics.items())
          if (value.is_number())
            events_->scalar(fmt::format("{}/{}", who, key), value.get<double>(), seq);
      }
      events_->scalar("decision/promoted", promote ? 1 : 0, seq);
      events_->scalar("retrain/rows", static_cast<double>(train_rows.rows), seq);
      events_->scalar("retrain/steps", static_cast<double>(summary.steps), seq);
      events_->scalar("retrain/seconds", seconds, seq);
      events_->flush();
    }
    std::error_code ec;
    for (const std::string& d : drop) fs::remove(path(d), ec);
    // Rejected challengers: the newest `keep` stay (their metrics are in the log).
    std::vector<std::string> rejected;
    for (const auto& e : fs::directory_iterator(path("models"), ec)) {
      const std::string name = "models/" + e.path().filename().string();
      if (name != state_.champion &&
          std::find(state_.earlier.begin(), state_.earlier.end(), name) == state_.earlier.end())
        rejected.push_back(name);
    }
    std::sort(rejected.begin(), rejected.end());
    for (size_t i = 0; i + static_cast<size_t>(c.keep) < rejected.size(); ++i)
      fs::remove(path(rejected[i]), ec);
    fs::remove(path("RETRAIN"), ec);
    log::infof("continuous: {} {}: {}", promote ? "promoted" : "rejected", model, reason);
  }
  g_manual = 0;
  share_state();
  if (promote) load_reference();
  judged_.clear();
  for (const std::string& n : window) indexed_.erase(n);
  for (const std::string& n : superseded) indexed_.erase(n);
  return true;
}

int Controller::run() {
  install_signals();
  const double poll_s = cfg_.continuous.poll_s;
  for (;;) {
    const Outcome o = poll();
    if (o == Outcome::kStop) break;
    if (cfg_.continuous.max_polls > 0 && polls_ >= cfg_.continuous.max_polls) {
      if (comm_.rank() == 0) audit(dir_, {{"event", "stop"}, {"reason", "max_polls"}});
      return 0;
    }
    // Sleep in short steps so that SIGTERM is answered promptly.
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(poll_s));
    while (!g_stop && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (comm_.rank() == 0) audit(dir_, {{"event", "stop"}, {"reason", "signal"}});
  log::info("continuous: stopped by a signal");
  return 5;
}

void Controller::rollback() {
  comm::agree_on(comm_, [&] {
    if (comm_.rank() != 0) return;
    if (state_.earlier.empty())
      throw ConfigError(fmt::format("--rollback: {} has no earlier champion to return to",
                                    path("state.json")));
    const std::string from = state_.champion;
    state_.champion = state_.earlier.back();
    state_.earlier.pop_back();
    state_.champion_ne = std::numeric_limits<double>::quiet_NaN();  // measured again
    state_.decisions += 1;
    state_.last_decision = {{"event", "rollback"},
                            {"seq", state_.decisions},
                            {"from", from},
                            {"to", state_.champion}};
    commit();
    audit(dir_, state_.last_decision);
    log::infof("continuous: rolled back from {} to {}", from, state_.champion);
  });
  share_state();
}

}  // namespace tandem::continuous
