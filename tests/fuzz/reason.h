// What every fuzz target asks of a refused input's reason: one line of printable
// ASCII (escaped user bytes), never empty; otherwise the target aborts.
#pragma once

#include <cstdlib>
#include <string>

inline void expect_printable_reason(const std::string& why) {
  if (why.empty()) std::abort();
  for (char c : why)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) std::abort();
}
