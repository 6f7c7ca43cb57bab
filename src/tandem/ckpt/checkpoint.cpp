#include "tandem/ckpt/checkpoint.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <sstream>

#include "tandem/ckpt/h5file.h"
#include "tandem/ckpt/sharded.h"
#include "tandem/util/error.h"
#include "tandem/util/hash.h"
#include "tandem/util/log.h"

namespace tandem::ckpt {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "tandem-checkpoint";
// 2: the root attributes have a checksummed copy, the dataset /header.
constexpr int64_t kFormatVersion = 2;
constexpr int64_t kHeaderSince = 2;

// Fault injection for the crash-safety tests: TANDEM_CKPT_FAULT=STEP[@K] names a
// step of the write sequence (write, fsync, verify, rename, dirsync, latest) at
// which the process kills itself, as a power cut or kill -9, on the K-th save
// (default the first).
void maybe_die(const char* step) {
  const char* f = std::getenv("TANDEM_CKPT_FAULT");
  if (!f) return;
  const std::string spec = f;
  const size_t at = spec.find('@');
  if (spec.substr(0, at) != step) return;
  static int reached = 0;
  const int k = at == std::string::npos ? 1 : std::atoi(spec.c_str() + at + 1);
  if (++reached == k) std::raise(SIGKILL);
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw Error(fmt::format("{}: cannot open to fsync: {}", path, std::strerror(errno)));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error(fmt::format("{}: fsync failed: {}", path, std::strerror(errno)));
}

std::string hex(uint64_t v) { return fmt::format("{:016x}", v); }

// Names in a group may not contain '/'; parameter names use '.' already.
void write_map(H5File& f, const std::string& group, const std::map<std::string, at::Tensor>& m,
               int gzip) {
  for (const auto& [name, t] : m) f.write_tensor(group + "/" + name, t, gzip);
}

std::map<std::string, at::Tensor> read_map(const H5File& f, const std::string& group) {
  std::map<std::string, at::Tensor> m;
  for (const std::string& ds : f.datasets(group))
    m[ds.substr(group.size() + 1)] = f.read_tensor(ds);
  return m;
}

std::string data_text(const std::vector<DataFile>& files) {
  std::string out;
  for (const DataFile& d : files) out += fmt::format("{}\t{}\t{}\n", d.path, d.bytes, d.digest);
  return out;
}

std::vector<DataFile> parse_data(const std::string& text) {
  std::vector<DataFile> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find('\t'), b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    out.push_back(
        {line.substr(0, a), std::stoll(line.substr(a + 1, b - a - 1)), line.substr(b + 1)});
  }
  return out;
}

int64_t step_of(const std::string& file) {
  // step-000000123.h5
  // (not its shards, step-000000123.h5.shard-*.h5)
  const std::string name = fs::path(file).filename().string();
  if (name.rfind("step-", 0) != 0 || name.size() < 9 || name.substr(name.size() - 3) != ".h5")
    return -1;
  const std::string digits = name.substr(5, name.size() - 8);
  if (digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

std::string parent_dir(const std::string& path) {
  const std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    errno = 0;
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush())
      throw IoError(
          fmt::format("{}: cannot write: {}", tmp, errno ? std::strerror(errno) : "unknown error"));
  }
  fsync_path(tmp, false);
  fs::rename(tmp, path);
  fsync_path(parent_dir(path), true);
}

namespace {

// The root attributes a resume trusts, in their order: the one list that writing,
// reading and the checksummed header go by. table_shards is written only when > 0.
template <class S, class F>
void for_each_attr(S& s, F&& fn) {
  fn("tandem_version", s.version);
  fn("world_size", s.world_size);
  fn("global_batch", s.global_batch);
  fn("step", s.step);
  fn("epoch", s.epoch);
  fn("samples", s.samples);
  fn("lr", s.lr);
  fn("best_logloss", s.best);
  fn("bad_evals", s.bad_evals);
  fn("monitor", s.monitor);
  fn("optimizer", s.optimizer_name);
  fn("table_shards", s.table_shards);
}

void read_attr(const H5File& f, const char* key, int64_t& v) { v = f.attr_int("/", key); }
void read_attr(const H5File& f, const char* key, double& v) { v = f.attr_double("/", key); }
void read_attr(const H5File& f, const char* key, std::string& v) { v = f.attr_string("/", key); }

// The attributes as "key=value" lines, written beside them as the dataset /header,
// whose XXH3 covers them (HDF5 attributes have no checksum of their own). Doubles
// print exactly (shortest round-trip form).
std::string header_text(int64_t format_version, const State& s) {
  std::string h = fmt::format("format_version={}\n", format_version);
  for_each_attr(
      s, [&](const char* key, const auto& value) { h += fmt::format("{}={}\n", key, value); });
  return h;
}

// The root attributes of `f` (format checked) into `s`, checked against /header.
void read_header(const H5File& f, const std::string& path, State& s) {
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kFormat)
    throw DataError(fmt::format("{}: not a Tandem checkpoint", path));
  const int64_t version = f.attr_int("/", "format_version");
  if (version > kFormatVersion)
    throw DataError(fmt::format("{}: checkpoint format {} is newer than this Tandem reads ({})",
                                path, version, kFormatVersion));
  for_each_attr(s, [&](const char* key, auto& value) {
    if (std::string_view(key) != "table_shards" || f.has_attr("/", key)) read_attr(f, key, value);
  });
  if (!f.exists("/header")) {
    if (version < kHeaderSince) return;  // format 1 had no copy
    throw DataError(fmt::format("{}: the checksummed header (/header) is missing", path));
  }
  const std::string saved = f.read_text("/header"), now = header_text(version, s);
  if (saved == now) return;
  std::istringstream a(saved), b(now);
  for (std::string x, y; std::getline(a, x) && std::getline(b, y);)
    if (x != y)
      throw DataError(
          fmt::format("{}: attribute {} is corrupt: it says {}, its checksummed copy {}", path,
                      y.substr(0, y.find('=')), log::printable(y.substr(y.find('=') + 1), 64),
                      log::printable(x.substr(x.find('=') + 1), 64)));
  throw DataError(fmt::format("{}: the attributes do not match their checksummed copy", path));
}

}  // namespace

void write(const std::string& path, const State& s, const WriteOptions& o) {
  const std::string tmp = path + ".tmp";
  {
    // The tensors' bytes, which an uncompressed file holds at least: allocated at once.
    int64_t bytes = 0;
    for (const auto* m : {&s.params, &s.buffers, &s.optimizer, &s.stats})
      for (const auto& [name, t] : *m) bytes += static_cast<int64_t>(t.nbytes());
    H5File f = H5File::create(tmp, o.locking, o.gzip > 0 ? 0 : bytes);
    f.set_attr("/", "format", std::string(kFormat));
    f.set_attr("/", "format_version", kFormatVersion);
    for_each_attr(s, [&](const char* key, const auto& value) {
      if (std::string_view(key) != "table_shards" || s.table_shards > 0)
        f.set_attr("/", key, value);
    });
    f.write_text("/header", header_text(kFormatVersion, s));
    write_map(f, "/model/parameters", s.params, o.gzip);
    maybe_die("write");
    write_map(f, "/model/buffers", s.buffers, o.gzip);
    write_map(f, "/optimizer", s.optimizer, o.gzip);
    write_map(f, "/stats", s.stats, o.gzip);
    for (size_t r = 0; r < s.rng.size(); ++r)
      f.write_tensor(fmt::format("/rng/rank_{}", r), s.rng[r], 0);
    for (size_t r = 0; r < s.cuda_rng.size(); ++r)
      f.write_tensor(fmt::format("/rng_cuda/rank_{}", r), s.cuda_rng[r], 0);
    f.write_text("/config", s.config);
    f.write_text("/metrics", s.metrics);
    f.write_text("/provenance/data", data_text(s.data));
    f.close();
  }
  // fsync (disk-bound) and the read-back (from the page cache) both finish before
  // the rename; running them side by side hides the read-back behind the disk.
  maybe_die("fsync");
  auto verified = std::async(std::launch::async, [&] {
    maybe_die("verify");
    verify(tmp, o.locking);
  });
  std::exception_ptr sync_error;
  try {
    fsync_path(tmp, false);
  } catch (...) {
    sync_error = std::current_exception();
  }
  verified.get();  // a checksum error wins: it says more
  if (sync_error) std::rethrow_exception(sync_error);
  maybe_die("rename");
  fs::rename(tmp, path);
  maybe_die("dirsync");
  fsync_path(parent_dir(path), true);
}

int64_t read_table_shards(const std::string& path, bool locking) {
  const H5File f = H5File::open(path, locking);
  return f.has_attr("/", "table_shards") ? f.attr_int("/", "table_shards") : 0;
}

void verify(const std::string& path, bool locking) {
  const H5File f = H5File::open(path, locking);
  State header;
  read_header(f, path, header);
  std::vector<char> scratch;  // one chunk, reused: no fresh pages per dataset
  for (const std::string& ds : f.datasets()) f.check_dataset(ds, scratch);
}

State read(const std::string& path, bool locking) {
  const H5File f = H5File::open(path, locking);
  State s;
  read_header(f, path, s);
  s.params = read_map(f, "/model/parameters");
  s.buffers = read_map(f, "/model/buffers");
  s.optimizer = read_map(f, "/optimizer");
  s.stats = read_map(f, "/stats");
  for (const auto& [group, out] :
       {std::pair{"/rng", &s.rng}, std::pair{"/rng_cuda", &s.cuda_rng}}) {
    if (!f.exists(group)) continue;
    for (const std::string& r : f.children(group)) {  // rank_<r>
      const size_t rank = std::stoul(r.substr(5));
      if (out->size() <= rank) out->resize(rank + 1);
      (*out)[rank] = f.read_tensor(std::string(group) + "/" + r);
    }
  }
  s.config = f.read_text("/config");
  s.metrics = f.read_text("/metrics");
  s.data = parse_data(f.read_text("/provenance/data"));
  return s;
}

std::string digest(const State& s) {
  uint64_t h = 0;
  const auto add = [&](const std::map<std::string, at::Tensor>& m) {
    for (const auto& [name, t] : m) {
      for (char c : name) h = mix64(h ^ static_cast<unsigned char>(c));
      const at::Tensor c = t.contiguous();
      const auto* p = static_cast<const unsigned char*>(c.data_ptr());
      const size_t n = c.nbytes();
      size_t i = 0;
      for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = mix64(h ^ w);
      }
      for (; i < n; ++i) h = mix64(h ^ p[i]);
    }
  };
  add(s.params);
  add(s.buffers);
  add(s.optimizer);
  return hex(h);
}

std::string file_digest(const std::string& path, int64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open", path));
  std::vector<char> buf(1 << 20);
  uint64_t h = 0;
  int64_t left = limit < 0 ? std::numeric_limits<int64_t>::max() : limit;
  while (in && left > 0) {
    in.read(buf.data(), static_cast<std::streamsize>(
                            std::min<int64_t>(left, static_cast<int64_t>(buf.size()))));
    const size_t n = static_cast<size_t>(in.gcount());
    left -= static_cast<int64_t>(n);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, buf.data() + i, 8);
      h = mix64(h ^ w);
    }
    for (; i < n; ++i) h = mix64(h ^ static_cast<unsigned char>(buf[i]));
  }
  return hex(h);
}

Store::Store(std::string dir, StoreOptions options) : dir_(std::move(dir)), options_(options) {
  fs::create_directories(dir_);
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().extension() == ".tmp") {
      log::infof("checkpoint: removing {} (left by an interrupted save)", e.path().string());
      fs::remove(e.path());
    }
}

std::vector<std::string> Store::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const int64_t step = step_of(e.path().string());
    if (step >= 0 && e.path().extension() == ".h5") found.push_back({step, e.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [step, p] : found) out.push_back(p);
  return out;
}

std::string Store::save(const State& s, const std::function<void(const std::string&)>& commit) {
  const std::string path = (fs::path(dir_) / fmt::format("step-{:09d}.h5", s.step)).string();
  write(path, s, options_.write);
  if (commit) commit(path);
  maybe_die("latest");
  write_atomically((fs::path(dir_) / "latest").string(), fs::path(path).filename().string() + "\n");
  prune(path);
  return path;
}

void Store::set_aside(const std::string& path, const std::string& why) {
  const fs::path aside = fs::path(dir_) / "corrupt";
  std::error_code ec;
  fs::create_directories(aside, ec);
  const std::string name = fs::path(path).filename().string();
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_regular_file() && e.path().filename().string().rfind(name, 0) == 0)
      fs::rename(e.path(), aside / e.path().filename(), ec);  // with its manifest and shards
  log::warn(fmt::format("checkpoint: {} does not load ({}); moved to {}", path, why,
                        (aside / name).string()));
}

void Store::prune(const std::string& saved) {
  // Only checkpoints whose header reads count; the others go aside, so an
  // unloadable file with a higher step never crowds out the one just saved.
  std::vector<std::string> all;
  for (const std::string& p : list()) {
    try {
      if (p != saved) {
        const H5File f = H5File::open(p, options_.write.locking);
        State header;
        read_header(f, p, header);
      }
      all.push_back(p);
    } catch (const Error& e) {
      set_aside(p, e.what());
    }
  }
  std::vector<std::string> keep{saved};
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = std::max<int64_t>(0, n - options_.keep_last); i < n; ++i) keep.push_back(all[i]);
  if (options_.keep_best > 0) {
    std::vector<std::pair<double, std::string>> scored;
    for (const std::string& p : all) {
      try {
        const H5File f = H5File::open(p, options_.write.locking);
        const double m = f.attr_double("/", "monitor");
        if (std::isfinite(m)) scored.push_back({options_.maximize ? -m : m, p});
      } catch (const Error&) {
      }
    }
    std::sort(scored.begin(), scored.end());
    for (int64_t i = 0; i < std::min<int64_t>(options_.keep_best, scored.size()); ++i)
      keep.push_back(scored[i].second);
  }
  for (const std::string& p : all)
    if (std::find(keep.begin(), keep.end(), p) == keep.end()) {
      // The manifest first: without it the shards are no checkpoint any more.
      fs::remove(manifest_path(p));
      fs::remove(p);
      const std::string shard_prefix = fs::path(p).filename().string() + ".shard-";
      for (const auto& e : fs::directory_iterator(dir_))
        if (e.path().filename().string().rfind(shard_prefix, 0) == 0) fs::remove(e.path());
    }
}

std::optional<std::string> Store::latest_valid() {
  std::vector<std::string> candidates = list();
  std::reverse(candidates.begin(), candidates.end());
  // `latest` first when it names an existing file (it is the newest committed).
  std::ifstream pointer((fs::path(dir_) / "latest").string());
  std::string name;
  if (pointer && std::getline(pointer, name) && !name.empty()) {
    const std::string p = (fs::path(dir_) / name).string();
    candidates.erase(std::remove(candidates.begin(), candidates.end(), p), candidates.end());
    candidates.insert(candidates.begin(), p);
  }
  for (const std::string& p : candidates) {
    try {
      verify(p, options_.write.locking);
      if (read_table_shards(p, options_.write.locking) > 0)
        verify_sharded(p, options_.write.locking, /*deep=*/false);
      return p;
    } catch (const Error& e) {
      set_aside(p, e.what());
    }
  }
  return std::nullopt;
}

std::optional<std::string> resolve_resume(const std::string& spec, const std::string& dir,
                                          bool locking) {
  if (spec.empty()) return std::nullopt;
  if (spec != "auto") {
    verify(spec, locking);
    return spec;
  }
  if (dir.empty() || !fs::exists(dir)) return std::nullopt;
  StoreOptions o;
  o.write.locking = locking;
  const auto found = Store(dir, o).latest_valid();
  return found;
}

}  // namespace tandem::ckpt
