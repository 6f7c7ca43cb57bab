// The continuous controller's durable state, in continuous.dir:
//   state.json   the champion, the earlier champions, and the ledger: every file
//                taken from continuous.incoming with its rows and status (pending:
//                not yet trained on; trained; superseded: older than a retrain's
//                window, never trained on but eligible for replay; quarantined). Replaced
//                atomically (temporary file, fsync, rename, fsync the directory), so a promotion
//                and the files it consumed commit together, or not at all.
//   audit.jsonl  one JSON object per event, appended and fsynced (audit.h).
//   models/      champions and challengers (crash-safe checkpoints).
//   quarantine/  files that could not be read.
// Paths inside are relative to the directory.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tandem::continuous {

struct FileEntry {
  int64_t rows = 0;
  int64_t bytes = 0;
  std::string status;  ///< "pending", "trained", "superseded" or "quarantined"
};

struct State {
  std::string champion;            ///< models/..., or "" (none yet)
  double champion_ne = 0;          ///< its NE on the held-out rows when promoted (NaN: unknown)
  std::vector<std::string> earlier;  ///< earlier champions, oldest first
  int64_t next_model = 1;
  double last_retrain = 0;  ///< seconds since the epoch
  int64_t decisions = 0;    ///< promotions, rejections and rollbacks so far
  nlohmann::json last_decision;  ///< the audit event of the last one
  std::map<std::string, FileEntry> files;  ///< by file name, in name (arrival) order

  /// The pending files' rows.
  int64_t pending_rows() const;

  nlohmann::json to_json() const;
  static State from_json(const nlohmann::json& j);
  /// `dir`/state.json, or a fresh state if there is none; DataError if unreadable.
  static State load(const std::string& dir);
  /// Atomically replaces `dir`/state.json.
  void commit(const std::string& dir) const;
};

/// Appends one event (with "time") to `dir`/audit.jsonl and fsyncs it.
void audit(const std::string& dir, nlohmann::json event);
/// The last event in the audit log with this "seq", or null.
nlohmann::json audited_decision(const std::string& dir, int64_t seq);

}  // namespace tandem::continuous
