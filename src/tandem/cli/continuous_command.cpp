// tandem continuous: the continuous-retraining controller (src/tandem/continuous).
#include <fmt/format.h>

#include "tandem/cli/commands.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/continuous_config.h"
#include "tandem/continuous/controller.h"
#include "tandem/util/log.h"

namespace tandem::cli {

int continuous(const std::vector<std::string>& argv) {
  const comm::Runtime& runtime = comm::Runtime::get();
  config::ContinuousConfig cfg;
  config::OptionSet options = cfg.options();
  if (wants_help(argv)) {
    log::info(
        "usage: tandem continuous --config FILE [--rollback] [--section.key=value ...]\n"
        "  watches continuous.incoming for new labelled files, retrains a challenger from the\n"
        "  champion when a trigger fires (new data, schedule, drift, decay, a RETRAIN file in\n"
        "  continuous.dir or SIGHUP) and promotes it only if it is better on held-out new rows;\n"
        "  every decision goes to continuous.dir/audit.jsonl. Runs until SIGTERM (exit 5) or\n"
        "  continuous.max_polls (exit 0). --rollback makes the previous champion the champion\n"
        "  again and exits. The train.*, model.*, optim.* and data.* keys say how each retrain\n"
        "  trains.\n\n" +
        options.help());
    return 0;
  }
  bool rollback = false;
  std::unique_ptr<comm::Communicator> comm = parse_then_agree([&] {
    std::vector<std::string> args = argv;
    rollback = take_flag(args, "--rollback");
    parse_config(args, options, "continuous");
    cfg.validate(runtime.world_size());
    return CommChoice{cfg.train.comm.backend, {cfg.train.comm.check, cfg.train.comm.timeout_s}};
  });
  runtime.set_threads(cfg.train.run.threads);
  continuous::Controller controller(cfg, *comm);
  if (rollback) {
    controller.rollback();
    return 0;
  }
  return controller.run();
}

}  // namespace tandem::cli
