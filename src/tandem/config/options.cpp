#include "tandem/config/options.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace po = boost::program_options;

namespace tandem::config {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// Where `key` ("section.name") is set in an INI file: its line (0 when it cannot
// be found) and its value as written.
std::pair<int, std::string> locate_key(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line, section;
  for (int no = 1; std::getline(in, line); ++no) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = trim(t.substr(1, t.size() - 2));
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = trim(t.substr(0, eq));
    if ((section.empty() ? name : section + "." + name) == key) return {no, trim(t.substr(eq + 1))};
  }
  return {0, ""};
}

// The value of `key` on the command line ("--key=value" or "--key value").
std::string command_line_value(const std::vector<std::string>& args, const std::string& key) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind("--" + key + "=", 0) == 0) return args[i].substr(key.size() + 3);
    if (args[i] == "--" + key && i + 1 < args.size()) return args[i + 1];
  }
  return "";
}

// One line for a Boost option error. Boost's own what() fills a template by search
// and replace and never ends when a value holds the placeholder it replaces (a
// config value "%value%" hangs it: found by tests/fuzz config), so the line is built
// here from the option's name (which Boost gives without substituting) and the
// value as written. Errors without an option name have fixed texts.
std::string describe(const po::error& e,
                     const std::function<std::string(const std::string&)>& value_of,
                     std::string* key_out) {
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
  if (!named) return log::printable(e.what(), 400);
  std::string key = named->get_option_name();
  key.erase(0, key.find_first_not_of('-'));
  *key_out = key;
  const std::string shown = log::printable(key, 80);
  if (dynamic_cast<const po::unknown_option*>(&e))
    return fmt::format("unrecognised option '{}'", shown);
  if (dynamic_cast<const po::multiple_occurrences*>(&e))
    return fmt::format("option '{}' cannot be specified more than once", shown);
  if (dynamic_cast<const po::validation_error*>(&e))
    return fmt::format("the value '{}' of option '{}' is invalid",
                       log::printable(value_of(key), 80), shown);
  if (dynamic_cast<const po::invalid_syntax*>(&e))
    return fmt::format("invalid syntax at option '{}'", shown);
  return fmt::format("option '{}' is invalid", shown);
}

}  // namespace

void OptionSet::parse(const std::vector<std::string>& args, const std::string& ini_path) {
  po::variables_map vm;
  std::string key;
  const auto from_args = [&](const std::string& k) { return command_line_value(args, k); };
  try {
    const auto style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(args).options(desc_).style(style).run(), vm);
  } catch (const po::error& e) {
    throw ConfigError("command line: " + describe(e, from_args, &key));
  }
  if (!ini_path.empty()) {
    std::error_code ec;
    if (std::filesystem::is_directory(ini_path, ec))
      throw ConfigError(fmt::format("config file '{}' is a directory", ini_path));
    std::ifstream in(ini_path);
    if (!in) throw ConfigError(fmt::format("cannot open config file '{}'", ini_path));
    try {
      po::store(po::parse_config_file(in, desc_, /*allow_unregistered=*/false), vm);
    } catch (const po::error& e) {
      const std::string what = describe(
          e, [&](const std::string& k) { return locate_key(ini_path, k).second; }, &key);
      const int line = key.empty() ? 0 : locate_key(ini_path, key).first;
      throw ConfigError(
          fmt::format("{}{}: {}", ini_path, line > 0 ? fmt::format(":{}", line) : "", what));
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("{}: {}", ini_path.empty() ? "command line" : ini_path,
                                  describe(e, from_args, &key)));
  }
}

std::string OptionSet::help() const {
  std::ostringstream os;
  os << desc_;
  return os.str();
}

std::string OptionSet::to_ini() const {
  std::map<std::string, std::vector<const Entry*>> by_section;
  std::vector<std::string> order;
  for (const Entry& e : entries_) {
    const auto dot = e.key.find('.');
    const std::string section = dot == std::string::npos ? "" : e.key.substr(0, dot);
    if (!by_section.count(section)) order.push_back(section);
    by_section[section].push_back(&e);
  }
  std::ostringstream os;
  for (const std::string& s : order) {
    if (!s.empty()) os << '[' << s << "]\n";
    for (const Entry* e : by_section[s])
      os << e->key.substr(s.empty() ? 0 : s.size() + 1) << " = " << e->print() << '\n';
    os << '\n';
  }
  return os.str();
}

std::vector<int64_t> parse_int_list(const std::string& key, const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item.empty()) continue;
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size())
      throw ConfigError(fmt::format("{}: '{}' is not an integer list (bad item '{}')", key,
                                    log::printable(text, 80), log::printable(item, 40)));
    out.push_back(v);
  }
  return out;
}

void require(bool ok, const std::string& key, const std::string& message) {
  if (!ok) throw ConfigError(fmt::format("{}: {}", key, message));
}

void one_of(const std::string& key, const std::string& value,
            std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += list.empty() ? a : std::string(", ") + a;
  }
  throw ConfigError(fmt::format("{}: '{}' is not one of {}", key, log::printable(value, 40), list));
}

}  // namespace tandem::config
