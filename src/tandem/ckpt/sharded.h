// Sharded checkpoints: state that lives on one rank only (the parameter server's
// embedding tables) is saved by every rank at once, one file per shard, and
// committed by a manifest that rank 0 writes last:
//
//   NAME.shard-00000-of-00004.h5   rank 0's shard (each a crash-safe checkpoint file)
//   ...
//   NAME.manifest                  JSON: world size, step, each shard's file, bytes, digest
//
// Commit protocol: every rank writes its shard (temporary file, fsync, verify,
// rename, fsync the directory), then the ranks agree. Only if every rank succeeded
// does rank 0 write the manifest, atomically; otherwise every rank removes its
// shard and all ranks fail, so no rank commits. A set of shards without its
// manifest is not a checkpoint; a reader checks its shard's digest against the
// manifest, so a shard from another save is refused.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/comm/communicator.h"

namespace tandem::ckpt {

/// The file of rank `rank`'s shard of the sharded checkpoint `path`.
std::string shard_path(const std::string& path, int rank, int world);
/// The manifest of the sharded checkpoint `path`.
std::string manifest_path(const std::string& path);

/// One committed shard: its file (in the checkpoint's directory), size and digest.
struct ShardRecord {
  std::string file;
  int64_t bytes = 0;
  std::string digest;
};
/// Writes shard `path`'s record (after the shard is durable) for the manifest.
ShardRecord shard_record(const std::string& path);
/// Commits a sharded checkpoint: writes its manifest, atomically, listing `shards`
/// in order. Call it last, once every shard is durable.
void write_manifest(const std::string& path, int64_t step, const std::vector<ShardRecord>& shards);
/// The number of shards the manifest of `path` lists (DataError without one).
int shard_count(const std::string& path);

/// Collective: writes this rank's `shard` (named tensors) of the checkpoint of
/// `step` at `path`, and commits the whole as above. Throws on every rank if any
/// rank failed (the failing rank says why; the others throw PeerError).
void write_sharded(comm::Communicator& comm, const std::string& path, int64_t step,
                   const std::map<std::string, at::Tensor>& shard, const WriteOptions& options);

/// Reads shard `rank` of a committed sharded checkpoint written by `world` ranks;
/// a missing manifest, another world size, or a shard file whose digest differs
/// from the manifest's throws DataError naming the file.
std::map<std::string, at::Tensor> read_shard(const std::string& path, int rank, int world,
                                             bool locking = true);

/// Checks the manifest and every shard it lists: with `deep`, their digests and
/// HDF5 checksums; otherwise that each is there with the committed size.
void verify_sharded(const std::string& path, bool locking = true, bool deep = true);

}  // namespace tandem::ckpt
