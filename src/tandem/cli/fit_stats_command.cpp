// tandem fit-stats: one distributed pass over the training data (the same rows
// `tandem train` trains on: data.train less the held-out split) that fits the
// global feature statistics, writes them to HDF5 and prints a summary.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <iostream>

#include "tandem/cli/commands.h"
#include "tandem/comm/agree.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/train_config.h"
#include "tandem/data/criteo.h"
#include "tandem/data/dataset.h"
#include "tandem/data/loader.h"
#include "tandem/stats/distinct.h"
#include "tandem/stats/feature_stats.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::cli {

int fit_stats(const std::vector<std::string>& argv) {
  config::TrainConfig cfg;
  config::OptionSet options = cfg.options();
  if (wants_help(argv)) {
    log::info(
        "usage: tandem fit-stats --config FILE [--out PATH] [--json] [--bins N] [--top K] "
        "[--distinct [--collisions SHARE]] [--section.key=value ...]\n"
        "  fits the global statistics of the training rows (data.train less the held-out\n"
        "  split) over all ranks: for I1..I13 (after log1p) count, mean, variance\n"
        "  (population), min, max, missing and a histogram of --bins bins (64); for\n"
        "  C1..C26 the --top (20) most frequent table rows and an 'other' count. Writes\n"
        "  HDF5 to --out (default <run.dir>/stats.h5) and prints a summary, or JSON with\n"
        "  --json.\n"
        "  --distinct also counts the distinct values of each categorical column, exactly\n"
        "  (a second pass; about 40 bytes per distinct value, spread over the ranks), and\n"
        "  suggests each table's size: the smallest in which hashing leaves at most\n"
        "  --collisions (0.1) of the values sharing a row, and a model.embedding_rows line.\n\n" +
        options.help());
    return 0;
  }
  std::string out;
  bool json = false;
  stats::FitOptions fit;
  bool distinct = false;
  double collisions = 0.1;
  std::unique_ptr<comm::Communicator> comm = parse_then_agree([&] {
    std::vector<std::string> args = argv;
    json = take_flag(args, "--json");
    out = take_option(args, "--out");
    fit.bins = take_positive(args, "--bins", fit.bins);
    fit.top = take_positive(args, "--top", fit.top);
    distinct = take_flag(args, "--distinct");
    if (const std::string c = take_option(args, "--collisions"); !c.empty()) {
      char* end = nullptr;
      collisions = std::strtod(c.c_str(), &end);
      if (end != c.c_str() + c.size() || !(collisions > 0 && collisions < 1))
        throw ConfigError(fmt::format("--collisions: '{}' is not a share in (0, 1)", c));
    }
    parse_config(args, options, "fit-stats");
    if (out.empty() && cfg.run.dir.empty())
      throw ConfigError("fit-stats: --out is required when run.dir is empty");
    if (out.empty()) out = cfg.run.dir + "/stats.h5";
    return CommChoice{cfg.comm.backend, {cfg.comm.check, cfg.comm.timeout_s}};
  });
  const comm::Runtime& runtime = comm::Runtime::get();
  runtime.set_threads(cfg.run.threads);

  data::Dataset train;
  comm::agree_on(*comm, [&] {
    cfg.validate(1);  // the training split of the batch does not matter here
    data::Dataset all = data::Dataset::index(cfg.data.train, cfg.index_options());
    if (comm->rank() == 0)
      for (const std::string& line : all.findings(cfg.data.train)) log::info(line);
    train = cfg.data.eval.empty() ? all.split(cfg.data.eval_fraction).first : std::move(all);
    if (train.rows == 0) throw DataError(fmt::format("{}: no training rows", cfg.data.train));
  });
  const data::LoaderOptions slice{0, false, 8192, comm->rank(), comm->size()};
  std::vector<int64_t> counts;  // distinct values per categorical column
  if (distinct) {
    data::Loader raw(train, std::vector<int64_t>(train.schema->num_categorical(), stats::kRawIds),
                     slice);
    counts = stats::distinct_values(raw, *comm);
  }
  data::Loader loader(std::move(train), cfg.table_rows(), slice);
  const stats::FeatureStats s = stats::fit(loader, *comm, fit);
  comm::agree_on(*comm, [&] {
    if (comm->rank() != 0) return;
    const auto parent = std::filesystem::path(out).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    stats::save(s, out);
  });
  if (comm->rank() != 0) return 0;
  const std::vector<int64_t> tables = cfg.table_rows();
  std::vector<int64_t> suggested;
  for (int64_t n : counts) suggested.push_back(stats::suggested_rows(n, collisions));
  if (json) {
    nlohmann::json j = stats::to_json(s);
    if (distinct) {
      j["distinct"] = counts;
      j["suggested_rows"] = suggested;
      j["collisions"] = collisions;
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const at::Tensor mean = s.dense.global_mean(), var = s.dense.variance();
  log::infof("fit-stats: {} training rows over {} rank(s) -> {}", s.rows.item<int64_t>(),
             comm->size(), out);
  log::infof("{:<8} {:>10} {:>12} {:>12} {:>10} {:>10} {:>9}", "feature", "count", "mean",
             "variance", "min", "max", "missing");
  const data::Schema& schema = loader.schema();
  for (int64_t f = 0; f < schema.num_dense(); ++f)
    log::infof("{:<8} {:>10} {:>12.6g} {:>12.6g} {:>10.4g} {:>10.4g} {:>9}",
               schema.dense_name(static_cast<int>(f)), s.dense.count[f].item<int64_t>(),
               mean[f].item<double>(), var[f].item<double>(), s.dense.min[f].item<double>(),
               s.dense.max[f].item<double>(), s.dense.missing[f].item<int64_t>());
  for (int64_t f = 0; f < schema.num_categorical(); ++f) {
    const char* what = schema.categorical()[static_cast<size_t>(f)].max_ids > 1 ? "ids" : "rows";
    log::infof("{:<8} top row {} ({} {}), {} {} outside the top {}",
               schema.categorical_name(static_cast<int>(f)), s.top_values[f][0].item<int64_t>(),
               s.top_counts[f][0].item<int64_t>(), what, s.other[f].item<int64_t>(), what, fit.top);
  }
  if (!distinct) return 0;
  log::infof("{:<8} {:>12} {:>14} {:>12}", "column", "distinct", "suggested rows", "now");
  for (size_t f = 0; f < counts.size(); ++f)
    log::infof("{:<8} {:>12} {:>14} {:>12}", schema.categorical_name(static_cast<int>(f)),
               counts[f], suggested[f], tables[f]);
  log::infof("suggested (at most {:g} of the values sharing a row): model.embedding_rows = {}",
             collisions, fmt::join(suggested, ","));
  return 0;
}

}  // namespace tandem::cli
