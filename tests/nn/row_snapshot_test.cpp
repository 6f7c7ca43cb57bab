// RowSnapshot: a copy of a table taken while training keeps updating its rows must
// hold exactly the rows as they were when it began, whatever the interleaving.
#include "tandem/nn/row_snapshot.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "tandem/nn/embedding_bag.h"
#include "tandem/util/error.h"

namespace {

using tandem::nn::RowSnapshot;

// Training's side: announce the rows, then change them.
void update(RowSnapshot& snap, at::Tensor& weight, at::Tensor& state,
            const std::vector<int64_t>& rows) {
  snap.before_update(rows.data(), static_cast<int64_t>(rows.size()));
  for (int64_t r : rows) {
    if (r < 0 || r >= weight.size(0)) continue;
    weight[r].add_(1.0);
    state[r].add_(2.0);
  }
}

TEST(RowSnapshot, UpdatesBeforeDuringAndAfterTheCopyNeverReachIt) {
  // Rows of 64 floats: the copy steps 4096 rows at a time, so 20000 rows take 5.
  at::Tensor weight = at::randn({20000, 64}), state = at::rand({20000});
  const at::Tensor weight0 = weight.clone(), state0 = state.clone();
  RowSnapshot snap({weight, state}, {at::Tensor(), at::Tensor()});
  // Before the copy starts; a row twice (its first old value counts); ids outside
  // the table are ignored.
  update(snap, weight, state, {0, 7, 19999, 7, -1, 20000});
  int steps = 0;
  snap.complete([&](int64_t copied) {
    ++steps;
    // Mid-copy: rows just copied, rows far ahead, the row at the mark, and a row
    // updated before.
    update(snap, weight, state, {copied - 1, copied, std::min<int64_t>(19999, copied + 5000), 7});
  });
  EXPECT_EQ(steps, 5);
  EXPECT_TRUE(snap.completed());
  update(snap, weight, state, {1, 2, 3});  // after: nothing to keep
  EXPECT_TRUE(at::equal(snap.copies()[0], weight0));
  EXPECT_TRUE(at::equal(snap.copies()[1], state0));
  EXPECT_FALSE(at::equal(weight, weight0));  // the table itself did change
  EXPECT_FLOAT_EQ(weight[7][0].item<float>(), weight0[7][0].item<float>() + 7.0f);
}

TEST(RowSnapshot, ExactWhileAnotherThreadCopies) {
  at::Tensor weight = at::randn({200000, 16}), state = at::rand({200000});
  const at::Tensor weight0 = weight.clone(), state0 = state.clone();
  // Reused copies of the right shape are written in place.
  at::Tensor reuse_w = at::zeros_like(weight), reuse_s = at::zeros_like(state);
  RowSnapshot snap({weight, state}, {reuse_w, reuse_s});
  EXPECT_TRUE(snap.copies()[0].is_same(reuse_w));
  std::thread copier([&] { snap.complete(); });
  at::Generator gen = at::detail::createCPUGenerator(5);
  int rounds = 0;
  while (!snap.completed() || rounds < 3) {
    const at::Tensor r = at::randint(0, 200000, {2048}, gen, at::kLong);
    update(snap, weight, state,
           std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel()));
    ++rounds;
  }
  copier.join();
  EXPECT_TRUE(at::equal(reuse_w, weight0));
  EXPECT_TRUE(at::equal(reuse_s, state0));
}

TEST(RowSnapshot, ALargeUpdateHelpsTheCopyToItsEndInsteadOfSavingRows) {
  // 5000 ids for 300,000 rows (19 copy steps): saving them would cost more than
  // copying the rest, so training copies steps from the top until the copy is
  // done, then updates. With the copying thread late (it copies nothing) and on
  // time (both copy).
  for (int late_ms : {50, 0}) {
    at::Tensor weight = at::randn({300000, 16}), state = at::rand({300000});
    const at::Tensor weight0 = weight.clone(), state0 = state.clone();
    RowSnapshot snap({weight, state}, {at::Tensor(), at::Tensor()});
    std::vector<int64_t> rows(5000);
    for (int64_t i = 0; i < 5000; ++i) rows[static_cast<size_t>(i)] = i * 60;
    std::atomic<bool> go{false};
    std::thread copier([&] {  // late: counted from just before update() starts
      while (!go) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::milliseconds(late_ms));
      snap.complete();
    });
    go = true;
    update(snap, weight, state, rows);  // returns once the copy is done
    EXPECT_TRUE(snap.completed());
    copier.join();
    EXPECT_TRUE(at::equal(snap.copies()[0], weight0)) << "late " << late_ms;
    EXPECT_TRUE(at::equal(snap.copies()[1], state0)) << "late " << late_ms;
    // completed() is set by complete() alone, so update() waited for the copying
    // thread; that wait is counted as time training was blocked. (Only "> 0": how
    // long depends on the scheduler, not on the code.)
    if (late_ms > 0) EXPECT_GT(snap.guard_seconds(), 0.0);
  }
}

TEST(RowSnapshot, RefusesMismatchedSources) {
  EXPECT_THROW(RowSnapshot({at::zeros({4, 2}), at::zeros({5})}, {at::Tensor(), at::Tensor()}),
               tandem::Error);
  EXPECT_THROW(RowSnapshot({at::zeros({4, 2})}, {}), tandem::Error);
  EXPECT_THROW(RowSnapshot({at::zeros({4, 2}).t()}, {at::Tensor()}), tandem::Error);
}

// The module: the fused backward and apply_gradient() both keep a snapshot exact.
TEST(RowSnapshot, TableModuleKeepsItsSnapshotExact) {
  for (bool fused : {true, false}) {
    tandem::nn::TableBatchedEmbedding tables(
        tandem::nn::TableBatchedEmbeddingOptions{{30000, 50000}, 8});  // 2.5 MB: 3 copy steps
    tables->set_optimizer(tandem::kernels::RowUpdate::kRowwiseAdagrad, 1e-8, fused);
    tables->set_learning_rate(0.1);
    tables->train();
    const at::Tensor weight0 = tables->weight.detach().clone();
    const at::Tensor state0 = tables->rowwise_state.clone();
    const auto snap = tables->snapshot_rows(at::Tensor(), at::Tensor());
    EXPECT_THROW(tables->snapshot_rows(at::Tensor(), at::Tensor()), tandem::Error);
    int steps = 0;
    snap->complete([&](int64_t) {
      if (steps++ > 0) return;  // one training step in the middle of the copy
      const at::Tensor ids = at::randint(0, 30000, {256, 2}, at::kLong);  // both tables
      tables->forward(ids).sum().backward();
      if (!fused) tables->apply_gradient();
    });
    EXPECT_FALSE(at::equal(tables->weight.detach(), weight0)) << "fused " << fused;
    EXPECT_TRUE(at::equal(snap->copies()[0], weight0)) << "fused " << fused;
    EXPECT_TRUE(at::equal(snap->copies()[1], state0)) << "fused " << fused;
    tables->weight.mutable_grad() = at::Tensor();
  }
}

}  // namespace
