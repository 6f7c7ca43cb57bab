// Rank-aware logging: rank 0 reports progress, other ranks speak only when
// something is wrong, and then they say which rank they are.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace tandem::log {

/// Set once by the runtime; before that every message is treated as rank 0's of 1.
void set_rank(int rank, int world);
int rank();

/// Printed by rank 0 only, to stdout.
void info(const std::string& msg);
/// Printed by every rank to stderr, prefixed with the rank when there are several.
void warn(const std::string& msg);
/// A byte count for people: "16.9 MiB", "1.00 GiB".
std::string bytes(double b);
/// User data fit for a one-line message: bytes that do not print as ASCII are
/// escaped ("\x00", "\xEF\xBB\xBF"), and text past `max` bytes becomes "...".
std::string printable(std::string_view text, size_t max = 32);

template <class... Args>
void infof(fmt::format_string<Args...> f, Args&&... args) {
  info(fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warnf(fmt::format_string<Args...> f, Args&&... args) {
  warn(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tandem::log
