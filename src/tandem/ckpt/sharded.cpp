#include "tandem/ckpt/sharded.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <exception>
#include <filesystem>
#include <fstream>

#include "tandem/comm/agree.h"
#include "tandem/util/error.h"

namespace tandem::ckpt {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "tandem-sharded-checkpoint";

nlohmann::json read_manifest(const std::string& path) {
  const std::string file = manifest_path(path);
  std::ifstream in(file);
  if (!in)
    throw DataError(fmt::format("{}: no manifest, so the sharded checkpoint was never committed",
                                file));
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not a manifest: {}", file, e.what()));
  }
  if (m.value("format", "") != kFormat || !m.contains("shards") || !m["shards"].is_array())
    throw DataError(fmt::format("{}: not a {} manifest", file, kFormat));
  return m;
}

// The shard `rank` of manifest `m`, after checking the file against it.
std::string checked_shard(const std::string& path, const nlohmann::json& m, int rank) {
  const nlohmann::json& s = m["shards"].at(static_cast<size_t>(rank));
  const std::string file = (fs::path(path).parent_path() / s.at("file").get<std::string>()).string();
  std::error_code ec;
  const auto bytes = fs::file_size(file, ec);
  if (ec) throw DataError(fmt::format("{}: listed in the manifest but unreadable: {}", file, ec.message()));
  if (static_cast<int64_t>(bytes) != s.at("bytes").get<int64_t>() ||
      file_digest(file) != s.at("digest").get<std::string>())
    throw DataError(fmt::format(
        "{}: differs from the shard {} committed (another save's shard, or corrupted)", file,
        manifest_path(path)));
  return file;
}

}  // namespace

ShardRecord shard_record(const std::string& path) {
  return {fs::path(path).filename().string(), static_cast<int64_t>(fs::file_size(path)),
          file_digest(path)};
}

void write_manifest(const std::string& path, int64_t step, const std::vector<ShardRecord>& shards) {
  const int world = static_cast<int>(shards.size());
  nlohmann::json m = {{"format", kFormat},
                      {"version", 1},
                      {"step", step},
                      {"world_size", world},
                      {"tandem_version", TANDEM_VERSION}};
  for (int r = 0; r < world; ++r)
    m["shards"].push_back({{"rank", r},
                           {"file", shards[r].file},
                           {"bytes", shards[r].bytes},
                           {"digest", shards[r].digest}});
  write_atomically(manifest_path(path), m.dump(1) + "\n");
}

int shard_count(const std::string& path) { return read_manifest(path).at("world_size").get<int>(); }

std::string shard_path(const std::string& path, int rank, int world) {
  return fmt::format("{}.shard-{:05d}-of-{:05d}.h5", path, rank, world);
}

std::string manifest_path(const std::string& path) { return path + ".manifest"; }

void write_sharded(comm::Communicator& comm, const std::string& path, int64_t step,
                   const std::map<std::string, at::Tensor>& shard, const WriteOptions& options) {
  const int rank = comm.rank(), world = comm.size();
  const std::string mine = shard_path(path, rank, world);
  // Phase 1: every rank writes and verifies its shard.
  std::exception_ptr failure;
  at::Tensor record = at::zeros({2}, at::kLong);  // bytes, digest
  try {
    State s;
    s.step = step;
    s.world_size = world;
    s.version = TANDEM_VERSION;
    s.params = shard;
    write(mine, s, options);
    record[0] = static_cast<int64_t>(fs::file_size(mine));
    record[1] = static_cast<int64_t>(std::stoull(file_digest(mine), nullptr, 16));
  } catch (const std::exception& e) {
    failure = std::make_exception_ptr(Error(fmt::format(
        "sharded checkpoint {}: rank {} could not write its shard: {} (no rank commits)", path,
        rank, e.what())));
  }
  at::Tensor ok = at::full({1}, failure ? 0 : 1, at::kLong);
  comm.allreduce(ok, comm::ReduceOp::kMin);
  const at::Tensor records = comm.allgather(record);  // [world, 2]

  // Phase 2: rank 0 commits only if all succeeded; otherwise nobody does.
  if (ok.item<int64_t>() == 1 && rank == 0) {
    try {
      std::vector<ShardRecord> shards;
      for (int r = 0; r < world; ++r)
        shards.push_back(
            {fs::path(shard_path(path, r, world)).filename().string(),
             records[r][0].item<int64_t>(),
             fmt::format("{:016x}", static_cast<uint64_t>(records[r][1].item<int64_t>()))});
      write_manifest(path, step, shards);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  at::Tensor committed = at::full({1}, failure ? 0 : 1, at::kLong);
  comm.allreduce(committed, comm::ReduceOp::kMin);
  if (committed.item<int64_t>() == 0) {
    std::error_code ignored;
    fs::remove(mine, ignored);  // an uncommitted shard is garbage, as is a half-written one
    fs::remove(mine + ".tmp", ignored);
  }
  comm::agree(comm, failure);  // the failing rank throws its error, the others PeerError
}

std::map<std::string, at::Tensor> read_shard(const std::string& path, int rank, int world,
                                             bool locking) {
  const nlohmann::json m = read_manifest(path);
  const int saved = m.at("world_size").get<int>();
  if (saved != world)
    throw DataError(fmt::format("{}: written by {} ranks, read by {}", manifest_path(path), saved,
                                world));
  return read(checked_shard(path, m, rank), locking).params;
}

void verify_sharded(const std::string& path, bool locking, bool deep) {
  const nlohmann::json m = read_manifest(path);
  for (size_t r = 0; r < m["shards"].size(); ++r) {
    if (deep) {
      verify(checked_shard(path, m, static_cast<int>(r)), locking);
      continue;
    }
    const nlohmann::json& s = m["shards"][r];
    const fs::path file = fs::path(path).parent_path() / s.at("file").get<std::string>();
    std::error_code ec;
    const auto bytes = fs::file_size(file, ec);
    if (ec || static_cast<int64_t>(bytes) != s.at("bytes").get<int64_t>())
      throw DataError(fmt::format("{}: missing or not the size {} committed", file.string(),
                                  manifest_path(path)));
  }
}

}  // namespace tandem::ckpt
