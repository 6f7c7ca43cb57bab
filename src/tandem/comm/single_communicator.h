// World of one: every collective is a copy or a no-op. Used by a plain single
// process, and by tests as the reference a multi-rank run must match.
#pragma once

#include <memory>

#include "tandem/comm/communicator.h"

namespace tandem::comm {

std::unique_ptr<Communicator> make_single_communicator(CommOptions options = {});

}  // namespace tandem::comm
