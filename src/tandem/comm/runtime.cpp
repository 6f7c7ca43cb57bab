#include "tandem/comm/runtime.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#include "tandem/comm/mpi_backend.h"
#include "tandem/comm/nccl_backend.h"
#include "tandem/comm/single_communicator.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::comm {
namespace {

Runtime* g_runtime = nullptr;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : -1;
}

// Which launcher started us, and the rank it claims; used only for a cross-check.
void cross_check_launcher(RuntimeInfo& info) {
  struct Var {
    const char* launcher;
    const char* rank;
    const char* size;
  };
  constexpr Var vars[] = {{"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                          {"srun", "SLURM_PROCID", "SLURM_NTASKS"},
                          {"pmi", "PMI_RANK", "PMI_SIZE"}};
  info.launcher = "none";
  for (const Var& v : vars) {
    const int r = env_int(v.rank);
    if (r < 0) continue;
    if (info.launcher == "none") info.launcher = v.launcher;
    const int s = v.size ? env_int(v.size) : -1;
    if (r != info.rank || (s > 0 && s != info.world_size))
      log::warnf("{}={} {}={} disagree with MPI (rank {} of {}); trusting MPI", v.rank, r,
                 v.size ? v.size : "size", s, info.rank, info.world_size);
  }
}

}  // namespace

Runtime& Runtime::init(int* argc, char*** argv) {
  if (g_runtime) return *g_runtime;
  g_runtime = new Runtime();
  RuntimeInfo& info = g_runtime->info_;
  if (detail::mpi_available()) {
    detail::mpi_init(argc, argv, info);
    info.mpi = true;
  }
  log::set_rank(info.rank, info.world_size);
  cross_check_launcher(info);
  std::atexit([] {
    delete g_runtime;
    g_runtime = nullptr;
  });
  return *g_runtime;
}

Runtime& Runtime::get() {
  if (!g_runtime) throw Error("tandem: Runtime::init() was not called");
  return *g_runtime;
}

Runtime::~Runtime() {
  if (info_.mpi) detail::mpi_finalize();
}

std::unique_ptr<Communicator> Runtime::make_communicator(const std::string& backend,
                                                         CommOptions options) const {
  if (backend == "single") {
    if (info_.world_size != 1)
      throw ConfigError(
          fmt::format("comm.backend=single, but {} ranks were launched", info_.world_size));
    return make_single_communicator(options);
  }
  if (backend == "mpi" || (backend == "auto" && info_.mpi))
    return detail::make_mpi_communicator(options);
  if (backend == "auto") return make_single_communicator(options);
  if (backend == "nccl")  // CPU tensors (and the unique id) go over MPI, or nowhere alone
    return detail::make_nccl_communicator(options, info_, make_communicator("auto", options));
  throw ConfigError("comm.backend: unknown backend '" + backend +
                    "' (expected auto, mpi, nccl or single)");
}

std::string Runtime::describe_hosts() const {
  std::vector<std::string> order;  // hosts by their first rank
  for (const std::string& h : info_.hosts)
    if (std::find(order.begin(), order.end(), h) == order.end()) order.push_back(h);
  std::string out;
  for (const std::string& h : order) {
    std::vector<int> ranks, locals;
    for (size_t r = 0; r < info_.hosts.size(); ++r)
      if (info_.hosts[r] == h) {
        ranks.push_back(static_cast<int>(r));
        locals.push_back(info_.local_ranks[r]);
      }
    out += fmt::format("{}{} = rank{} {} (local {})", out.empty() ? "" : "; ", h,
                       ranks.size() > 1 ? "s" : "", fmt::join(ranks, ","), fmt::join(locals, ","));
  }
  return out;
}

int Runtime::set_threads(int requested) const {
  int n = requested;
  if (n <= 0) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    n = std::max(1, cores / std::max(1, info_.local_size));
  }
  at::set_num_threads(n);
  return n;
}

double Runtime::memory_per_rank(std::string* why) const {
  const int local = std::max(1, info_.local_size);
  double limit = static_cast<double>(sysconf(_SC_AVPHYS_PAGES)) *
                 static_cast<double>(sysconf(_SC_PAGESIZE)) / local;
  if (why)
    *why = fmt::format("its node has {} available for each of its {} rank(s)", log::bytes(limit), local);
  for (const auto& [resource, flag] : {std::pair{RLIMIT_DATA, "d"}, std::pair{RLIMIT_AS, "v"}}) {
    rlimit l{};
    if (getrlimit(resource, &l) == 0 && l.rlim_cur != RLIM_INFINITY &&
        static_cast<double>(l.rlim_cur) < limit) {
      limit = static_cast<double>(l.rlim_cur);
      if (why) *why = fmt::format("its memory limit (ulimit -{}) is {}", flag, log::bytes(limit));
    }
  }
  return limit;
}

void Runtime::abort(int code) const {
  if (info_.mpi && info_.world_size > 1) detail::mpi_abort(code);
  std::exit(code);
}

}  // namespace tandem::comm
