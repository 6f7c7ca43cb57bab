#include <fmt/format.h>

#include <csignal>

#include "kernels/cpu_isa.h"
#include "tandem/ckpt/collective.h"
#include "tandem/cli/commands.h"
#include "tandem/comm/agree.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/train_config.h"
#include "tandem/ps/parameter_server.h"
#include "tandem/train/trainer.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::cli {

int train(const std::vector<std::string>& argv) {
  const comm::Runtime& runtime = comm::Runtime::get();
  config::TrainConfig cfg;
  config::OptionSet options = cfg.options();
  if (wants_help(argv)) {
    log::info(
        "usage: tandem train --config FILE [--resume auto|CKPT] [--section.key=value ...]\n\n" +
        options.help());
    return 0;
  }
  // Every rank reads the config itself; the Trainer validates the values under the
  // same agreement.
  std::unique_ptr<comm::Communicator> comm = parse_then_agree([&] {
    std::vector<std::string> args = argv;
    expand_resume(args);
    parse_config(args, options, "train");
    cfg.validate_ps(runtime.world_size());
    // On GPUs the gradients are CUDA tensors: auto means NCCL there.
    std::string backend = cfg.comm.backend;
    if (backend == "auto" && train::use_cuda(cfg.train.device)) backend = "nccl";
    if (cfg.ps.servers > 0 && backend == "nccl")
      throw ConfigError("comm.backend: the parameter server exchanges rows over MPI, not nccl");
    return CommChoice{backend, {cfg.comm.check, cfg.comm.timeout_s}};
  });

  const int threads = runtime.set_threads(cfg.run.threads);
  const auto& info = runtime.info();
  log::infof(
      "tandem: rank {}/{} (local {}/{}), launcher {}, backend {}, {} thread(s) per rank, CPU "
      "kernels {}",
      info.rank, info.world_size, info.local_rank, info.local_size, info.launcher, comm->backend(),
      threads, kernels::cpu_isa_name(kernels::cpu_isa()));
  if (info.world_size > 1) log::infof("tandem: hosts: {}", runtime.describe_hosts());
  if (cfg.ps.servers == 0) {
    train::Trainer trainer(cfg, *comm, options.to_ini());
    return trainer.run().preempted ? kExitPreempted : 0;
  }
  // Parameter server: the servers' shards, then the workers' own communicator for
  // the dense layers (all ranks when colocated).
  // A shard a server's node cannot hold stops every rank before any exchange.
  std::unique_ptr<ps::ParameterServer> server;
  comm::agree_on(*comm, [&] {
    server = std::make_unique<ps::ParameterServer>(ps::server_options(cfg), *comm);
  });
  log::info(server->describe());
  // Resume: the servers load their rows first (from any number of servers' shards,
  // or from a replicated checkpoint), then the workers the rest, from this path.
  std::string dir = cfg.checkpoint_dir();
  ckpt::StoreOptions store_options;
  store_options.write.locking = cfg.ckpt.file_locking;
  const std::string resume = ckpt::start_run(
      *comm, ckpt::open_store(*comm, dir, store_options, !cfg.run.resume.empty()).get(),
      cfg.run.resume, cfg.run.overwrite, /*announce=*/false);
  comm::agree_on(*comm, [&] {
    if (!resume.empty()) server->load(resume);
  });
  if (!cfg.run.resume.empty() && resume.empty())
    log::infof("resume: no checkpoint in {} yet; starting fresh", cfg.checkpoint_dir());
  cfg.run.resume = resume;
  std::unique_ptr<comm::Communicator> workers = comm->split(server->trains() ? 0 : 1);
  if (!server->trains()) {
    // SIGTERM/SIGUSR1 reach every rank of a job: the workers stop at a step boundary
    // and then stop the servers, so a server ignores them rather than dying under
    // the workers' last exchange.
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGUSR1, SIG_IGN);
    server->serve();
    return 0;
  }
  train::Trainer trainer(cfg, *workers, options.to_ini(), server.get());
  const bool preempted = trainer.run().preempted;
  log::infof("ps: this worker waited {:.2f} s in all for pulled rows", server->wait_seconds());
  server->stop();
  return preempted ? kExitPreempted : 0;
}

}  // namespace tandem::cli
