// tandem predict CKPT --data FILE [--out FILE]: batch scoring with a trained
// model. The model, its frozen feature statistics (Standardize) and its config
// all come from the checkpoint, so scoring applies exactly the transform that
// training did; nothing is refitted. One probability per input line, in order.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/ckpt/module_state.h"
#include "tandem/cli/commands.h"
#include "tandem/cli/trained_model.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/train_config.h"
#include "tandem/data/dataset.h"
#include "tandem/data/loader.h"
#include "tandem/nn/dlrm.h"
#include "tandem/ps/table_checkpoint.h"
#include "tandem/train/trainer.h"
#include "tandem/util/error.h"

namespace tandem::cli {

TrainedModel load_trained_model(const std::string& path) {
  ckpt::State state = ckpt::read(path);
  ps::complete_tables(state, path, /*locking=*/true);  // a parameter-server run's shards
  // The run's config, as saved in the checkpoint.
  TrainedModel t;
  config::OptionSet options = t.cfg.options();
  parse_saved_config(state.config, options);
  t.cfg.ps.servers = 0;  // one process holds the whole tables
  t.model = nn::Dlrm(train::dlrm_options(t.cfg, nullptr));
  ckpt::load_module(*t.model, state);
  t.model->eval();
  return t;
}

int predict(const std::vector<std::string>& argv) {
  if (wants_help(argv)) {
    std::cout << "usage: tandem predict CKPT --data FILE [--out FILE] [--batch N]\n"
                 "  scores FILE (Criteo TSV; the label column is read but not used) with the\n"
                 "  model and statistics in checkpoint CKPT; writes one probability per line\n"
                 "  to --out (default stdout). A malformed line is an error.\n";
    return 0;
  }
  std::vector<std::string> args = argv;
  const std::string data = take_option(args, "--data");
  const std::string out = take_option(args, "--out");
  const int64_t batch = take_positive(args, "--batch", 8192);
  const std::string path = take_positional(args, "predict", "checkpoint");
  if (data.empty()) throw ConfigError("predict: --data FILE is required");
  if (comm::Runtime::get().rank() != 0) return 0;  // one process scores
  comm::Runtime::get().set_threads(0);

  auto [cfg, model] = load_trained_model(path);

  data::IndexOptions index = cfg.index_options();  // the run's [schema], saved with it
  index.fail_on_error = true;
  data::Loader loader(data::Dataset::index(data, index), cfg.table_rows(),
                      data::LoaderOptions{0, false, batch, 0, 1});
  std::ofstream file;
  if (!out.empty()) {
    file.open(out, std::ios::trunc);
    if (!file) throw ConfigError(fmt::format("predict: cannot write '{}'", out));
  }
  std::ostream& sink = out.empty() ? std::cout : file;
  at::NoGradGuard no_grad;
  for (int64_t step = 0; step < loader.steps_per_epoch(); ++step) {
    const data::Batch b = loader.batch(0, step);
    const at::Tensor p = at::sigmoid(model->forward(b.dense, b.sparse)).to(at::kDouble);
    const double* v = p.data_ptr<double>();
    std::string text;
    for (int64_t i = 0; i < p.numel(); ++i) text += fmt::format("{:.9g}\n", v[i]);
    sink << text;
  }
  sink.flush();
  if (!sink) throw Error("predict: writing the scores failed");
  return 0;
}

}  // namespace tandem::cli
