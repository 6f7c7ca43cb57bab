#include "tandem/ckpt/collective.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <mutex>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/comm/agree.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::ckpt {

std::vector<at::Tensor> gather_rng(comm::Communicator& comm, const at::Device& device) {
  // int32 on the wire (the communicator takes no bytes); the state has a fixed size.
  at::Generator gen = at::globalContext().defaultGenerator(device);
  const at::Tensor mine = gen.get_state().to(at::kInt);
  const at::Tensor all = comm.allgather(mine);  // [ranks, state bytes]
  std::vector<at::Tensor> out;
  for (int64_t r = 0; r < all.size(0); ++r) out.push_back(all[r].to(at::kByte).contiguous());
  return out;
}

bool restore_rng(const std::vector<at::Tensor>& rng, int64_t saved_world,
                 comm::Communicator& comm, uint64_t fallback_seed, const at::Device& device) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  const int rank = comm.rank();
  if (saved_world == comm.size() && rank < static_cast<int>(rng.size())) {
    gen.set_state(rng[rank]);
    return true;
  }
  gen.set_current_seed(fallback_seed);
  return false;
}

std::string start_run(comm::Communicator& comm, Store* store, const std::string& spec,
                      bool overwrite, bool announce) {
  std::string path = spec;
  comm::agree_on(comm, [&] {
    if (!store) return;
    path = store->claim(spec, overwrite);
    if (announce)
      log::infof("run: {} ({})", store->run_id(),
                 path.empty() ? "a fresh start" : "resuming " + path);
  });
  return comm::broadcast_text(comm, path);
}

std::unique_ptr<Store> open_store(comm::Communicator& comm, std::string& dir,
                                  const StoreOptions& options, bool needs) {
  std::unique_ptr<Store> store;
  comm::agree_on(comm, [&] {
    if (!TANDEM_WITH_HDF5 && !dir.empty()) {
      if (needs)
        throw ConfigError(
            "ckpt: this Tandem was built without HDF5, so it cannot checkpoint "
            "or resume (install libhdf5-dev and rebuild)");
      // Saves only at the end or of the best model: the trainer says none was written.
      dir.clear();
    }
    // The Store also removes stale .tmp files left by a crash during a save.
    if (!dir.empty() && comm.rank() == 0) store = std::make_unique<Store>(dir, options);
  });
  return store;
}

}  // namespace tandem::ckpt
