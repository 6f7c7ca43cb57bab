// tandem: the command-line program. Turns typed errors into one line and an exit
// code: 2 config, 3 data, 4 communication, 1 anything else; 5 = preempted.
#include <torch/version.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "kernels/cpu_isa.h"
#include "tandem/cli/commands.h"
#include "tandem/comm/agree.h"
#include "tandem/comm/runtime.h"
#include "tandem/train/stop_signal.h"
#include "tandem/util/allocator.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace {

constexpr const char* kUsage = R"(usage: tandem <command> [options]

commands:
  train      data-parallel training of the DLRM-style CTR model
             tandem train --config FILE [--section.key=value ...]
             tandem train --config FILE --resume auto|CKPT   continues a run
  generate   write synthetic Criteo-format TSV data
             tandem generate --rows N --seed S --out PATH [--files K]
  fit-stats  fit the global feature statistics of the training data over all ranks
             tandem fit-stats --config FILE [--out PATH] [--json] [--bins N] [--top K]
  predict    score a data file with a trained model (one probability per line)
             tandem predict CKPT --data FILE [--out FILE]
  export     write a trained model as a PyTorch state_dict (python/tandem_dlrm.py)
             tandem export CKPT --out model.pt
  meta       meta-learn an initialisation (MAML, first-order MAML, Reptile) over tasks
             tandem meta --config configs/maml_sinusoid.ini [--resume auto|CKPT]
  inspect    print a checkpoint: step, metrics, parameters, config, checksum verdict
             tandem inspect CKPT [--json] [--hash]
  continuous retrain as new data arrives: drift/decay/new-data/schedule triggers,
             champion/challenger promotion, audit log
             tandem continuous --config FILE [--rollback]
  drift      per-feature drift of data from a model's training statistics
             tandem drift --reference CKPT --data FILES [--json]

  tandem <command> --help   lists every option with its default
  tandem --version          versions, build options and the CPU kernel variant

environment: TANDEM_CPU_ISA=auto|baseline|avx2|avx512 forces the CPU kernels' variant
  (default auto: the best this CPU has; every variant gives the same bits)

Run several ranks with mpirun or srun, e.g. mpirun -np 2 tandem train --config configs/quickstart.ini
exit codes: 0 ok, 1 internal error, 2 config error, 3 data error, 4 communication error,
  5 stopped by SIGTERM/SIGUSR1 at a step boundary (after saving a checkpoint when
    checkpointing is on; resume with --resume auto)
)";

void print_version() {
  // CUDA kernels built with a CPU-only LibTorch are compiled but cannot be reached.
  const char* cuda = !TANDEM_WITH_CUDA   ? "off"
                     : TANDEM_TORCH_CUDA ? "on"
                                         : "kernels built, LibTorch CPU-only";
  std::printf("tandem %s (LibTorch %s, MPI %s, CUDA %s, NCCL %s)\nCPU kernels: %s\n",
              TANDEM_VERSION, TORCH_VERSION, TANDEM_WITH_MPI ? "on" : "off", cuda,
              TANDEM_WITH_NCCL ? "on" : "off", tandem::kernels::cpu_isa_description().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  tandem::util::keep_freed_memory();  // before the first large allocation
  // A training run stopped while it starts exits 5 like one stopped later: from
  // the first instant the handler only notes the signal (again after MPI_Init,
  // whose runtime installs its own).
  const bool training = argc > 1 && std::string(argv[1]) == "train";
  if (training) tandem::train::install_stop_handlers();
  auto& runtime = tandem::comm::Runtime::init(&argc, &argv);
  if (training) tandem::train::keep_stop_handlers();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    tandem::log::warn(
        "tandem: error: no command given (usage: tandem <command> [options]; try tandem --help)");
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    tandem::log::info(kUsage);
    return 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    try {
      tandem::kernels::cpu_isa();  // a bad TANDEM_CPU_ISA stops every command
    } catch (const std::invalid_argument& e) {
      throw tandem::ConfigError(e.what());
    }
    if (command == "--version" || command == "version") {
      if (runtime.rank() == 0) print_version();
      return 0;
    }
    if (command == "train") return tandem::cli::train(args);
    if (command == "generate") return tandem::cli::generate(args);
    if (command == "inspect") return tandem::cli::inspect(args);
    if (command == "fit-stats") return tandem::cli::fit_stats(args);
    if (command == "predict") return tandem::cli::predict(args);
    if (command == "export") return tandem::cli::export_model(args);
    if (command == "meta") return tandem::cli::meta(args);
    if (command == "continuous") return tandem::cli::continuous(args);
    if (command == "drift") return tandem::cli::drift(args);
    throw tandem::ConfigError("unknown command '" + command + "' (try: tandem --help)");
  } catch (const tandem::PeerError& e) {
    return e.exit_code();  // the failing rank has already said why
  } catch (const tandem::Error& e) {
    tandem::log::warn("tandem: error: " + std::string(e.what()));
    if (!tandem::comm::failure_is_shared()) runtime.abort(e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    tandem::log::warn("tandem: internal error: " + std::string(e.what()));
    runtime.abort(1);
  }
}
