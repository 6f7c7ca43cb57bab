// The runtime's view of the job: rank and sizes from MPI, node-local values from
// MPI_Comm_split_type, launcher variables only as a cross-check, thread defaults.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "tandem/util/error.h"
#include "test_util.h"

namespace {

TEST(Runtime, RanksAndNodeLocalValuesComeFromMpi) {
  const auto& rt = tandem::comm::Runtime::get();
  const auto& info = rt.info();
  auto comm = tandem::testing::world();
  EXPECT_EQ(info.rank, comm->rank());
  EXPECT_EQ(info.world_size, comm->size());
  // Every test job runs on one node: all ranks are local, with distinct local ranks.
  EXPECT_EQ(info.local_size, info.world_size);
  at::Tensor local = comm->allgather(at::full({1}, info.local_rank, at::kLong)).view(-1);
  EXPECT_TRUE(at::equal(std::get<0>(local.sort()), at::arange(info.world_size, at::kLong)));
  if (const char* r = std::getenv("OMPI_COMM_WORLD_RANK")) {
    EXPECT_EQ(info.launcher, "mpirun");
    EXPECT_EQ(std::atoi(r), info.rank);
  }
}

TEST(Runtime, ThreadsDefaultToCoresPerLocalRank) {
  const auto& rt = tandem::comm::Runtime::get();
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(rt.set_threads(0), std::max(1, cores / rt.info().local_size));
  EXPECT_EQ(at::get_num_threads(), std::max(1, cores / rt.info().local_size));
  EXPECT_EQ(rt.set_threads(3), 3);
  EXPECT_EQ(at::get_num_threads(), 3);
  rt.set_threads(1);
}

TEST(Runtime, CommunicatorChoice) {
  const auto& rt = tandem::comm::Runtime::get();
  EXPECT_THROW(rt.make_communicator("carrier-pigeon", {}), tandem::ConfigError);
  if (rt.world_size() > 1) {
    EXPECT_THROW(rt.make_communicator("single", {}), tandem::ConfigError);
  } else {
    EXPECT_EQ(rt.make_communicator("single", {})->backend(), "single");
  }
}

}  // namespace
