#include "tandem/data/generator.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>

#include "tandem/data/criteo.h"
#include "tandem/util/error.h"
#include "tandem/util/hash.h"

namespace tandem::data {
namespace {

// A fixed standard-normal value for a key, from its hash (Box-Muller).
double hashed_normal(uint64_t key) {
  const uint64_t h = mix64(key);
  const double u1 = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;
  const double u2 = (static_cast<double>(mix64(h) >> 11) + 0.5) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Zipf sampler over 1..n by rejection-inversion (Hörmann and Derflinger, 1996):
// O(1) memory and time whatever n is.
class Zipf {
 public:
  Zipf(int64_t n, double s) : n_(static_cast<double>(n)), s_(s) {
    h_x1_ = h_integral(1.5) - 1.0;
    h_n_ = h_integral(n_ + 0.5);
    cut_ = 2.0 - h_integral_inverse(h_integral(2.5) - h(2.0));
  }
  template <class Rng>
  int64_t operator()(Rng& rng) {
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    while (true) {
      const double u = h_n_ + uni(rng) * (h_x1_ - h_n_);
      const double x = h_integral_inverse(u);
      double k = std::floor(x + 0.5);
      if (k < 1) k = 1;
      if (k > n_) k = n_;
      if (k - x <= cut_ || u >= h_integral(k + 0.5) - h(k)) return static_cast<int64_t>(k);
    }
  }

 private:
  static double helper1(double x) { return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1 - x / 2; }
  static double helper2(double x) { return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1 + x / 2; }
  double h(double x) const { return std::exp(-s_ * std::log(x)); }
  double h_integral(double x) const {
    const double lx = std::log(x);
    return helper2((1.0 - s_) * lx) * lx;
  }
  double h_integral_inverse(double x) const {
    double t = x * (1.0 - s_);
    if (t < -1.0) t = -1.0;
    return std::exp(helper1(t) * x);
  }
  double n_, s_, h_x1_, h_n_, cut_;
};

// Per-field shape of the synthetic data, fixed (not seeded) so that the same
// teacher applies to every file a user generates.
constexpr double kDenseMissing[kNumDense] = {0.05, 0.0,  0.2, 0.2,  0.03, 0.2, 0.04,
                                             0.0,  0.04, 0.4, 0.04, 0.7,  0.2};
constexpr double kDenseMu[kNumDense] = {1.0, 3.0, 1.5, 2.0, 4.0, 2.5, 1.2,
                                        2.0, 3.5, 0.5, 1.0, 0.8, 1.5};

struct Teacher {
  double dense_w[kNumDense];
  double cat_scale[kNumCategorical];
  double cat_missing[kNumCategorical];
  uint64_t salt = 0;  ///< 0: the default teacher; else its categorical effects differ
  explicit Teacher(uint64_t seed = 0) : salt(seed == 0 ? 0 : mix64(seed)) {
    for (int i = 0; i < kNumDense; ++i) dense_w[i] = 0.35 * hashed_normal(1000 + i + salt);
    for (int i = 0; i < kNumCategorical; ++i) {
      // A third of the fields carry most of the signal, as in real click logs.
      cat_scale[i] = (i % 3 == 0) ? 0.7 : 0.2;
      cat_missing[i] = (i % 5 == 4) ? 0.3 : 0.0;
    }
  }
};

constexpr int kTags = 40, kMaxTags = 4;  // the CSV's multi-hot "tags" column

class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
    if (!f_) throw DataError(fmt::format("generate: cannot write '{}'", path));
  }
  ~Writer() {
    if (f_) std::fclose(f_);
  }
  void write(const std::string& s) {
    if (std::fwrite(s.data(), 1, s.size(), f_) != s.size())
      throw DataError(fmt::format("generate: write to '{}' failed", path_));
  }
  void close() {
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw DataError(fmt::format("generate: closing '{}' failed", path_));
  }

 private:
  std::string path_;
  FILE* f_;
};

}  // namespace

std::vector<std::string> generate(const GenerateOptions& o) {
  if (o.rows < 0) throw ConfigError("generate: --rows must be >= 0");
  if (o.files < 1) throw ConfigError("generate: --files must be >= 1");
  if (o.out.empty()) throw ConfigError("generate: --out is required");
  if (!(o.zipf > 0)) throw ConfigError("generate: --zipf must be > 0");
  if (o.zipf_after < 0) throw ConfigError("generate: --zipf-after must be > 0 (0 = unchanged)");
  if (o.format != "tsv" && o.format != "csv")
    throw ConfigError(fmt::format("generate: --format '{}' is not tsv or csv", o.format));
  const bool csv = o.format == "csv";
  std::vector<int64_t> card = o.cardinalities;
  if (card.size() == 1) card.assign(kNumCategorical, card[0]);
  if (card.size() != static_cast<size_t>(kNumCategorical))
    throw ConfigError(fmt::format("generate: --cardinalities needs 1 or {} values, got {}",
                                  kNumCategorical, card.size()));
  for (int64_t c : card)
    if (c < 1) throw ConfigError("generate: every cardinality must be >= 1");

  std::vector<std::string> paths;
  // The output's directory (the parent of a file, or the directory of parts).
  const std::filesystem::path dir =
      o.files == 1 ? std::filesystem::path(o.out).parent_path() : std::filesystem::path(o.out);
  std::error_code ec;
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) throw DataError(fmt::format("generate: cannot create directory '{}'", dir.string()));
  if (o.files == 1) {
    paths.push_back(o.out);
  } else {
    for (int64_t f = 0; f < o.files; ++f)
      paths.push_back(
          (std::filesystem::path(o.out) / fmt::format("part-{:05d}.{}", f, o.format)).string());
  }

  const Teacher teacher, after(o.teacher_seed);
  std::vector<Zipf> zipf, zipf_after;
  for (int64_t c : card) {
    zipf.emplace_back(c, o.zipf);
    zipf_after.emplace_back(c, o.zipf_after > 0 ? o.zipf_after : o.zipf);
  }
  double shift[kNumDense] = {};
  for (int64_t f : o.shift_dense) {
    if (f < 1 || f > kNumDense)
      throw ConfigError(fmt::format("generate: --shift-dense: no integer feature I{}", f));
    shift[f - 1] = o.shift;
  }
  bool permuted[kNumCategorical] = {};
  for (int64_t f : o.permute_categorical) {
    if (f < 1 || f > kNumCategorical)
      throw ConfigError(fmt::format("generate: --permute-categorical: no categorical C{}", f));
    permuted[f - 1] = true;
  }
  std::mt19937_64 rng(o.seed), tag_rng(mix64(o.seed ^ 0x7a6773));
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);

  std::string buf;
  buf.reserve(1 << 20);
  int64_t row = 0;
  for (size_t f = 0; f < paths.size(); ++f) {
    Writer out(paths[f]);
    if (csv) {
      buf += "id";
      for (int i = 0; i < kNumDense; ++i) buf += fmt::format(",i{}", i + 1);
      for (int i = 0; i < kNumCategorical; ++i) buf += fmt::format(",c{}", i + 1);
      buf += ",tags,label\n";
    }
    const int64_t end = o.rows * static_cast<int64_t>(f + 1) / o.files;
    for (; row < end; ++row) {
      char dense_text[kNumDense][24];
      double logit = -1.6;
      double first_cat = 0.0;
      const bool drifted = o.drift_at >= 0 && row >= o.drift_at;
      const Teacher& t = drifted ? after : teacher;
      for (int i = 0; i < kNumDense; ++i) {
        const double mu = kDenseMu[i] + (drifted ? shift[i] : 0.0);
        const double v = std::floor(std::exp(mu + 1.1 * normal(rng)));
        const bool missing = uni(rng) < kDenseMissing[i];
        if (missing) {
          dense_text[i][0] = '\0';
        } else {
          if (csv)
            std::snprintf(dense_text[i], sizeof dense_text[i], "%.1f", v / 2);
          else
            std::snprintf(dense_text[i], sizeof dense_text[i], "%lld", static_cast<long long>(v));
          logit += t.dense_w[i] * (std::log1p(v) - kDenseMu[i]);
        }
      }
      char cat_text[kNumCategorical][20];
      for (int i = 0; i < kNumCategorical; ++i) {
        int64_t id = (drifted && o.zipf_after > 0 ? zipf_after[i] : zipf[i])(rng);
        if (drifted && permuted[i]) id = (id - 1 + card[i] / 2) % card[i] + 1;
        if (uni(rng) < t.cat_missing[i]) {
          cat_text[i][0] = '\0';
          continue;
        }
        const uint64_t key = (static_cast<uint64_t>(i) << 40) ^ static_cast<uint64_t>(id);
        std::snprintf(cat_text[i], sizeof cat_text[i], csv ? "v%07x" : "%08x",
                      static_cast<unsigned>(mix64(key) & (csv ? 0xfffffffu : 0xffffffffu)));
        const double effect = t.cat_scale[i] * hashed_normal(key ^ t.salt);
        logit += effect;
        if (i == 0) first_cat = effect;
      }
      // One interaction the model must discover: field C1 modulates feature I2.
      logit += 0.8 * first_cat * (dense_text[1][0] ? 1.0 : -1.0);
      // CSV rows also carry a multi-hot "tags" field: 0 to kMaxTags distinct tags of
      // kTags, drawn from their own stream (the other fields match the TSV's), whose
      // mean effect adds to the logit.
      std::string tags;
      if (csv) {
        const int k = static_cast<int>(tag_rng() % (kMaxTags + 1));
        uint64_t taken = 0;
        double effect = 0;
        for (int j = 0; j < k; ++j) {
          int tag = static_cast<int>(tag_rng() % kTags);
          while (taken >> tag & 1) tag = (tag + 1) % kTags;
          taken |= uint64_t{1} << tag;
          tags += fmt::format("{}t{:02d}", j ? "|" : "", tag);
          effect += 1.5 * hashed_normal(0x7a65 + static_cast<uint64_t>(tag) + t.salt);
        }
        if (k > 0) logit += effect / k;
      }
      const int label = uni(rng) < 1.0 / (1.0 + std::exp(-logit)) ? 1 : 0;

      const char sep = csv ? ',' : '\t';
      if (csv)
        buf += std::to_string(row);
      else
        buf += static_cast<char>('0' + label);
      for (int i = 0; i < kNumDense; ++i) {
        buf += sep;
        buf += dense_text[i];
      }
      for (int i = 0; i < kNumCategorical; ++i) {
        buf += sep;
        buf += cat_text[i];
      }
      if (csv) {
        buf += sep;
        buf += tags;
        buf += sep;
        buf += static_cast<char>('0' + label);
      }
      buf += '\n';
      if (buf.size() > (1 << 20) - 1024) {
        out.write(buf);
        buf.clear();
      }
    }
    out.write(buf);
    buf.clear();
    out.close();
  }
  return paths;
}

}  // namespace tandem::data
