// Every collective, every dtype, sizes 0, 1, odd and several MiB, against
// closed-form values. Runs as 1 process and under mpirun with 2 and 4 ranks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "tandem/comm/single_communicator.h"
#include "tandem/util/error.h"
#include "test_util.h"

using tandem::CommError;
using tandem::comm::Communicator;
using tandem::comm::ReduceOp;

namespace {

const std::vector<at::ScalarType> kDtypes = {at::kFloat, at::kDouble, at::kBFloat16, at::kInt,
                                             at::kLong};
// 0, 1, odd, and about 3 MiB of float32.
const std::vector<int64_t> kSizes = {0, 1, 17, 786433};

// Values stay small integers so every dtype (bfloat16 too) holds them exactly.
at::Tensor pattern(int64_t n, int rank, at::ScalarType t) {
  return (at::arange(n, at::kLong).remainder(7) + rank).to(t);
}

class CommTest : public ::testing::Test {
 protected:
  std::unique_ptr<Communicator> comm = tandem::testing::world();
  int r = comm->rank();
  int w = comm->size();
};

TEST_F(CommTest, AllreduceSumMinMaxAvg) {
  for (auto t : kDtypes) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(std::string(c10::toString(t)) + " n=" + std::to_string(n));
      const at::Tensor base = at::arange(n, at::kLong).remainder(7);
      at::Tensor s = pattern(n, r, t);
      comm->allreduce(s, ReduceOp::kSum);
      // sum over ranks of (base + rank) = w*base + w(w-1)/2
      EXPECT_TRUE(at::equal(s.to(at::kLong), base * w + w * (w - 1) / 2));
      at::Tensor mn = pattern(n, r, t), mx = pattern(n, r, t);
      comm->allreduce(mn, ReduceOp::kMin);
      comm->allreduce(mx, ReduceOp::kMax);
      EXPECT_TRUE(at::equal(mn.to(at::kLong), base));
      EXPECT_TRUE(at::equal(mx.to(at::kLong), base + (w - 1)));
      if (at::isFloatingType(t)) {
        at::Tensor avg = pattern(n, r, t);
        comm->allreduce(avg, ReduceOp::kAvg);
        EXPECT_TRUE(at::allclose(avg.to(at::kDouble), base.to(at::kDouble) + (w - 1) / 2.0));
      } else {
        at::Tensor avg = pattern(n, r, t);
        EXPECT_THROW(comm->allreduce(avg, ReduceOp::kAvg), CommError);
      }
    }
  }
}

TEST_F(CommTest, NonBlockingAllreduce) {
  std::vector<at::Tensor> ts;
  std::vector<std::unique_ptr<tandem::comm::Work>> works;
  for (int64_t n : kSizes) {
    ts.push_back(pattern(n, r, at::kFloat));
    works.push_back(comm->iallreduce(ts.back(), ReduceOp::kSum));
  }
  for (size_t i = 0; i < works.size(); ++i) {
    works[i]->wait();
    EXPECT_TRUE(works[i]->test());
    const at::Tensor base = at::arange(kSizes[i], at::kLong).remainder(7);
    EXPECT_TRUE(at::equal(ts[i].to(at::kLong), base * w + w * (w - 1) / 2));
  }
}

TEST_F(CommTest, Broadcast) {
  for (auto t : kDtypes)
    for (int64_t n : kSizes)
      for (int root = 0; root < w; ++root) {
        at::Tensor x = pattern(n, r, t);
        comm->broadcast(x, root);
        EXPECT_TRUE(at::equal(x, pattern(n, root, t)));
      }
}

TEST_F(CommTest, AllgatherAndAllgatherv) {
  for (auto t : kDtypes)
    for (int64_t n : kSizes) {
      const at::Tensor all = comm->allgather(pattern(n, r, t).view({-1, 1}));
      ASSERT_EQ(all.sizes(), (std::vector<int64_t>{w, n, 1}));
      for (int q = 0; q < w; ++q) EXPECT_TRUE(at::equal(all[q].view(-1), pattern(n, q, t)));
      // Rank q contributes q*n + q rows (rank 0 maybe none), each row [q, q].
      const int64_t mine = (r * n + r) % 1000;
      const at::Tensor v = comm->allgatherv(at::full({mine, 2}, r, at::kLong).to(t));
      int64_t row = 0;
      for (int q = 0; q < w; ++q) {
        const int64_t rows = (q * n + q) % 1000;
        EXPECT_TRUE(at::equal(v.narrow(0, row, rows), at::full({rows, 2}, q, at::kLong).to(t)));
        row += rows;
      }
      EXPECT_EQ(v.size(0), row);
    }
}

TEST_F(CommTest, AlltoallAndAlltoallv) {
  for (auto t : kDtypes)
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{5}, int64_t{100000}}) {
      // Part j of rank r holds 100*r + j.
      std::vector<at::Tensor> parts;
      for (int j = 0; j < w; ++j) parts.push_back(at::full({n}, 10 * r + j, at::kLong));
      const at::Tensor got = comm->alltoall(at::cat(parts).to(t));
      for (int q = 0; q < w; ++q)
        EXPECT_TRUE(
            at::equal(got.narrow(0, q * n, n).to(at::kLong), at::full({n}, 10 * q + r, at::kLong)));
      // Variable: rank r sends (r + j) % 3 * n rows to rank j.
      std::vector<int64_t> counts;
      std::vector<at::Tensor> vparts;
      for (int j = 0; j < w; ++j) {
        counts.push_back((r + j) % 3 * n);
        vparts.push_back(at::full({counts.back(), 3}, 10 * r + j, at::kLong));
      }
      std::vector<int64_t> received;
      const at::Tensor vgot = comm->alltoallv(at::cat(vparts).to(t), counts, &received);
      ASSERT_EQ(received.size(), static_cast<size_t>(w));
      int64_t row = 0;
      for (int q = 0; q < w; ++q) {
        const int64_t rows = (q + r) % 3 * n;
        EXPECT_EQ(received[q], rows);
        EXPECT_TRUE(at::equal(vgot.narrow(0, row, rows).to(at::kLong),
                              at::full({rows, 3}, 10 * q + r, at::kLong)));
        row += rows;
      }
      EXPECT_EQ(vgot.size(0), row);
      // The reply, with the counts known: every part goes back where it came from.
      const at::Tensor back = comm->alltoallv_expecting(vgot, received, counts);
      EXPECT_TRUE(at::equal(back, at::cat(vparts).to(t)));
    }
}

TEST_F(CommTest, SendRecvRing) {
  if (w == 1) GTEST_SKIP() << "needs two ranks";
  for (auto t : kDtypes)
    for (int64_t n : kSizes) {
      const int next = (r + 1) % w, prev = (r + w - 1) % w;
      at::Tensor in = at::empty({n}, at::TensorOptions().dtype(t));
      if (r % 2 == 0) {
        comm->send(pattern(n, r, t), next, 3);
        comm->recv(in, prev, 3);
      } else {
        comm->recv(in, prev, 3);
        comm->send(pattern(n, r, t), next, 3);
      }
      EXPECT_TRUE(at::equal(in, pattern(n, prev, t)));
    }
}

TEST_F(CommTest, BarrierAndSequenceNumbers) {
  const uint64_t before = comm->sequence();
  comm->barrier();
  at::Tensor x = at::ones({3});
  comm->allreduce(x, ReduceOp::kSum);
  EXPECT_EQ(comm->sequence(), before + 2);
}

// Even and odd ranks split apart: each part numbers its ranks in their old order
// and sums only among itself (closed form: the sum of the part's old ranks).
TEST_F(CommTest, SplitFormsIndependentParts) {
  const int color = r % 2;
  std::unique_ptr<Communicator> part = comm->split(color);
  const int members = (w - color + 1) / 2;
  EXPECT_EQ(part->size(), members);
  EXPECT_EQ(part->rank(), r / 2);
  at::Tensor t = at::full({3}, static_cast<int64_t>(r), at::kLong);
  part->allreduce(t, tandem::comm::ReduceOp::kSum);
  int64_t expect = 0;
  for (int q = color; q < w; q += 2) expect += q;
  EXPECT_TRUE(at::equal(t, at::full({3}, expect, at::kLong)));
  EXPECT_THROW(comm->split(-1), tandem::CommError);
}

// A mailbox delivers every rank's messages to every rank (itself included), in the
// order each sender posted them, and keeps tags apart; a large message (beyond
// MPI's eager size) arrives whole; waiting without a message times out with the
// caller's words.
TEST_F(CommTest, MailboxDeliversEachSendersMessagesInOrder) {
  std::unique_ptr<tandem::comm::Mailbox> box = comm->mailbox();
  constexpr int kMessages = 20;
  for (int i = 0; i < kMessages; ++i)
    for (int d = 0; d < w; ++d) {
      std::vector<char> bytes(i == 7 ? 1 << 20 : 8, static_cast<char>(i));
      std::memcpy(bytes.data(), &r, sizeof(int));
      std::memcpy(bytes.data() + 4, &i, sizeof(int));
      box->post(d, 1, std::move(bytes));
    }
  box->post(r, 2, {'x'});  // another tag: not seen by tag 1
  std::vector<int> next(w, 0);
  for (int got = 0; got < kMessages * w; ++got) {
    const tandem::comm::Message m = box->wait(1, 60, [] { return std::string("no message"); });
    int from = -1, i = -1;
    std::memcpy(&from, m.bytes.data(), sizeof(int));
    std::memcpy(&i, m.bytes.data() + 4, sizeof(int));
    EXPECT_EQ(m.source, from);
    EXPECT_EQ(i, next[from]++) << "from rank " << from;
    EXPECT_EQ(m.bytes.size(), i == 7 ? size_t{1} << 20 : size_t{8});
  }
  EXPECT_EQ(box->wait(2, 60, [] { return std::string("no x"); }).bytes, std::vector<char>{'x'});
  try {
    box->wait(3, 0.01, [] { return std::string("nothing under tag 3"); });
    FAIL() << "expected a timeout";
  } catch (const CommError& e) {
    EXPECT_STREQ(e.what(), "nothing under tag 3");
  }
  comm->barrier();  // every rank received everything before the mailboxes close
}

TEST_F(CommTest, RejectsBadArguments) {
  at::Tensor half = at::ones({4}, at::kHalf);
  EXPECT_THROW(comm->allreduce(half, ReduceOp::kSum), CommError);
  at::Tensor strided = at::ones({4, 4}).t();
  EXPECT_THROW(comm->allreduce(strided, ReduceOp::kSum), CommError);
  at::Tensor x = at::ones({4});
  EXPECT_THROW(comm->broadcast(x, w), CommError);
  EXPECT_THROW(comm->alltoallv(at::ones({3}), std::vector<int64_t>(w, 0)), CommError);
  EXPECT_THROW(comm->alltoallv_expecting(at::ones({0}), std::vector<int64_t>(w, 0),
                                         std::vector<int64_t>(w + 1, 0)),
               CommError);
}

// With comm.check, ranks that disagree on a collective get an error naming both
// ranks, the op and both shapes, on every rank, instead of a hang or garbage.
TEST_F(CommTest, CheckNamesMismatchedRanks) {
  if (w == 1) GTEST_SKIP() << "needs two ranks";
  auto checked = tandem::testing::world(/*check=*/true);
  at::Tensor x = at::ones({r == w - 1 ? 5 : 4, 3});
  try {
    checked->allreduce(x, ReduceOp::kSum);
    FAIL() << "expected a mismatch error";
  } catch (const CommError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("rank 0 (allreduce Float [4, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("rank " + std::to_string(w - 1) + " (allreduce Float [5, 3]"),
              std::string::npos)
        << msg;
  }
  // Different ops are caught the same way.
  at::Tensor y = at::ones({2});
  try {
    if (r == 0)
      checked->broadcast(y, 0);
    else
      checked->allreduce(y, ReduceOp::kSum);
    FAIL() << "expected a mismatch error";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("broadcast"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("allreduce"), std::string::npos) << e.what();
  }
  // Matching calls still work with the check on.
  at::Tensor z = at::ones({2, 2});
  checked->allreduce(z, ReduceOp::kSum);
  EXPECT_TRUE(at::equal(z, at::full({2, 2}, w, at::kFloat)));
}

TEST(SingleCommunicator, CopiesAndNoOps) {
  auto c = tandem::comm::make_single_communicator();
  at::Tensor x = at::arange(5, at::kFloat);
  c->allreduce(x, ReduceOp::kAvg);
  EXPECT_TRUE(at::equal(x, at::arange(5, at::kFloat)));
  EXPECT_TRUE(at::equal(c->allgatherv(x), x));
  EXPECT_TRUE(at::equal(c->alltoallv(x, {5}), x));
  EXPECT_EQ(c->allgather(x).sizes(), (std::vector<int64_t>{1, 5}));
  EXPECT_THROW(c->send(x, 0), CommError);
}

}  // namespace
