// Embedding tables in checkpoints when they live on parameter servers. Each server
// saves its rows, with their ids, as one shard of the checkpoint (ckpt/sharded.h
// names the files and commits them with a manifest). So any layout loads any other:
// a server takes its rows from the shards of any number of servers, or from a
// replicated checkpoint's whole tables; a replicated run, `tandem inspect` and
// `tandem predict` assemble the whole tables from the shards.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/ps/sharding.h"

namespace tandem::ps {

/// Server `server`'s shard as named tensors: "table_rows" [tables], and per table t
/// "rows/t" (the table-local ids, in slot order), "weight/t" and "state/t".
std::map<std::string, at::Tensor> shard_tensors(const RowSharding& sharding, int server,
                                                const at::Tensor& weight, const at::Tensor& state);

/// Fills server `server`'s shard (weight [rows, dim], row-wise state [rows]) from
/// the checkpoint at `path`, sharded or not. Tables of another shape are a
/// DataError naming model.embedding_rows or model.embedding_dim.
void load_shard(const std::string& path, const RowSharding& sharding, int server,
                at::Tensor& weight, at::Tensor& state, bool locking);

/// A checkpoint read from `path` made whole: if its tables are in shards, they are
/// assembled into the entries a replicated model has ("tables.weight", ...).
void complete_tables(ckpt::State& state, const std::string& path, bool locking);

}  // namespace tandem::ps
