#include "tandem/util/log.h"

#include <cstdio>

namespace tandem::log {
namespace {
int g_rank = 0;
int g_world = 1;
}  // namespace

void set_rank(int r, int world) {
  g_rank = r;
  g_world = world;
}
int rank() { return g_rank; }

void info(const std::string& msg) {
  if (g_rank != 0) return;
  std::fputs(msg.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void warn(const std::string& msg) {
  if (g_world > 1)
    std::fprintf(stderr, "[rank %d] %s\n", g_rank, msg.c_str());
  else
    std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
}

std::string bytes(double b) {
  if (b >= (1 << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (b >= (1 << 20)) return fmt::format("{:.1f} MiB", b / (1 << 20));
  return fmt::format("{:.1f} KiB", b / 1024);
}

}  // namespace tandem::log
