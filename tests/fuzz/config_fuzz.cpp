// libFuzzer target for the INI config reader (config::OptionSet over every key of
// `tandem train`) and the checks after it. Any file must either give a config that
// validates and whose config.ini (to_ini) reads back to itself, or a ConfigError
// that is one printable line; never another exception, a crash or an invalid
// access (AddressSanitizer + UndefinedBehaviorSanitizer). Built and run by
// tests/fuzz/run.sh.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tandem/config/train_config.h"
#include "tandem/util/error.h"

namespace {

std::string temp_path(const char* what) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/tandem-config-fuzz-" + std::to_string(::getpid()) +
         what;
}

void write(const std::string& path, const char* data, size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(data, static_cast<long>(size));
}

// The config of `path`, checked as `tandem train` checks it; its to_ini() text.
std::string load(const std::string& path) {
  tandem::config::TrainConfig cfg;
  tandem::config::OptionSet options = cfg.options();
  options.parse({}, path);
  cfg.validate(1);
  cfg.validate_ps(1);
  (void)cfg.table_rows();
  (void)cfg.bottom_sizes();
  (void)cfg.top_sizes();
  return options.to_ini();
}

void one_printable_line(const std::string& message) {
  if (message.empty()) std::abort();
  for (char c : message)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {  // no control byte: one line
      std::fprintf(stderr, "not one printable line: %s\n", message.c_str());
      std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = temp_path(".ini"), again = temp_path("-again.ini");
  write(path, reinterpret_cast<const char*>(data), size);
  std::string ini;
  try {
    ini = load(path);
  } catch (const tandem::ConfigError& e) {
    one_printable_line(e.what());
    return 0;
  }
  // The effective config reads back to itself: config.ini reproduces the run.
  write(again, ini.data(), ini.size());
  try {
    if (load(again) != ini) std::abort();
  } catch (const tandem::ConfigError& e) {
    std::fprintf(stderr, "config.ini does not read back: %s\n", e.what());
    std::abort();
  }
  return 0;
}
