// The one integer mixer used for hashing ids, seeding and deterministic splits.
#pragma once

#include <cstdint>

namespace tandem {

/// splitmix64's finaliser: a fast bijection of 64-bit integers with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace tandem
