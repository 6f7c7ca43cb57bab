// A trained model as `tandem predict` and `tandem export` use it: rebuilt from a
// checkpoint alone (its config, its parameters, a parameter-server run's table
// shards assembled), in eval mode.
#pragma once

#include <string>

#include "tandem/config/train_config.h"
#include "tandem/nn/dlrm.h"

namespace tandem::cli {

struct TrainedModel {
  config::TrainConfig cfg;  ///< the config it was trained with (ps.servers = 0)
  nn::Dlrm model{nullptr};
};

/// Reads checkpoint `path` (DataError if it does not load) into a model on the CPU.
TrainedModel load_trained_model(const std::string& path);

}  // namespace tandem::cli
