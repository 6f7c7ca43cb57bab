// The NCCL backend at world size 1 (all one GPU can host: NCCL refuses two ranks
// on one GPU, so multi-rank behaviour is proven by the MPI tests of the same
// Communicator code). Runs where a GPU and a CUDA LibTorch exist (launch/gpu-check.sh);
// elsewhere it checks that asking for NCCL fails with a clear one-line error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdlib>
#if TANDEM_TORCH_CUDA
#include <ATen/cuda/Sleep.h>
#endif

#include "tandem/comm/runtime.h"
#include "tandem/util/error.h"

namespace {

using tandem::comm::ReduceOp;

bool gpu_here() { return TANDEM_WITH_NCCL && torch::cuda::is_available(); }

TEST(NcclComm, WithoutAGpuTheErrorSaysWhy) {
  if (gpu_here()) GTEST_SKIP() << "a GPU is present";
  if (tandem::comm::Runtime::get().world_size() != 1) GTEST_SKIP() << "one process only";
  try {
    tandem::comm::Runtime::get().make_communicator("nccl", {});
    FAIL() << "nccl without a GPU did not fail";
  } catch (const tandem::ConfigError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find("no CUDA device") != std::string::npos ||
                what.find("built without NCCL") != std::string::npos)
        << what;
  }
}

TEST(NcclComm, WorldOfOneOnTheGpu) {
  if (!gpu_here()) GTEST_SKIP() << "needs NCCL, a GPU and a CUDA LibTorch";
  if (tandem::comm::Runtime::get().world_size() != 1) GTEST_SKIP() << "one process only";
  auto comm = tandem::comm::Runtime::get().make_communicator("nccl", {/*check=*/true});
  ASSERT_EQ(comm->backend(), "nccl");
  ASSERT_TRUE(comm->device().is_cuda());
  const auto on_gpu = at::TensorOptions().device(comm->device());

  at::Tensor x = at::arange(1000, on_gpu.dtype(at::kFloat));
  const at::Tensor want = x.clone();
  comm->allreduce(x, ReduceOp::kSum);
  EXPECT_TRUE(at::equal(x.cpu(), want.cpu()));
  comm->allreduce(x, ReduceOp::kAvg);
  EXPECT_TRUE(at::equal(x.cpu(), want.cpu()));

  at::Tensor y = at::ones({3, 4}, on_gpu.dtype(at::kDouble));
  auto work = comm->iallreduce(y, ReduceOp::kMax);
  work->wait();
  EXPECT_EQ(y.sum().item<double>(), 12.0);

  const at::Tensor g = comm->allgather(at::arange(6, on_gpu.dtype(at::kLong)).view({2, 3}));
  EXPECT_EQ(g.sizes(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(g.is_cuda());
  const at::Tensor v = comm->allgatherv(at::ones({5, 2}, on_gpu.dtype(at::kInt)));
  EXPECT_EQ(v.sizes(), (std::vector<int64_t>{5, 2}));
  at::Tensor b = at::full({7}, 3.0, on_gpu.dtype(at::kBFloat16));
  comm->broadcast(b, 0);
  EXPECT_EQ(b.to(at::kFloat).sum().item<float>(), 21.0f);

  // One group call for several buckets, as the Reducer issues them.
  at::Tensor b1 = at::full({100}, 2.0, on_gpu.dtype(at::kFloat));
  at::Tensor b2 = at::full({300}, 3.0, on_gpu.dtype(at::kFloat));
  comm->group_start();
  comm->allreduce(b1, ReduceOp::kSum);
  comm->allreduce(b2, ReduceOp::kSum);
  comm->group_end();
  EXPECT_EQ(b1.sum().item<float>() + b2.sum().item<float>(), 1100.0f);

  // CPU tensors go to the host communicator.
  at::Tensor c = at::full({2}, 5.0);
  comm->allreduce(c, ReduceOp::kSum);
  EXPECT_EQ(c.sum().item<double>(), 10.0);
  comm->barrier();
  EXPECT_GT(comm->sequence(), 6u);
}

// The watchdog ends a collective that does not finish (a peer that never joins,
// on a real cluster). Here the all-reduce is queued behind a kernel that spins for
// seconds on the compute stream, with comm.timeout_s at half a second: the job must
// end with status 4 and a line naming the op, its sequence number and the rank.
TEST(NcclCommDeathTest, WatchdogEndsACollectiveThatDoesNotFinish) {
  if (!gpu_here()) GTEST_SKIP() << "needs NCCL, a GPU and a CUDA LibTorch";
  if (tandem::comm::Runtime::get().world_size() != 1) GTEST_SKIP() << "one process only";
#if TANDEM_TORCH_CUDA
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: CUDA does not fork
  EXPECT_EXIT(
      {
        auto comm = tandem::comm::Runtime::get().make_communicator("nccl", {false, 0.5});
        at::Tensor x = at::ones({4}, at::TensorOptions().device(comm->device()));
        at::cuda::sleep(int64_t{10'000'000'000});  // seconds of spinning
        comm->allreduce(x, ReduceOp::kSum);
        x.cpu();  // waits; the watchdog ends the process first
        std::exit(0);
      },
      testing::ExitedWithCode(4),
      "comm: nccl allreduce #[0-9]+ on rank 0 failed: not done after 0.5 s \\(comm.timeout_s\\)");
#endif
}

}  // namespace
