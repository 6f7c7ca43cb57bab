// A small RAII layer over HDF5's C API for checkpoints: tensors as chunked
// datasets with optional gzip and an XXH3-64 checksum of their bytes (verified on
// every read; older files' Fletcher32 filter is still honoured), text as UTF-8 byte
// datasets, scalars as attributes. The only file that includes hdf5.h.
//
// Writing starts the disk early: every 8 MiB the kernel is asked (from a helper
// thread) to begin writing the file's dirty pages back, so the fsync that seals a
// checkpoint waits for the tail only, not for the whole file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tandem::ckpt {

class H5File {
 public:
  /// Creates (truncates) `path` for writing; `locking` false turns HDF5's file
  /// locking off (for filesystems without it). `reserve` bytes of disk are
  /// allocated at once (no more than the file will hold: the rest would stay
  /// allocated past its end).
  static H5File create(const std::string& path, bool locking, int64_t reserve = 0);
  /// Opens `path` read-only; a missing, truncated or non-HDF5 file throws DataError.
  static H5File open(const std::string& path, bool locking);

  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  ~H5File();
  void close();

  /// A dataset at `name` ("group/sub/ds"; groups are created as needed) holding a
  /// contiguous CPU copy of `t` (float32/64, int32/64, uint8, bool; float16 and
  /// bfloat16 as their 16-bit patterns). Its true shape and dtype go in attributes.
  void write_tensor(const std::string& name, const at::Tensor& t, int gzip_level);
  /// Reads it back and verifies its checksum.
  at::Tensor read_tensor(const std::string& name) const;
  /// Reads dataset `name` a chunk at a time into `scratch` and drops it, verifying
  /// its checksum without the whole tensor ever being allocated (a checkpoint's
  /// read-back then costs no fresh pages). DataError if corrupt.
  void check_dataset(const std::string& name, std::vector<char>& scratch) const;

  void write_text(const std::string& name, const std::string& text);
  std::string read_text(const std::string& name) const;

  bool exists(const std::string& name) const;
  /// Names of the direct children of group `name`, sorted.
  std::vector<std::string> children(const std::string& name) const;
  /// Every dataset below `name`, as full paths, sorted.
  std::vector<std::string> datasets(const std::string& name = "/") const;

  /// Attributes on the object `name` (a group or dataset; "/" for the file).
  void set_attr(const std::string& name, const std::string& key, int64_t value);
  void set_attr(const std::string& name, const std::string& key, double value);
  void set_attr(const std::string& name, const std::string& key, const std::string& value);
  int64_t attr_int(const std::string& name, const std::string& key) const;
  double attr_double(const std::string& name, const std::string& key) const;
  std::string attr_string(const std::string& name, const std::string& key) const;
  bool has_attr(const std::string& name, const std::string& key) const;

  const std::string& path() const { return path_; }

 private:
  class Writeback;
  class Mapping;
  H5File(int64_t id, std::string path);
  int64_t ensure_group(const std::string& name);
  /// The number of values of `dataset`, checked before anything is allocated for
  /// them: its element type is `expected` (any type Tandem writes when negative), and
  /// it claims no more bytes than the file could hold (its size, times what deflate
  /// can compress when filtered), so no corrupt header makes a read allocate more.
  /// Its element size goes to `item`.
  int64_t checked_values(int64_t dataset, const std::string& name, int64_t expected,
                         size_t* item) const;
  /// DataError unless `digest` (of the bytes read) matches the stored one.
  void check_digest(const std::string& name, int64_t dataset, uint64_t digest) const;
  /// The XXH3 of an unfiltered chunked dataset's stored bytes (`n` items of `item`
  /// bytes, `chunk` items per chunk), hashed in place from a read-only mapping of
  /// the file; nullopt if the file cannot be mapped (then it is read through HDF5).
  std::optional<uint64_t> mapped_digest(int64_t dataset, const std::string& name, int64_t n,
                                        size_t item, uint64_t chunk) const;
  int64_t id_ = -1;
  std::string path_;
  std::unique_ptr<Writeback> writeback_;      ///< while writing
  mutable std::unique_ptr<Mapping> mapping_;  ///< while verifying
};

}  // namespace tandem::ckpt
