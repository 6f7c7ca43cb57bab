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

std::string printable(std::string_view text, size_t max) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f)
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02X}", c);
  }
  if (text.size() > max) out += "...";
  return out;
}

}  // namespace tandem::log
