// tandem export CKPT --out model.pt: the trained model as a PyTorch state_dict (a
// dict of name -> tensor) that plain torch.load reads, written by LibTorch's own
// pickler. python/tandem_dlrm.py builds the matching PyTorch module from it: the
// names are the module's own (bottom.N.*, tables.*, top.N.*, standardize.*), and
// the layer sizes, the tables' layout and which optional layers exist all follow
// from the tensors. Training-only state (the tables' row-wise optimizer state) is
// left out. Two entries describe the input: tables.bag_sizes and tables.mean_bags
// (each table's id slots and pooling, for multi-hot columns), and "schema", the
// data's [schema] as UTF-8 JSON bytes (data::Schema::to_json), so Python reads
// the same columns the same way.
#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <fmt/format.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tandem/cli/commands.h"
#include "tandem/cli/trained_model.h"
#include "tandem/comm/runtime.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::cli {

int export_model(const std::vector<std::string>& argv) {
  if (wants_help(argv)) {
    std::cout
        << "usage: tandem export CKPT --out FILE [--format pt]\n"
           "  writes the model in checkpoint CKPT as a PyTorch state_dict (torch.load reads\n"
           "  it): its parameters and buffers by name, with the frozen feature statistics\n"
           "  (standardize.mean, standardize.inv_std), each table's id slots and pooling\n"
           "  (tables.bag_sizes, tables.mean_bags) and the data's [schema] as JSON bytes\n"
           "  (schema). python/tandem_dlrm.py is the matching PyTorch module and reader;\n"
           "  its scores equal `tandem predict`'s.\n"
           "  --format safetensors is not offered: neither Debian nor PyPI has a maintained\n"
           "  C++ writer for it (from Python: safetensors.torch.save_file(torch.load(FILE))).\n";
    return 0;
  }
  std::vector<std::string> args = argv;
  const std::string out = take_option(args, "--out");
  const std::string format = take_option(args, "--format");
  const std::string path = take_positional(args, "export", "checkpoint");
  if (out.empty()) throw ConfigError("export: --out FILE is required");
  if (!format.empty() && format != "pt")
    throw ConfigError(fmt::format(
        "export: --format {} is not supported (pt only{})", format,
        format == "safetensors" ? ": there is no maintained C++ safetensors writer in Debian or "
                                  "PyPI; convert in Python with safetensors.torch.save_file"
                                : ""));
  if (comm::Runtime::get().rank() != 0) return 0;  // one process writes

  const TrainedModel t = load_trained_model(path);
  c10::Dict<std::string, at::Tensor> state;
  for (const auto& p : t.model->named_parameters()) state.insert(p.key(), p.value().detach());
  for (const auto& b : t.model->named_buffers())
    if (b.key() != fmt::format("{}.rowwise_state", nn::kTablesModule))
      state.insert(b.key(), b.value());
  const auto schema = t.cfg.data_schema();
  std::vector<int64_t> bag_sizes;
  std::vector<uint8_t> mean_bags;
  for (const data::Schema::Categorical& c : schema->categorical()) {
    bag_sizes.push_back(c.max_ids);
    mean_bags.push_back(c.mean ? 1 : 0);
  }
  state.insert(fmt::format("{}.bag_sizes", nn::kTablesModule), at::tensor(bag_sizes, at::kLong));
  state.insert(fmt::format("{}.mean_bags", nn::kTablesModule),
               at::tensor(at::ArrayRef<uint8_t>(mean_bags), at::kByte).to(at::kBool));
  const std::string json = schema->to_json();
  state.insert("schema", at::tensor(at::ArrayRef<uint8_t>(
                                        reinterpret_cast<const uint8_t*>(json.data()), json.size()),
                                    at::kByte));
  const std::vector<char> bytes = torch::jit::pickle_save(state);

  // Written beside the target and renamed over it: a reader never sees half a file.
  const std::string tmp = out + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    if (!file) throw IoError(fmt::format("export: cannot write '{}'", tmp));
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    file.close();
    if (!file) throw IoError(fmt::format("export: writing '{}' failed", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, out, ec);
  if (ec)
    throw IoError(fmt::format("export: cannot move '{}' to '{}': {}", tmp, out, ec.message()));
  log::infof("export: {} tensors of {} -> {} ({})", state.size(), path, out,
             log::bytes(static_cast<double>(bytes.size())));
  return 0;
}

}  // namespace tandem::cli
