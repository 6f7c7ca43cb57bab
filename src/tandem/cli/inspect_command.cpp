// tandem inspect CKPT [--json] [--hash]: what a checkpoint holds, for people and
// scripts. The checksum verdict comes from reading every dataset (each one's
// XXH3 checksum, or the Fletcher32 filter of checkpoints written before it).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>
#include <iostream>

#include <map>
#include <sstream>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/ckpt/sharded.h"
#include "tandem/cli/commands.h"
#include "tandem/ps/table_checkpoint.h"
#include "tandem/util/error.h"

namespace tandem::cli {

int inspect(const std::vector<std::string>& argv) {
  if (wants_help(argv)) {
    std::cout << "usage: tandem inspect CKPT [--json] [--hash] [--tensor=NAME]\n"
                 "  prints the step, epoch, metrics, parameters per module, config and the\n"
                 "  checksum verdict; --json the same as JSON; --hash one digest over every\n"
                 "  parameter, buffer and optimizer value (equal digests: equal bits);\n"
                 "  --tensor=NAME one parameter's or buffer's values as JSON\n";
    return 0;
  }
  std::vector<std::string> args = argv;
  const bool json = take_flag(args, "--json"), hash = take_flag(args, "--hash");
  const std::string tensor = take_option(args, "--tensor");
  const std::string path = take_positional(args, "inspect", "checkpoint");

  ckpt::State s = ckpt::read(path);  // throws DataError (exit 3) if corrupt
  // A parameter-server run's tables: its shards, each checked against the manifest
  // and read back, then assembled as a replicated run holds them.
  const int64_t shards = s.table_shards;
  if (shards > 0) ps::complete_tables(s, path, /*locking=*/true);
  if (hash) {
    std::cout << ckpt::digest(s) << "\n";
    return 0;
  }
  if (!tensor.empty()) {
    // One parameter or buffer's values as a flat JSON list (float64).
    const auto& m = s.params.count(tensor) ? s.params : s.buffers;
    const auto it = m.find(tensor);
    if (it == m.end()) throw ConfigError("inspect: no parameter or buffer named " + tensor);
    const at::Tensor t = it->second.to(at::kDouble).contiguous();
    const double* p = t.data_ptr<double>();
    std::cout << nlohmann::json(std::vector<double>(p, p + t.numel())).dump() << "\n";
    return 0;
  }
  // Parameter counts per top-level module ("bottom", "tables", "top").
  std::map<std::string, int64_t> per_module;
  int64_t total = 0;
  for (const auto& [name, t] : s.params) {
    per_module[name.substr(0, name.find('.'))] += t.numel();
    total += t.numel();
  }
  // The last evaluation in the metrics history.
  nlohmann::json last_eval;
  std::istringstream lines(s.metrics);
  for (std::string line; std::getline(lines, line);) {
    const auto e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_discarded() && e.value("event", "") != "train") last_eval = e;
  }
  nlohmann::json out = {{"path", path},
                        {"checksums", "ok"},
                        {"run_id", s.run_id},
                        {"step", s.step},
                        {"epoch", s.epoch},
                        {"samples", s.samples},
                        {"world_size", s.world_size},
                        {"global_batch", s.global_batch},
                        {"tandem_version", s.version},
                        {"lr", s.lr},
                        {"optimizer", s.optimizer_name},
                        {"optimizer_tensors", s.optimizer.size()},
                        {"parameters", total},
                        {"parameters_per_module", per_module},
                        {"table_shards", shards},
                        {"last_eval", last_eval},
                        {"config", s.config}};
  nlohmann::json data = nlohmann::json::array();
  for (const auto& d : s.data)
    data.push_back({{"path", d.path}, {"bytes", d.bytes}, {"digest", d.digest}});
  out["data"] = data;
  if (json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("{}\n  checksums: ok (every dataset read back)\n", path)
            << fmt::format("  run {}\n",
                           s.run_id.empty() ? "(no id: written before runs had one)" : s.run_id)
            << fmt::format("  step {}  epoch {}  samples {}  world size {}  global batch {}\n",
                           s.step, s.epoch, s.samples, s.world_size, s.global_batch)
            << fmt::format("  tandem {}  optimizer {} ({} state tensors)  lr {:.6g}\n", s.version,
                           s.optimizer_name, s.optimizer.size(), s.lr)
            << fmt::format("  parameters: {}\n", total);
  if (shards > 0)
    std::cout << fmt::format(
        "  tables: in {} shard(s) from parameter servers, committed by {} (each read back)\n",
        shards, ckpt::manifest_path(path));
  for (const auto& [module, n] : per_module) std::cout << fmt::format("    {:<10} {}\n", module, n);
  if (!last_eval.is_null()) std::cout << "  last evaluation: " << last_eval.dump() << "\n";
  for (const auto& d : s.data)
    std::cout << fmt::format("  data: {} ({} bytes, digest {})\n", d.path, d.bytes, d.digest);
  std::cout << "  config:\n";
  std::istringstream config(s.config);
  for (std::string line; std::getline(config, line);) std::cout << "    " << line << "\n";
  return 0;
}

}  // namespace tandem::cli
