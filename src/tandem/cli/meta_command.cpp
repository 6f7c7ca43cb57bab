#include <fmt/format.h>

#include "tandem/cli/commands.h"
#include "tandem/comm/agree.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/meta_config.h"
#include "tandem/meta/meta_learner.h"
#include "tandem/util/log.h"

namespace tandem::cli {

int meta(const std::vector<std::string>& argv) {
  const comm::Runtime& runtime = comm::Runtime::get();
  config::MetaConfig cfg;
  config::OptionSet options = cfg.options();
  if (wants_help(argv)) {
    log::info(
        "usage: tandem meta --config FILE [--resume auto|CKPT] [--section.key=value ...]\n\n"
        "Meta-trains an initialisation with MAML, first-order MAML or Reptile (meta.algorithm),\n"
        "the meta-batch's tasks split over the ranks, and evaluates it against a model\n"
        "pretrained on all tasks jointly. configs/maml_sinusoid.ini reproduces Finn et al.\n"
        "(2017), sinusoid regression.\n\n" +
        options.help());
    return 0;
  }
  std::unique_ptr<comm::Communicator> comm = parse_then_agree([&] {
    std::vector<std::string> args = argv;
    expand_resume(args);
    parse_config(args, options, "meta");
    return CommChoice{cfg.comm.backend, {cfg.comm.check, cfg.comm.timeout_s}};
  });

  const int threads = runtime.set_threads(cfg.run.threads);
  log::infof("tandem: rank {}/{}, backend {}, {} thread(s) per rank", runtime.rank(),
             runtime.world_size(), comm->backend(), threads);
  meta::MetaLearner learner(cfg, *comm, options.to_ini());
  learner.run();
  return 0;
}

}  // namespace tandem::cli
