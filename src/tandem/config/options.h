// A set of typed options read from an INI file and from `--section.key=value`
// command-line overrides, with Boost.Program_options. Each option is bound to a
// field whose initial value is its default, so defaults live in one place.
#pragma once

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace tandem::config {

class OptionSet {
 public:
  explicit OptionSet(const std::string& caption) : desc_(caption) {}

  /// Binds `key` ("section.name") to *target; the current value is the default.
  template <class T>
  OptionSet& add(const std::string& key, T* target, const std::string& help) {
    // fmt prints the shortest text that reads back exactly (0.1, not
    // 0.10000000000000001) and bools as true/false, for --help and config.ini alike.
    desc_.add_options()(key.c_str(),
                        boost::program_options::value<T>(target)->default_value(
                            *target, fmt::format("{}", *target)),
                        help.c_str());
    entries_.push_back({key, [target] { return fmt::format("{}", *target); }});
    return *this;
  }

  /// Parses `args` (each "--key=value" or "--key value") and then, when
  /// `ini_path` is non-empty, that INI file; the command line wins. Unknown keys,
  /// bad values and unreadable files throw ConfigError naming the key and the file
  /// (with its line where one applies).
  void parse(const std::vector<std::string>& args, const std::string& ini_path = "");

  /// Every option with its default and meaning, for --help.
  std::string help() const;
  /// The effective values as an INI document, one [section] per key prefix.
  std::string to_ini() const;

 private:
  struct Entry {
    std::string key;
    std::function<std::string()> print;
  };
  boost::program_options::options_description desc_;
  std::vector<Entry> entries_;
};

/// Splits "a,b,c" into integers; throws ConfigError naming `key` on a bad item.
std::vector<int64_t> parse_int_list(const std::string& key, const std::string& text);

/// Validation helpers: throw ConfigError "KEY: MESSAGE" unless `ok`, or unless
/// `value` is one of `allowed`.
void require(bool ok, const std::string& key, const std::string& message);
void one_of(const std::string& key, const std::string& value,
            std::initializer_list<const char*> allowed);

}  // namespace tandem::config
