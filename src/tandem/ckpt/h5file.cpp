#include "tandem/ckpt/h5file.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <hdf5.h>

// XXH3 from Debian's libxxhash, compiled in (header-only), so nothing extra links.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>
#include <limits>
#include <mutex>
#include <optional>

#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::ckpt {
namespace {

// HDF5 closes what is still open at exit; a file whose close failed (a full disk)
// then crashes it there. The process ends anyway, so the exit is left to the system.
const bool g_no_atexit = (H5dont_atexit(), true);

// HDF5 prints its own error stacks unless told not to; Tandem reports one line.
// The setting is per thread (checkpoints are also written on a background thread).
void quiet() {
  thread_local bool done = false;
  if (done) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  done = true;
}

// The operating system's reason in this thread's HDF5 error stack, if any: the
// file driver records it as "..., error message = 'No space left on device', ...".
std::string os_cause() {
  std::string cause;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        auto& found = *static_cast<std::string*>(out);
        const std::string desc = e->desc ? e->desc : "";
        const std::string key = "error message = '";
        const size_t at = desc.find(key);
        if (found.empty() && at != std::string::npos) {
          const size_t from = at + key.size(), to = desc.find('\'', from);
          found = desc.substr(from, to == std::string::npos ? std::string::npos : to - from);
        }
        return 0;
      },
      &cause);
  H5Eclear2(H5E_DEFAULT);
  return cause;
}

// Closes an HDF5 handle on scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  const std::string cause = os_cause();
  throw DataError(fmt::format("{}: {}{}", file, what, cause.empty() ? "" : ": " + cause));
}

hid_t h5_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return H5T_NATIVE_FLOAT;
    case at::kDouble:
      return H5T_NATIVE_DOUBLE;
    case at::kInt:
      return H5T_NATIVE_INT32;
    case at::kLong:
      return H5T_NATIVE_INT64;
    case at::kByte:
    case at::kBool:
      return H5T_NATIVE_UINT8;
    case at::kHalf:
    case at::kBFloat16:
      return H5T_NATIVE_UINT16;  // bit patterns
    default:
      return -1;
  }
}

at::ScalarType scalar_type_named(const std::string& path, const std::string& dataset,
                                 const std::string& name) {
  for (at::ScalarType t : {at::kFloat, at::kDouble, at::kInt, at::kLong, at::kByte, at::kBool,
                           at::kHalf, at::kBFloat16})
    if (name == c10::toString(t)) return t;
  throw DataError(fmt::format("{}: dataset {} has an unknown dtype '{}'", path, dataset,
                              log::printable(name, 32)));
}

// The "shape" attribute ("2,3"; "" for a scalar); nullopt unless it is a list of
// non-negative integers whose product fits.
std::optional<std::vector<int64_t>> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (size_t pos = 0; pos < text.size();) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    if (item.empty() || item.size() > 18 ||
        item.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    const int64_t d = std::stoll(item);
    if (d > 0 && numel > std::numeric_limits<int64_t>::max() / d) return std::nullopt;
    numel *= d;
    shape.push_back(d);
    pos = comma + 1;
  }
  return shape;
}

// The checksum of a dataset's bytes (as stored: native order, 16-bit floats as
// their bit patterns), in hex: h5py users can check it with the xxhash package.
constexpr const char* kDigestKey = "xxh3_64";
std::string hex_digest(uint64_t h) { return fmt::format("{:016x}", h); }

hid_t file_access(bool locking) {
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl, locking ? 1 : 0, 1);
#else
  (void)locking;
#endif
  return fapl;
}

}  // namespace

// Early writeback of a file being written (Linux: sync_file_range; elsewhere the
// fsync does it all). The request runs on a helper thread, because submitting the
// pages to the block layer is CPU work that would otherwise stall the copying; at
// most one is in flight. Its errors do not matter here: the fsync reports them.
class H5File::Writeback {
 public:
  Writeback(const std::string& path, int64_t reserve) : fd_(::open(path.c_str(), O_RDWR)) {
#ifdef __linux__
    // Blocks allocated up front (beyond the size, which stays as written): ext4
    // then neither reserves nor allocates them page by page during the writes, a
    // quarter of a save's time. A filesystem without fallocate just goes without.
    if (fd_ >= 0 && reserve > 0) (void)::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, reserve);
#else
    (void)reserve;
#endif
  }
  ~Writeback() {
    if (pending_.valid()) pending_.wait();
    if (fd_ >= 0) ::close(fd_);
  }
  /// Called after every write: starts the disk once 8 MiB more are dirty.
  void wrote(size_t bytes) {
    dirty_ += bytes;
    if (fd_ < 0 || dirty_ < kEvery) return;
    dirty_ = 0;
#ifdef __linux__
    if (pending_.valid()) pending_.wait();
    pending_ = std::async(std::launch::async,
                          [fd = fd_] { ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); });
#endif
  }
  static constexpr size_t kEvery = 8u << 20;

 private:
  int fd_;
  size_t dirty_ = 0;
  std::future<void> pending_;
};

// A read-only mapping of a whole file (verification hashes the page cache in place).
class H5File::Mapping {
 public:
  explicit Mapping(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    struct stat st {};
    if (fd >= 0 && ::fstat(fd, &st) == 0 && st.st_size > 0) {
      size_ = static_cast<size_t>(st.st_size);
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
      if (p != MAP_FAILED) data_ = static_cast<const char*>(p);
    }
    if (fd >= 0) ::close(fd);
  }
  ~Mapping() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  /// The bytes [at, at + n), or nullptr if they lie beyond the end (a truncated file).
  const char* bytes(uint64_t at, uint64_t n) const {
    return data_ && at <= size_ && n <= size_ - at ? data_ + at : nullptr;
  }
  bool ok() const { return data_ != nullptr; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

H5File::H5File(int64_t id, std::string path) : id_(id), path_(std::move(path)) {}

H5File H5File::create(const std::string& path, bool locking, int64_t reserve) {
  quiet();
  Handle fapl{file_access(locking), H5Pclose};
  // The HDF5 1.10 file format checksums its metadata (superblock, object headers,
  // chunk indexes), which the library verifies before it parses them: a damaged
  // file is refused instead of misread (our XXH3 covers the data).
#if H5_VERSION_GE(1, 10, 2)
  H5Pset_libver_bounds(fapl.id, H5F_LIBVER_V110, H5F_LIBVER_V110);
#else
  H5Pset_libver_bounds(fapl.id, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
#endif
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id);
  if (id < 0) fail(path, "cannot create the checkpoint file");
  H5File f(id, path);
  f.writeback_ = std::make_unique<Writeback>(path, reserve);
  return f;
}

H5File H5File::open(const std::string& path, bool locking) {
  quiet();
  Handle fapl{file_access(locking), H5Pclose};
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id);
  if (id < 0) fail(path, "not a readable HDF5 file (missing, truncated or corrupt)");
  return H5File(id, path);
}

H5File::H5File(H5File&& o) noexcept
    : id_(o.id_),
      path_(std::move(o.path_)),
      writeback_(std::move(o.writeback_)),
      mapping_(std::move(o.mapping_)) {
  o.id_ = -1;
}
H5File& H5File::operator=(H5File&& o) noexcept {
  if (this != &o) {
    close();
    id_ = o.id_;
    path_ = std::move(o.path_);
    writeback_ = std::move(o.writeback_);
    mapping_ = std::move(o.mapping_);
    o.id_ = -1;
  }
  return *this;
}
H5File::~H5File() {
  try {
    close();
  } catch (const Error&) {  // a destructor must not throw; close() explicitly to see it
  }
}

void H5File::close() {
  writeback_.reset();
  mapping_.reset();
  if (id_ >= 0) {
    const herr_t rc = H5Fclose(id_);
    id_ = -1;
    if (rc < 0) fail(path_, "error while closing (write failed?)");
  }
}

int64_t H5File::ensure_group(const std::string& name) {
  // Creates every missing group along "a/b/c"; returns the parent of the last part.
  std::string at;
  size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos) {
    at = name.substr(0, pos);
    if (at.empty() || at == "/") continue;
    if (H5Lexists(id_, at.c_str(), H5P_DEFAULT) <= 0) {
      const hid_t g = H5Gcreate2(id_, at.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g < 0) fail(path_, "cannot create group " + at);
      H5Gclose(g);
    }
  }
  return 0;
}

void H5File::write_tensor(const std::string& name, const at::Tensor& tensor, int gzip_level) {
  const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const hid_t type = h5_type(t.scalar_type());
  if (type < 0)
    fail(path_, fmt::format("{}: unsupported dtype {}", name, c10::toString(t.scalar_type())));
  ensure_group(name);
  // Stored 1-D in 1 MiB chunks (gzip needs a chunked layout, which needs a rank >= 1
  // and non-empty chunks); the true shape is an attribute. The checksum is an
  // XXH3-64 of the bytes, an attribute too: HDF5's Fletcher32 filter, which older
  // checkpoints used, is a byte-wise loop that took half of a save's time.
  const hsize_t n = static_cast<hsize_t>(t.numel());
  const hsize_t dims[1] = {n};
  Handle space{H5Screate_simple(1, dims, nullptr), H5Sclose};
  Handle dcpl{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
  if (n > 0) {
    const hsize_t per_chunk = std::max<hsize_t>(1, (1u << 20) / t.element_size());
    const hsize_t chunk[1] = {std::min(n, per_chunk)};
    H5Pset_chunk(dcpl.id, 1, chunk);
    if (gzip_level > 0) {
      H5Pset_shuffle(dcpl.id);
      H5Pset_deflate(dcpl.id, static_cast<unsigned>(gzip_level));
    }
  }
  Handle ds{H5Dcreate2(id_, name.c_str(), type, space.id, H5P_DEFAULT, dcpl.id, H5P_DEFAULT),
            H5Dclose};
  if (ds.id < 0) fail(path_, "cannot create dataset " + name);
  // Whole unfiltered chunks go to the file as they are (H5Dwrite_chunk, not through
  // HDF5's chunk cache, which would copy them first), each hashed just before it is
  // written, while it is in the CPU's cache. Gzip datasets, and a last partial
  // chunk, go through H5Dwrite and the filters. The disk starts as they go.
  const auto* bytes = static_cast<const char*>(t.data_ptr());
  const size_t item = t.element_size();
  XXH3_state_t digest;
  XXH3_64bits_reset(&digest);
  const hsize_t chunk = n > 0 ? std::min<hsize_t>(n, std::max<size_t>(1, (1u << 20) / item)) : 0;
  hsize_t first = 0;
  for (; gzip_level == 0 && chunk > 0 && first + chunk <= n; first += chunk) {
    const hsize_t at[1] = {first};
    XXH3_64bits_update(&digest, bytes + first * item, chunk * item);
    if (H5Dwrite_chunk(ds.id, H5P_DEFAULT, 0, at, chunk * item, bytes + first * item) < 0)
      fail(path_, "cannot write dataset " + name);
    if (writeback_) writeback_->wrote(chunk * item);
  }
  if (first < n) {
    const hsize_t start[1] = {first}, count[1] = {n - first};
    XXH3_64bits_update(&digest, bytes + first * item, count[0] * item);
    Handle file_part{H5Scopy(space.id), H5Sclose};
    H5Sselect_hyperslab(file_part.id, H5S_SELECT_SET, start, nullptr, count, nullptr);
    Handle memory{H5Screate_simple(1, count, nullptr), H5Sclose};
    if (H5Dwrite(ds.id, type, memory.id, file_part.id, H5P_DEFAULT, bytes + first * item) < 0)
      fail(path_, "cannot write dataset " + name);
    if (writeback_) writeback_->wrote(count[0] * item);
  }
  std::string shape;
  for (int64_t d : t.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
  set_attr(name, "shape", shape);
  set_attr(name, "dtype", std::string(c10::toString(t.scalar_type())));
  set_attr(name, kDigestKey, hex_digest(XXH3_64bits_digest(&digest)));
}

void H5File::check_digest(const std::string& name, int64_t dataset, uint64_t digest) const {
  if (has_attr(name, kDigestKey)) {
    if (attr_string(name, kDigestKey) != hex_digest(digest))
      fail(path_, "dataset " + name + " is corrupt (checksum mismatch)");
    return;
  }
  // Checkpoints written before the digest: HDF5 verified their Fletcher32 on read.
  Handle dcpl{H5Dget_create_plist(dataset), H5Pclose};
  unsigned flags = 0;
  size_t n = 0;
  if (H5Pget_filter_by_id2(dcpl.id, H5Z_FILTER_FLETCHER32, &flags, &n, nullptr, 0, nullptr,
                           nullptr) < 0)
    fail(path_, "dataset " + name + " has no checksum");
}

int64_t H5File::checked_values(int64_t dataset, const std::string& name, int64_t expected,
                               size_t* item) const {
  Handle type{H5Dget_type(dataset), H5Tclose};
  bool known = false;
  for (hid_t t : {H5T_NATIVE_FLOAT, H5T_NATIVE_DOUBLE, H5T_NATIVE_INT32, H5T_NATIVE_INT64,
                  H5T_NATIVE_UINT8, H5T_NATIVE_UINT16})
    known = known || ((expected < 0 || t == expected) && H5Tequal(type.id, t) > 0);
  if (!known) fail(path_, fmt::format("dataset {} has an unexpected element type", name));
  *item = H5Tget_size(type.id);
  Handle space{H5Dget_space(dataset), H5Sclose};
  const hssize_t n = H5Sget_simple_extent_npoints(space.id);
  Handle dcpl{H5Dget_create_plist(dataset), H5Pclose};
  std::error_code ec;
  const double file = static_cast<double>(std::filesystem::file_size(path_, ec));
  // Deflate compresses 1032:1 at most.
  const double most = (H5Pget_nfilters(dcpl.id) > 0 ? 1032.0 : 1.0) * file;
  if (n < 0 || ec || static_cast<double>(n) * static_cast<double>(*item) > most)
    fail(path_, fmt::format("dataset {} is corrupt (it claims {} values, more than the file holds)",
                            name, n));
  return n;
}

at::Tensor H5File::read_tensor(const std::string& name) const {
  Handle ds{H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) fail(path_, "missing dataset " + name);
  const at::ScalarType st = scalar_type_named(path_, name, attr_string(name, "dtype"));
  const std::string text = attr_string(name, "shape");
  const auto shape = parse_shape(text);
  if (!shape)
    fail(path_, fmt::format("dataset {} has a corrupt shape '{}'", name, log::printable(text, 40)));
  size_t item = 0;
  const int64_t n = checked_values(ds.id, name, h5_type(st), &item);
  int64_t numel = 1;
  for (int64_t d : *shape) numel *= d;
  if (n != numel)
    fail(path_, fmt::format("dataset {} holds {} values, its shape says {}", name, n, numel));
  at::Tensor t = at::empty(*shape, at::TensorOptions().dtype(st));
  if (t.numel() > 0 && H5Dread(ds.id, h5_type(st), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    fail(path_, "dataset " + name + " is corrupt (checksum or read error)");
  check_digest(name, ds.id, XXH3_64bits(t.data_ptr(), t.nbytes()));
  return t;
}

void H5File::check_dataset(const std::string& name, std::vector<char>& scratch) const {
  Handle ds{H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) fail(path_, "missing dataset " + name);
  size_t item = 0;
  const int64_t n = checked_values(ds.id, name, -1, &item);
  Handle type{H5Dget_type(ds.id), H5Tclose};
  Handle space{H5Dget_space(ds.id), H5Sclose};
  XXH3_state_t digest;
  XXH3_64bits_reset(&digest);
  if (n <= 0) return check_digest(name, ds.id, XXH3_64bits_digest(&digest));
  Handle dcpl{H5Dget_create_plist(ds.id), H5Pclose};
  hsize_t chunk[1] = {static_cast<hsize_t>(n)};
  const bool chunked = H5Pget_layout(dcpl.id) == H5D_CHUNKED;
  if (chunked && (H5Pget_chunk(dcpl.id, 1, chunk) != 1 || chunk[0] == 0))
    fail(path_, fmt::format("dataset {} is corrupt (its chunks)", name));
  chunk[0] = std::min<hsize_t>(chunk[0], static_cast<hsize_t>(n));
  if (chunked && H5Pget_nfilters(dcpl.id) == 0)
    if (const auto mapped = mapped_digest(ds.id, name, n, item, chunk[0]))
      return check_digest(name, ds.id, *mapped);
  if (scratch.size() < chunk[0] * item) scratch.resize(chunk[0] * item);
  for (hsize_t first = 0; first < static_cast<hsize_t>(n); first += chunk[0]) {
    const hsize_t count[1] = {std::min<hsize_t>(chunk[0], static_cast<hsize_t>(n) - first)};
    const hsize_t start[1] = {first};
    Handle file_part{H5Scopy(space.id), H5Sclose};
    H5Sselect_hyperslab(file_part.id, H5S_SELECT_SET, start, nullptr, count, nullptr);
    Handle memory{H5Screate_simple(1, count, nullptr), H5Sclose};
    if (H5Dread(ds.id, type.id, memory.id, file_part.id, H5P_DEFAULT, scratch.data()) < 0)
      fail(path_, "dataset " + name + " is corrupt (checksum or read error)");
    XXH3_64bits_update(&digest, scratch.data(), count[0] * item);
  }
  check_digest(name, ds.id, XXH3_64bits_digest(&digest));
}

std::optional<uint64_t> H5File::mapped_digest(int64_t dataset, const std::string& name, int64_t n,
                                              size_t item, uint64_t chunk) const {
  if (!mapping_) mapping_ = std::make_unique<Mapping>(path_);
  if (!mapping_->ok() || chunk == 0) return std::nullopt;
  // Unfiltered chunks hold the values as stored: hash them in logical order, the
  // last one only up to the dataset's end (chunks are allocated whole).
  XXH3_state_t digest;
  XXH3_64bits_reset(&digest);
  const hsize_t total = static_cast<hsize_t>(n);
  for (hsize_t first = 0; first < total; first += chunk) {
    const hsize_t at[1] = {first};
    unsigned mask = 0;
    haddr_t address = HADDR_UNDEF;
    hsize_t stored = 0;
    const hsize_t want = std::min<hsize_t>(chunk, total - first) * item;
    if (H5Dget_chunk_info_by_coord(dataset, at, &mask, &address, &stored) < 0 ||
        address == HADDR_UNDEF || stored < want)
      fail(path_, fmt::format("dataset {} is corrupt (chunk at {} missing)", name, first));
    const char* p = mapping_->bytes(address, want);
    if (!p)
      fail(path_, fmt::format("dataset {} is truncated (chunk at {} beyond the end)", name, first));
    XXH3_64bits_update(&digest, p, want);
  }
  return XXH3_64bits_digest(&digest);
}

void H5File::write_text(const std::string& name, const std::string& text) {
  at::Tensor bytes = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
  std::copy(text.begin(), text.end(), bytes.data_ptr<uint8_t>());
  write_tensor(name, bytes, 0);
  set_attr(name, "encoding", std::string("utf-8"));
}

std::string H5File::read_text(const std::string& name) const {
  const at::Tensor bytes = read_tensor(name);
  const auto* p = bytes.data_ptr<uint8_t>();
  return std::string(p, p + bytes.numel());
}

bool H5File::exists(const std::string& name) const {
  if (name == "/") return true;
  // Every prefix must exist for H5Lexists to answer without an error.
  size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos)
    if (H5Lexists(id_, name.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  return H5Lexists(id_, name.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> H5File::children(const std::string& name) const {
  std::vector<std::string> out;
  if (!exists(name)) return out;
  Handle g{H5Gopen2(id_, name.c_str(), H5P_DEFAULT), H5Gclose};
  H5G_info_t info;
  if (g.id < 0 || H5Gget_info(g.id, &info) < 0) fail(path_, "cannot list group " + name);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(g.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len <= 0 || len > 4096) fail(path_, "cannot list group " + name);
    std::string child(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(g.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, child.data(), len + 1,
                       H5P_DEFAULT);
    out.push_back(child);
  }
  return out;
}

std::vector<std::string> H5File::datasets(const std::string& name) const {
  std::vector<std::string> out;
  // Tandem nests 3 deep; a corrupt file may link a group into itself.
  if (std::count(name.begin(), name.end(), '/') > 8)
    fail(path_, "group " + name + " is corrupt (nested too deep)");
  for (const std::string& child : children(name)) {
    const std::string full = (name == "/" ? "" : name) + "/" + child;
    H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
    const herr_t rc = H5Oget_info_by_name3(id_, full.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT);
#else
    const herr_t rc = H5Oget_info_by_name2(id_, full.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT);
#endif
    if (rc < 0) fail(path_, "cannot read object " + full);
    if (info.type == H5O_TYPE_GROUP) {
      const auto sub = datasets(full);
      out.insert(out.end(), sub.begin(), sub.end());
    } else if (info.type == H5O_TYPE_DATASET) {
      out.push_back(full);
    }
  }
  return out;
}

namespace {

void write_attr(hid_t file, const std::string& path, const std::string& obj, const std::string& key,
                hid_t type, const void* value) {
  if (H5Aexists_by_name(file, obj.c_str(), key.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(file, obj.c_str(), key.c_str(), H5P_DEFAULT);
  Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Handle a{H5Acreate_by_name(file, obj.c_str(), key.c_str(), type, space.id, H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose};
  if (a.id < 0 || H5Awrite(a.id, type, value) < 0)
    fail(path, fmt::format("cannot write attribute {}:{}", obj, key));
}

}  // namespace

void H5File::set_attr(const std::string& name, const std::string& key, int64_t value) {
  write_attr(id_, path_, name, key, H5T_NATIVE_INT64, &value);
}
void H5File::set_attr(const std::string& name, const std::string& key, double value) {
  write_attr(id_, path_, name, key, H5T_NATIVE_DOUBLE, &value);
}
void H5File::set_attr(const std::string& name, const std::string& key, const std::string& value) {
  Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.id, std::max<size_t>(1, value.size()));
  H5Tset_cset(type.id, H5T_CSET_UTF8);
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_attr(id_, path_, name, key, type.id, padded.data());
}

bool H5File::has_attr(const std::string& name, const std::string& key) const {
  return exists(name) && H5Aexists_by_name(id_, name.c_str(), key.c_str(), H5P_DEFAULT) > 0;
}

namespace {

Handle open_attr(hid_t file, const std::string& path, const std::string& obj,
                 const std::string& key) {
  const hid_t a = H5Aopen_by_name(file, obj.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) fail(path, fmt::format("missing attribute {}:{}", obj, key));
  Handle attr{a, H5Aclose};
  // One value: a read fills exactly one (a corrupt extent would overrun it).
  Handle space{H5Aget_space(a), H5Sclose};
  if (H5Sget_simple_extent_npoints(space.id) != 1)
    fail(path, fmt::format("attribute {}:{} is corrupt (not one value)", obj, key));
  return attr;
}

}  // namespace

int64_t H5File::attr_int(const std::string& name, const std::string& key) const {
  Handle a = open_attr(id_, path_, name, key);
  int64_t v = 0;
  if (H5Aread(a.id, H5T_NATIVE_INT64, &v) < 0) fail(path_, "cannot read attribute " + key);
  return v;
}

double H5File::attr_double(const std::string& name, const std::string& key) const {
  Handle a = open_attr(id_, path_, name, key);
  double v = 0;
  if (H5Aread(a.id, H5T_NATIVE_DOUBLE, &v) < 0) fail(path_, "cannot read attribute " + key);
  return v;
}

std::string H5File::attr_string(const std::string& name, const std::string& key) const {
  Handle a = open_attr(id_, path_, name, key);
  Handle type{H5Aget_type(a.id), H5Tclose};
  if (H5Tget_class(type.id) != H5T_STRING) fail(path_, "attribute " + key + " is not a string");
  if (H5Tis_variable_str(type.id) > 0) {  // as h5py writes them
    char* p = nullptr;
    if (H5Aread(a.id, type.id, &p) < 0 || p == nullptr) fail(path_, "cannot read attribute " + key);
    std::string v(p);
    H5free_memory(p);
    return v;
  }
  const size_t size = H5Tget_size(type.id);
  if (size == 0 || size > (1u << 20)) fail(path_, "attribute " + key + " is corrupt (its size)");
  std::string v(size, '\0');
  if (H5Aread(a.id, type.id, v.data()) < 0) fail(path_, "cannot read attribute " + key);
  v.resize(std::strlen(v.c_str()));
  return v;
}

}  // namespace tandem::ckpt
