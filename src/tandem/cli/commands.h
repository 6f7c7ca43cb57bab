// The subcommands of the `tandem` program. Each takes the arguments after its name
// and returns the process exit status; errors are thrown as tandem::Error.
#pragma once

#include <string>
#include <vector>

namespace tandem::cli {

int train(const std::vector<std::string>& args);
int generate(const std::vector<std::string>& args);

/// Splits "--config FILE" / "--config=FILE" out of args; returns the file or "".
std::string take_config_path(std::vector<std::string>& args);
bool wants_help(const std::vector<std::string>& args);

}  // namespace tandem::cli
