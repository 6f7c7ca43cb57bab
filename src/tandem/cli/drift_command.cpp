// tandem drift: how far new rows drifted from the statistics a model was trained on
// (stats/drift.h), per feature: the report the continuous controller logs.
#include <fmt/format.h>

#include <iostream>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/cli/commands.h"
#include "tandem/comm/agree.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/train_config.h"
#include "tandem/data/dataset.h"
#include "tandem/data/loader.h"
#include "tandem/stats/drift.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::cli {

int drift(const std::vector<std::string>& argv) {
  if (wants_help(argv)) {
    log::info(
        "usage: tandem drift --reference CKPT --data FILES [--json] [--share S] [--psi P]\n"
        "                    [--js J] [--linf L] [--thresholds I3:psi=0.5,C7:js=0.2]\n"
        "  compares FILES (comma-separated TSV files or directories) with the feature\n"
        "  statistics saved in the checkpoint CKPT: per integer feature PSI over its bins\n"
        "  (and a missing bucket) and KS, per categorical feature the Jensen-Shannon\n"
        "  distance and L-infinity over its top values and 'other'. A feature drifts above\n"
        "  --psi (0.25), --js (0.1) or --linf (0.3); the data drifts when at least --share\n"
        "  (0.5) of the 39 features do. Exit 0 either way; --json prints the report as JSON.");
    return 0;
  }
  std::string reference, files;
  bool json = false;
  stats::DriftThresholds th;
  std::unique_ptr<comm::Communicator> comm = parse_then_agree([&] {
    std::vector<std::string> args = argv;
    json = take_flag(args, "--json");
    reference = take_option(args, "--reference");
    files = take_option(args, "--data");
    const auto number = [&](const char* name, double& into) {
      const std::string v = take_option(args, name);
      if (v.empty()) return;
      try {
        into = std::stod(v);
      } catch (...) {
        into = -1;
      }
      if (!(into > 0)) throw ConfigError(fmt::format("drift: {} must be a number > 0", name));
    };
    number("--share", th.share);
    number("--psi", th.psi);
    number("--js", th.js);
    number("--linf", th.linf);
    th.parse_overrides("--thresholds", take_option(args, "--thresholds"));
    if (!args.empty()) throw ConfigError("drift: unexpected argument '" + args.front() + "'");
    if (reference.empty()) throw ConfigError("drift: --reference CKPT is required");
    if (files.empty()) throw ConfigError("drift: --data FILES is required");
    return CommChoice{};
  });
  comm::Runtime::get().set_threads(0);

  // The reference's statistics, and the table sizes and block size it was trained
  // with (from the config saved in it).
  ckpt::State state;
  config::TrainConfig cfg;
  data::Dataset data;
  comm::agree_on(*comm, [&] {
    state = ckpt::read(reference);
    if (state.stats.empty())
      throw DataError(fmt::format("{}: holds no feature statistics (train with "
                                  "model.standardize=true, or use a tandem continuous model)",
                                  reference));
    config::OptionSet options = cfg.options();
    parse_saved_config(state.config, options);
    data = data::Dataset::index(files, cfg.index_options());
  });
  const stats::FeatureStats ref = stats::from_tensors(state.stats, reference);
  data::Loader loader(std::move(data), cfg.table_rows(),
                      data::LoaderOptions{0, false, 8192, comm->rank(), comm->size()});
  const stats::DriftReport r = stats::drift(loader, *comm, ref, th);
  if (comm->rank() != 0) return 0;
  if (json) {
    std::cout << r.to_json().dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("{} rows of {} against {}\n", r.rows, files, reference)
            << fmt::format("{:<8} {:>10} {:>10} {:>10} {:>10}  drifted\n", "feature", "psi", "ks",
                           "js", "linf");
  for (const stats::FeatureDrift& d : r.features) {
    const bool integer = d.feature[0] == 'I';
    std::cout << fmt::format("{:<8} {:>10} {:>10} {:>10} {:>10}  {}\n", d.feature,
                             integer ? fmt::format("{:.4f}", d.psi) : "",
                             integer ? fmt::format("{:.4f}", d.ks) : "",
                             integer ? "" : fmt::format("{:.4f}", d.js),
                             integer ? "" : fmt::format("{:.4f}", d.linf),
                             d.drifted ? d.because : "");
  }
  std::cout << fmt::format("{} of {} features drifted ({:.0f}%): the data {} (threshold {:.0f}%)\n",
                           r.drifted, r.features.size(), 100 * r.share,
                           r.window_drifted ? "drifted" : "did not drift", 100 * th.share);
  return 0;
}

}  // namespace tandem::cli
