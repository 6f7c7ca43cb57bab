// The subcommands of the `tandem` program. Each takes the arguments after its name
// and returns the process exit status; errors are thrown as tandem::Error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tandem/comm/communicator.h"

namespace tandem::config {
class OptionSet;
}

namespace tandem::cli {

int train(const std::vector<std::string>& args);
int generate(const std::vector<std::string>& args);
int inspect(const std::vector<std::string>& args);
int fit_stats(const std::vector<std::string>& args);
int predict(const std::vector<std::string>& args);
int export_model(const std::vector<std::string>& args);
int meta(const std::vector<std::string>& args);
int continuous(const std::vector<std::string>& args);
int drift(const std::vector<std::string>& args);

/// "--resume X" / "--resume=X" become --run.resume=X.
void expand_resume(std::vector<std::string>& args);

/// Exit status of a run stopped by SIGTERM/SIGUSR1 at a step boundary.
constexpr int kExitPreempted = 5;

/// Takes "--name VALUE" / "--name=VALUE" out of args; returns VALUE or "".
std::string take_option(std::vector<std::string>& args, const std::string& name);
/// Takes "--name" out of args; whether it was there.
bool take_flag(std::vector<std::string>& args, const std::string& name);
/// take_option as an integer >= 1 (`fallback` when absent); ConfigError otherwise.
int64_t take_positive(std::vector<std::string>& args, const std::string& name, int64_t fallback);
/// The one argument left (a path); an unknown option or a second one is an error.
std::string take_positional(std::vector<std::string>& args, const std::string& command,
                            const std::string& what);
/// Takes "--config FILE" out of args (required: ConfigError naming `command`) and
/// parses FILE, then the rest of args over it, into `options`.
void parse_config(std::vector<std::string> args, config::OptionSet& options,
                  const std::string& command);
bool wants_help(const std::vector<std::string>& args);
/// Parses a checkpoint's saved config text (its config.ini) into `options`.
void parse_saved_config(const std::string& text, config::OptionSet& options);

/// The communicator a command's parse step chose.
struct CommChoice {
  std::string backend = "auto";
  comm::CommOptions options;
};
/// Runs `parse` (reading the command line and the config; it may throw) on every
/// rank, builds the communicator it chose ("auto" after a failure), then agrees: a
/// bad config on any rank stops every rank with exit 2 before any other collective,
/// so it never hangs a job.
std::unique_ptr<comm::Communicator> parse_then_agree(const std::function<CommChoice()>& parse);

}  // namespace tandem::cli
