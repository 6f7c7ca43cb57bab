// The subcommands of the `tandem` program. Each takes the arguments after its name
// and returns the process exit status; errors are thrown as tandem::Error.
#pragma once

#include <string>
#include <vector>

namespace tandem::cli {

int train(const std::vector<std::string>& args);
int generate(const std::vector<std::string>& args);
int inspect(const std::vector<std::string>& args);
int fit_stats(const std::vector<std::string>& args);
int predict(const std::vector<std::string>& args);

/// Exit status of a run stopped by SIGTERM/SIGUSR1 at a step boundary.
constexpr int kExitPreempted = 5;

/// Splits "--config FILE" / "--config=FILE" out of args; returns the file or "".
std::string take_config_path(std::vector<std::string>& args);
bool wants_help(const std::vector<std::string>& args);

}  // namespace tandem::cli
