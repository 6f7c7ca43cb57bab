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
#include "tandem/util/error.h"
#include "tandem/util/hash.h"
#include "tandem/util/log.h"

namespace tandem::ckpt {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "tandem-checkpoint";
// 2: the root attributes have a checksummed copy, the dataset /header.
// 3: the attribute run_id.
constexpr int64_t kFormatVersion = 3;
constexpr int64_t kHeaderSince = 2;

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

std::string parent_dir(const std::string& path) {
  const std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

void crash_point(const char* step) {
  const char* f = std::getenv("TANDEM_CKPT_FAULT");
  if (!f) return;
  const std::string spec = f;
  const size_t at = spec.find('@');
  if (spec.substr(0, at) != step) return;
  static int reached = 0;
  const int k = at == std::string::npos ? 1 : std::atoi(spec.c_str() + at + 1);
  if (++reached == k) std::raise(SIGKILL);
}

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

// The root attributes a resume trusts, in their order, with the format version
// that introduced each: the one list that writing, reading and the checksummed
// header go by. table_shards is written only when > 0.
template <class S, class F>
void for_each_attr(S& s, F&& fn) {
  fn("tandem_version", s.version, 1);
  fn("world_size", s.world_size, 1);
  fn("global_batch", s.global_batch, 1);
  fn("step", s.step, 1);
  fn("epoch", s.epoch, 1);
  fn("samples", s.samples, 1);
  fn("lr", s.lr, 1);
  fn("best_logloss", s.best, 1);
  fn("bad_evals", s.bad_evals, 1);
  fn("monitor", s.monitor, 1);
  fn("optimizer", s.optimizer_name, 1);
  fn("table_shards", s.table_shards, 1);
  fn("run_id", s.run_id, 3);
}

void read_attr(const H5File& f, const char* key, int64_t& v) { v = f.attr_int("/", key); }
void read_attr(const H5File& f, const char* key, double& v) { v = f.attr_double("/", key); }
void read_attr(const H5File& f, const char* key, std::string& v) { v = f.attr_string("/", key); }

// The attributes as "key=value" lines, written beside them as the dataset /header,
// whose XXH3 covers them (HDF5 attributes have no checksum of their own). Doubles
// print exactly (shortest round-trip form).
std::string header_text(int64_t format_version, const State& s) {
  std::string h = fmt::format("format_version={}\n", format_version);
  for_each_attr(s, [&](const char* key, const auto& value, int64_t since) {
    if (since <= format_version) h += fmt::format("{}={}\n", key, value);
  });
  return h;
}

// The root attributes of `f` (format checked) into `s`, checked against /header.
void read_header_of(const H5File& f, const std::string& path, State& s) {
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kFormat)
    throw DataError(fmt::format("{}: not a Tandem checkpoint", path));
  const int64_t version = f.attr_int("/", "format_version");
  if (version > kFormatVersion)
    throw DataError(fmt::format("{}: checkpoint format {} is newer than this Tandem reads ({})",
                                path, version, kFormatVersion));
  for_each_attr(s, [&](const char* key, auto& value, int64_t since) {
    if (since > version) return;
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
    for_each_attr(s, [&](const char* key, const auto& value, int64_t) {
      if (std::string_view(key) != "table_shards" || s.table_shards > 0)
        f.set_attr("/", key, value);
    });
    f.write_text("/header", header_text(kFormatVersion, s));
    write_map(f, "/model/parameters", s.params, o.gzip);
    crash_point("write");
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
  crash_point("fsync");
  auto verified = std::async(std::launch::async, [&] {
    crash_point("verify");
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
  crash_point("rename");
  fs::rename(tmp, path);
  crash_point("dirsync");
  fsync_path(parent_dir(path), true);
}

State read_header(const std::string& path, bool locking) {
  const H5File f = H5File::open(path, locking);
  State s;
  read_header_of(f, path, s);
  return s;
}

void verify(const std::string& path, bool locking) {
  const H5File f = H5File::open(path, locking);
  State header;
  read_header_of(f, path, header);
  std::vector<char> scratch;  // one chunk, reused: no fresh pages per dataset
  for (const std::string& ds : f.datasets()) f.check_dataset(ds, scratch);
}

State read(const std::string& path, bool locking) {
  const H5File f = H5File::open(path, locking);
  State s;
  read_header_of(f, path, s);
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

}  // namespace tandem::ckpt
