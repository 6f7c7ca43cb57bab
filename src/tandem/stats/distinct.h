// Distinct values per categorical column, exactly, over all ranks (tandem
// fit-stats --distinct), and the table size that the hashing trick needs for them.
// The loader must map each value to a 63-bit hash rather than into a table
// (kRawIds as every table size: hash_category then keeps almost all the bits), so
// two values share an id only with probability ~n^2 / 2^64. Each id is sent to the
// rank id % world, which keeps it in its set: memory is about 40 bytes per distinct
// value, spread over the ranks.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "tandem/comm/communicator.h"
#include "tandem/data/loader.h"

namespace tandem::stats {

/// Table size for the loader of distinct_values(): the values' own hashes.
constexpr int64_t kRawIds = std::numeric_limits<int64_t>::max();

/// Distinct non-missing values of each categorical column of the loader's rows,
/// summed over all ranks; a collective (every rank calls it).
std::vector<int64_t> distinct_values(data::Loader& raw_ids, comm::Communicator& comm);

/// The smallest table (rows, row 0 = missing) in which, hashing `distinct` values
/// uniformly, the expected share of values that share their row with another is at
/// most `share`: 1 - (1 - 1/m)^(n - 1) <= share, i.e. m >= 1 / (1 - (1 - share)^(1 / (n - 1))).
int64_t suggested_rows(int64_t distinct, double share);

}  // namespace tandem::stats
