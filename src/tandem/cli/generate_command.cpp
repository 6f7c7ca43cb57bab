#include <fmt/format.h>

#include "tandem/cli/commands.h"
#include "tandem/comm/runtime.h"
#include "tandem/config/options.h"
#include "tandem/data/generator.h"
#include "tandem/util/log.h"

namespace tandem::cli {

int generate(const std::vector<std::string>& args) {
  data::GenerateOptions o;
  int64_t seed = 1;
  std::string cardinalities = "100000", shift_dense, permute;
  int64_t teacher_seed = 0;
  config::OptionSet options("tandem generate options");
  options.add("rows", &o.rows, "rows to write")
      .add("seed", &seed, "random seed; the same seed gives the same bytes")
      .add("out", &o.out, "output file, or a directory when --files > 1")
      .add("format", &o.format,
           "tsv (Criteo's layout) or csv (a header CSV with decimals, strings and the label "
           "last, for configs/csv_example.ini)")
      .add("files", &o.files, "number of files to split the rows over")
      .add("cardinalities", &cardinalities,
           "distinct ids per categorical field (1 value, or 26 comma-separated)")
      .add("zipf", &o.zipf, "Zipf exponent of the categorical id distribution")
      .add("drift-at", &o.drift_at,
           "change point: the row (over all files) from which the options below apply; -1 = none")
      .add("shift-dense", &shift_dense,
           "integer features (1-13, comma-separated) whose log-normal mean moves by --shift")
      .add("shift", &o.shift, "the shift of --shift-dense, in log units")
      .add("permute-categorical", &permute,
           "categorical features (1-26, comma-separated) whose ids are permuted (other values "
           "become frequent)")
      .add("zipf-after", &o.zipf_after, "the categorical ids' Zipf exponent; 0 = unchanged")
      .add("teacher-seed", &teacher_seed,
           "another hidden teacher (concept drift: the labels' dependence changes); 0 = same");
  if (wants_help(args)) {
    log::info("usage: tandem generate --rows N --seed S --out PATH [--files K] [--drift-at ROW "
              "...]\n\n" +
              options.help());
    return 0;
  }
  options.parse(args);
  o.seed = static_cast<uint64_t>(seed);
  o.cardinalities = config::parse_int_list("cardinalities", cardinalities);
  if (!shift_dense.empty()) o.shift_dense = config::parse_int_list("shift-dense", shift_dense);
  if (!permute.empty()) o.permute_categorical = config::parse_int_list("permute-categorical", permute);
  o.teacher_seed = static_cast<uint64_t>(teacher_seed);
  // One writer: under mpirun, rank 0 generates and the other ranks do nothing.
  if (comm::Runtime::get().rank() != 0) return 0;
  const auto paths = data::generate(o);
  log::infof("generate: wrote {} rows to {}{}", o.rows, o.out,
             paths.size() > 1 ? fmt::format(" ({} files)", paths.size()) : "");
  return 0;
}

}  // namespace tandem::cli
