// Sharded checkpoints over the job's ranks (one process, or under mpirun):
// - every rank's shard round-trips, and the manifest lists them all;
// - when one rank cannot write its shard, no rank commits: no manifest, no shard
//   files left, and every rank fails;
// - a corrupted shard, or a shard from another save, is refused against the manifest;
// - reading with another world size, or without a manifest, fails clearly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tandem/ckpt/sharded.h"
#include "tandem/util/error.h"
#include "test_util.h"

namespace {

namespace ck = tandem::ckpt;
namespace fs = std::filesystem;

std::map<std::string, at::Tensor> shard_of(int rank, int64_t salt) {
  at::manual_seed(100 * salt + rank);
  return {{"tables.0.weight", at::randn({50 + rank, 8})},
          {"tables.0.rows", at::arange(50 + rank, at::kLong) * (rank + 1)}};
}

class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TANDEM_WITH_HDF5) GTEST_SKIP() << "built without HDF5";
    comm_ = tandem::testing::world();
    dir_ = tandem::testing::shared_temp_dir(*comm_, "sharded-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  void TearDown() override {
    if (!comm_) return;
    comm_->barrier();
    if (comm_->rank() == 0) fs::remove_all(dir_);
  }
  std::unique_ptr<tandem::comm::Communicator> comm_;
  std::string dir_;
};

TEST_F(ShardedCheckpoint, EveryShardRoundTrips) {
  const int rank = comm_->rank(), world = comm_->size();
  const std::string path = dir_ + "/step-000000007";
  ck::write_sharded(*comm_, path, 7, shard_of(rank, 1), {});
  comm_->barrier();
  ASSERT_TRUE(fs::exists(ck::manifest_path(path)));
  for (int r = 0; r < world; ++r) EXPECT_TRUE(fs::exists(ck::shard_path(path, r, world)));
  const auto back = ck::read_shard(path, rank, world);
  const auto want = shard_of(rank, 1);
  ASSERT_EQ(back.size(), want.size());
  for (const auto& [name, t] : want) EXPECT_TRUE(at::equal(back.at(name), t)) << name;
  if (rank == 0) EXPECT_NO_THROW(ck::verify_sharded(path));
  EXPECT_THROW(ck::read_shard(path, 0, world + 1), tandem::DataError);
  EXPECT_THROW(ck::read_shard(dir_ + "/never-saved", rank, world), tandem::DataError);
}

TEST_F(ShardedCheckpoint, NoRankCommitsIfOneFails) {
  const int rank = comm_->rank(), world = comm_->size();
  const std::string path = dir_ + "/step-000000003";
  // The last rank cannot rename its shard into place: a directory holds the name.
  const int failing = world - 1;
  if (rank == 0) fs::create_directories(ck::shard_path(path, failing, world));
  comm_->barrier();
  bool threw = false;
  try {
    ck::write_sharded(*comm_, path, 3, shard_of(rank, 2), {});
  } catch (const tandem::PeerError&) {
    threw = rank != failing;
  } catch (const tandem::Error& e) {
    threw = rank == failing;
    EXPECT_NE(std::string(e.what()).find("no rank commits"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(threw) << "rank " << rank;
  comm_->barrier();
  EXPECT_FALSE(fs::exists(ck::manifest_path(path)));
  // Nothing is left but the directory that blocked the failing rank.
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().string(), ck::shard_path(path, failing, world)) << "left behind";
  EXPECT_THROW(ck::read_shard(path, rank, world), tandem::DataError);
}

TEST_F(ShardedCheckpoint, ForeignOrCorruptShardsAreRefused) {
  const int rank = comm_->rank(), world = comm_->size();
  const std::string a = dir_ + "/a", b = dir_ + "/b";
  ck::write_sharded(*comm_, a, 1, shard_of(rank, 3), {});
  ck::write_sharded(*comm_, b, 2, shard_of(rank, 4), {});
  comm_->barrier();
  if (rank == 0) {
    // b's shard 0 under a's name: a valid file, but not the one a committed.
    fs::copy_file(ck::shard_path(b, 0, world), ck::shard_path(a, 0, world),
                  fs::copy_options::overwrite_existing);
    EXPECT_THROW(ck::read_shard(a, 0, world), tandem::DataError);
    EXPECT_THROW(ck::verify_sharded(a), tandem::DataError);
    // One flipped byte in b's shard 0.
    std::fstream f(ck::shard_path(b, 0, world), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(ck::shard_path(b, 0, world)) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(-1, std::ios::cur);
    c = static_cast<char>(c ^ 0x10);
    f.write(&c, 1);
    f.close();
    EXPECT_THROW(ck::read_shard(b, 0, world), tandem::DataError);
  }
}

}  // namespace
