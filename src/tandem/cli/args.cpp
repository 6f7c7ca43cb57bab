// Command-line helpers shared by the subcommands: options are taken out of the
// argument list as they are recognised, so what is left is either a positional
// argument or an error.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "tandem/cli/commands.h"
#include "tandem/comm/agree.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/options.h"
#include "tandem/util/error.h"

namespace tandem::cli {

std::string take_option(std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name) {
      if (i + 1 >= args.size()) throw ConfigError(name + " needs a value");
      std::string v = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                 args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      return v;
    }
    if (args[i].rfind(name + "=", 0) == 0) {
      std::string v = args[i].substr(name.size() + 1);
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      return v;
    }
  }
  return "";
}

bool take_flag(std::vector<std::string>& args, const std::string& name) {
  const auto it = std::find(args.begin(), args.end(), name);
  if (it == args.end()) return false;
  args.erase(it);
  return true;
}

int64_t take_positive(std::vector<std::string>& args, const std::string& name, int64_t fallback) {
  const std::string v = take_option(args, name);
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    const int64_t n = std::stoll(v, &used);
    if (n >= 1 && used == v.size()) return n;
  } catch (...) {
  }
  throw ConfigError(fmt::format("{}: '{}' is not a positive integer", name, v));
}

std::string take_positional(std::vector<std::string>& args, const std::string& command,
                            const std::string& what) {
  std::string value;
  for (const std::string& a : args) {
    if (a.rfind("--", 0) == 0) throw ConfigError(command + ": unknown option " + a);
    if (!value.empty()) throw ConfigError(fmt::format("{}: one {} at a time", command, what));
    value = a;
  }
  if (value.empty()) throw ConfigError(fmt::format("{}: a {} path is required", command, what));
  args.clear();
  return value;
}

void parse_config(std::vector<std::string> args, config::OptionSet& options,
                  const std::string& command) {
  const std::string path = take_option(args, "--config");
  if (path.empty()) throw ConfigError(command + ": --config FILE is required");
  options.parse(args, path);
}

bool wants_help(const std::vector<std::string>& args) {
  return std::find(args.begin(), args.end(), "--help") != args.end() ||
         std::find(args.begin(), args.end(), "-h") != args.end();
}

void expand_resume(std::vector<std::string>& args) {
  const std::string resume = take_option(args, "--resume");
  if (!resume.empty()) args.push_back("--run.resume=" + resume);
  const auto flag = std::find(args.begin(), args.end(), "--resume-allow-changed-data");
  if (flag != args.end()) *flag = "--run.allow_changed_data=true";
}

std::unique_ptr<comm::Communicator> parse_then_agree(const std::function<CommChoice()>& parse) {
  CommChoice choice;
  std::exception_ptr failure;
  try {
    choice = parse();
  } catch (...) {
    failure = std::current_exception();
    choice = CommChoice{};
  }
  std::unique_ptr<comm::Communicator> comm =
      comm::Runtime::get().make_communicator(choice.backend, choice.options);
  comm::agree(*comm, failure);
  return comm;
}

void parse_saved_config(const std::string& text, config::OptionSet& options) {
  // The parser reads files: the text goes through a private temporary one.
  const auto ini = std::filesystem::temp_directory_path() /
                   fmt::format("tandem-config-{}-{}.ini", ::getpid(), comm::Runtime::get().rank());
  std::ofstream(ini) << text;
  try {
    options.parse({}, ini.string());
  } catch (...) {
    std::filesystem::remove(ini);
    throw;
  }
  std::filesystem::remove(ini);
}

}  // namespace tandem::cli
