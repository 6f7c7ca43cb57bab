// The parameter server: the sharding is a balanced bijection whatever the ids look
// like; a server's shard starts as those rows of a replicated table would; and BSP
// training on K servers and W workers equals replicated training on W ranks
// (colocated on 2, 3 and 4 ranks; dedicated 1 + 2 and 2 + 2): the tables, their
// row-wise state and the dense layers have the same bits after 20 steps, with SGD
// and row-wise Adagrad, with and without prefetching. Every value a worker reads
// under BSP, SSP and ASP carries the clocks it includes, which keep each model's
// bound; with one worker stalled, BSP waits for it and SSP/ASP do not (dedicated
// servers; colocated ones exchange in lock step, where every read is exact). The
// multi-rank tests run under mpirun.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "tandem/comm/single_communicator.h"
#include "tandem/data/generator.h"
#include "tandem/ps/parameter_server.h"
#include "tandem/ps/placement.h"
#include "tandem/ps/sharding.h"
#include "tandem/train/trainer.h"
#include "tandem/util/error.h"
#include "test_util.h"

namespace {

using tandem::config::TrainConfig;
using tandem::ps::ParameterServer;
using tandem::ps::RowSharding;
using tandem::train::Trainer;

TEST(RowSharding, EveryTableIsABalancedBijection) {
  const std::vector<int64_t> rows{1, 2, 3, 7, 64, 1000, 4097, 100003};
  for (int servers : {1, 2, 3, 5}) {
    const RowSharding sh(rows, servers);
    for (int64_t t = 0; t < sh.tables(); ++t) {
      SCOPED_TRACE(::testing::Message() << rows[t] << " rows, " << servers << " servers");
      std::vector<bool> seen(rows[t], false);
      std::vector<int64_t> held(servers, 0);
      for (int64_t r = 0; r < rows[t]; ++r) {
        const int64_t p = sh.position(t, r);
        ASSERT_GE(p, 0);
        ASSERT_LT(p, rows[t]);
        ASSERT_FALSE(seen[p]) << "two rows at position " << p;
        seen[p] = true;
        ASSERT_EQ(sh.row_at(t, p), r);
        ++held[sh.server_of(t, r)];
      }
      int64_t total = 0;
      for (int s = 0; s < servers; ++s) {
        EXPECT_EQ(held[s], sh.rows_on(s, t));
        EXPECT_LE(std::abs(held[s] - rows[t] / servers), 1);
        // The server's rows, in slot order, are where place() puts them.
        const at::Tensor mine = sh.rows_of(s, t);
        for (int64_t k = 0; k < mine.numel(); ++k) {
          const auto place = sh.place(t, mine[k].item<int64_t>());
          ASSERT_EQ(place.server, s);
          ASSERT_EQ(place.slot, sh.table_offset(s, t) + k);
        }
        total += held[s];
      }
      EXPECT_EQ(total, rows[t]);
    }
  }
}

// Ids that range partitioning would put on one server (the first thousand), or that
// plain modulo would (steps of K), spread as random ones: each server gets its
// share within 5 binomial standard deviations.
TEST(RowSharding, SmallAndStridedIdsSpreadOverTheServers) {
  for (int servers : {2, 4, 8}) {
    const RowSharding sh({10'000'000}, servers);
    for (int64_t stride : {int64_t{1}, int64_t{servers}}) {
      std::vector<int64_t> held(servers, 0);
      const int64_t n = 4000;
      for (int64_t i = 0; i < n; ++i) ++held[sh.server_of(0, i * stride)];
      const double share = 1.0 / servers, sd = std::sqrt(n * share * (1 - share));
      for (int s = 0; s < servers; ++s)
        EXPECT_NEAR(held[s], n * share, 5 * sd)
            << servers << " servers, stride " << stride << ", server " << s;
    }
  }
}

// One process serving its own tables (colocated, one server).
tandem::ps::ServerOptions one_server(std::vector<int64_t> rows, int64_t dim, uint64_t seed) {
  tandem::ps::ServerOptions o;
  o.table_rows = std::move(rows);
  o.dim = dim;
  o.servers = 1;
  o.colocated = true;
  o.seed = seed;
  return o;
}

// A server's rows start as those rows of a replicated table (one server here; the
// multi-rank tests below compare whole trained tables, so their shards too).
TEST(ParameterServer, ShardStartsAsTheReplicatedTable) {
  const std::vector<int64_t> rows{50, 7, 300};
  tandem::nn::TableBatchedEmbedding full(tandem::nn::TableBatchedEmbeddingOptions{
      rows, 4, tandem::nn::KernelChoice::kTandem, true, /*init_seed=*/17});
  auto single = tandem::comm::make_single_communicator();
  ParameterServer ps(one_server(rows, 4, 17), *single);
  for (int64_t t = 0; t < 3; ++t) {
    const at::Tensor mine = ps.sharding().rows_of(0, t);
    const at::Tensor expect =
        full->weight.detach().index_select(0, mine + full->table_offsets[t].item<int64_t>());
    const at::Tensor got =
        ps.shard_weight().narrow(0, ps.sharding().table_offset(0, t), mine.numel());
    EXPECT_TRUE(at::equal(got, expect)) << "table " << t;
  }
  EXPECT_TRUE(at::equal(ps.shard_state(), at::zeros({357})));
}

// A worker refuses an id outside its table before asking any server, naming the
// table, the sample and the id; in range, it looks up the pulled rows.
TEST(ParameterServer, WorkerChecksIdsAndLooksUpPulledRows) {
  const std::vector<int64_t> rows{10, 4};
  auto single = tandem::comm::make_single_communicator();
  ParameterServer ps(one_server(rows, 3, 5), *single);
  tandem::nn::TableBatchedEmbedding remote(tandem::nn::TableBatchedEmbeddingOptions{
      rows, 3, tandem::nn::KernelChoice::kTandem, true, 5, /*remote=*/true});
  tandem::nn::TableBatchedEmbedding full(tandem::nn::TableBatchedEmbeddingOptions{
      rows, 3, tandem::nn::KernelChoice::kTandem, true, 5});
  auto placement = tandem::ps::sharded(remote, ps);
  const at::Tensor ids = at::tensor({7, 3, 7, 0, 2, 3}, at::kLong).view({3, 2});
  const at::Tensor local = placement->prepare(ids);
  EXPECT_TRUE(at::equal(remote->forward(local), full->forward(ids)));
  try {
    placement->prepare(at::tensor({1, 2, 9, 4}, at::kLong).view({2, 2}));
    ADD_FAILURE() << "an id outside its table was accepted";
  } catch (const tandem::DataError& e) {
    EXPECT_STREQ(e.what(),
                 "embedding: index 4 out of range for table 1 (4 rows), sample 1 of the batch");
  }
}

class PsTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = tandem::testing::shared_temp_dir(*world, "ps");
    data = dir + "/train.tsv";
    csv = dir + "/train.csv";
    if (world->rank() == 0) {
      tandem::data::GenerateOptions g;
      g.rows = 3000;
      g.seed = 12;
      g.out = data;
      g.cardinalities = {60};
      tandem::data::generate(g);
      g.format = "csv";  // the same rows plus a multi-hot "tags" column
      g.out = csv;
      tandem::data::generate(g);
    }
    world->barrier();
  }

  // The CSV through a schema: its tags are averaged bags of up to 4 ids, and its
  // other columns are Criteo's.
  void use_multi_hot(TrainConfig& c) const {
    c.data.train = csv;
    c.schema.format = "delimited";
    c.schema.header = true;
    c.schema.label = "label";
    c.schema.ignore = "id";
    for (int i = 1; i <= 13; ++i) c.schema.dense += "i" + std::to_string(i) + ",";
    for (int i = 1; i <= 26; ++i) c.schema.categorical += "c" + std::to_string(i) + ",";
    c.schema.categorical += "tags:sep=|:max=4:mean";
  }

  TrainConfig config(int workers, const std::string& optimizer) const {
    TrainConfig c;
    c.run.dir = "";
    c.train.device = "cpu";
    c.run.seed = 7;
    c.data.train = data;
    c.data.eval_fraction = 0.1;
    c.data.block_rows = 64;
    c.model.embedding_dim = 4;
    c.model.bottom_mlp = "16";
    c.model.top_mlp = "16,8";
    c.model.embedding_rows = "61";
    c.optim.name = optimizer;
    c.optim.lr = optimizer == "sgd" ? 0.5 : 0.05;
    c.train.steps = 20;
    c.train.batch_size = 48 - 48 % workers;
    c.train.log_every = 0;
    c.ckpt.at_end = false;
    return c;
  }

  struct Result {
    std::vector<at::Tensor> dense;  ///< every parameter but the tables
    at::Tensor table, state;        ///< the whole tables and their row-wise state
  };

  static std::vector<at::Tensor> train(Trainer& t, int64_t steps) {
    const int64_t spe = t.train_loader().steps_per_epoch();
    for (int64_t s = 0; s < steps; ++s) t.train_step(s / spe, s % spe, s);
    std::vector<at::Tensor> out;
    for (const at::Tensor& p : t.model()->parameters())
      if (!p.is_same(t.model()->embedding_weight())) out.push_back(p.detach().clone());
    return out;
  }

  // Every server's shard assembled into whole tables, on every rank; collective.
  static std::pair<at::Tensor, at::Tensor> gather_tables(const ParameterServer& ps,
                                                         tandem::comm::Communicator& world) {
    const RowSharding& sh = ps.sharding();
    const int64_t dim = ps.options().dim;
    at::Tensor ids = at::empty({0}, at::kLong), rows = at::empty({0, dim}), state = at::empty({0});
    if (ps.serves()) {
      std::vector<at::Tensor> parts;
      int64_t first = 0;
      for (int64_t t = 0; t < sh.tables(); ++t) {
        parts.push_back(sh.rows_of(ps.server(), t) + first);
        first += sh.table_rows()[t];
      }
      ids = at::cat(parts);
      rows = ps.shard_weight();
      state = ps.shard_state();
    }
    int64_t total = 0;
    for (int64_t r : sh.table_rows()) total += r;
    const at::Tensor all_ids = world.allgatherv(ids);
    EXPECT_EQ(all_ids.numel(), total);
    at::Tensor table = at::zeros({total, dim}), st = at::zeros({total});
    table.index_copy_(0, all_ids, world.allgatherv(rows));
    st.index_copy_(0, all_ids, world.allgatherv(state));
    return {table, st};
  }

  // BSP on `servers` servers against replicated training on the same workers.
  void expect_bsp_equals_replicated(const std::string& placement, int servers,
                                    const std::string& optimizer, bool prefetch = true,
                                    bool multi_hot = false) {
    SCOPED_TRACE(::testing::Message()
                 << placement << ", " << servers << " server(s), " << world->size() << " ranks, "
                 << optimizer << (prefetch ? ", prefetch" : "")
                 << (multi_hot ? ", multi-hot" : ""));
    const bool colocated = placement == "colocated";
    const int workers = colocated ? world->size() : world->size() - servers;
    TrainConfig cfg = config(workers, optimizer);
    if (multi_hot) use_multi_hot(cfg);
    cfg.ps.servers = servers;
    cfg.ps.placement = placement;
    cfg.ps.prefetch = prefetch;
    cfg.validate_ps(world->size());

    const bool works = colocated || world->rank() < workers;
    std::unique_ptr<tandem::comm::Communicator> wc = world->split(works ? 0 : 1);
    Result reference;
    if (works) {
      TrainConfig r = cfg;
      r.ps.servers = 0;
      Trainer t(r, *wc);
      reference.dense = train(t, r.train.steps);
      reference.table = t.model()->embedding_weight().detach().clone();
      reference.state = t.model()->embeddings()->rowwise_state.clone();
    }

    ParameterServer ps(tandem::ps::server_options(cfg), *world);
    ASSERT_EQ(ps.trains(), works);
    const at::Tensor initial = gather_tables(ps, *world).first;
    Result got;
    if (ps.trains()) {
      Trainer t(cfg, *wc, "", &ps);
      got.dense = train(t, cfg.train.steps);
      ps.stop();
    } else {
      ps.serve();
    }
    std::tie(got.table, got.state) = gather_tables(ps, *world);
    if (!works) return;

    // The same sums in the same order (rows summed in rank order on both sides):
    // the same bits, which is more than the 1e-6 the design asks.
    ASSERT_EQ(got.dense.size(), reference.dense.size());
    for (size_t i = 0; i < got.dense.size(); ++i)
      EXPECT_TRUE(at::equal(got.dense[i], reference.dense[i])) << "dense parameter " << i;
    EXPECT_TRUE(at::equal(got.table, reference.table)) << "tables";
    EXPECT_TRUE(at::equal(got.state, reference.state)) << "row-wise state";
    // Training moved the tables (the comparison would be vacuous otherwise).
    EXPECT_FALSE(at::equal(got.table, initial));
  }

  std::unique_ptr<tandem::comm::Communicator> world = tandem::testing::world();
  std::string data, csv;
};

TEST_F(PsTraining, BspEqualsReplicated) {
  for (const char* optimizer : {"adagrad", "sgd"}) {
    expect_bsp_equals_replicated("colocated", world->size(), optimizer, /*prefetch=*/true);
    expect_bsp_equals_replicated("colocated", world->size(), optimizer, /*prefetch=*/false);
    if (world->size() == 3) expect_bsp_equals_replicated("dedicated", 1, optimizer);
    if (world->size() == 4) expect_bsp_equals_replicated("dedicated", 2, optimizer);
  }
}

// Multi-hot bags (empty slots look up row 0 of their table with weight 0) pull,
// push and update the same rows as replicated tables do.
TEST_F(PsTraining, BspEqualsReplicatedWithMultiHotBags) {
  expect_bsp_equals_replicated("colocated", world->size(), "adagrad", true, /*multi_hot=*/true);
  if (world->size() == 3) expect_bsp_equals_replicated("dedicated", 1, "sgd", true, true);
}

// Workers that pull rows 0-9 of two tables and push a gradient of ones every step,
// each "computing" for `compute` per step; the last worker stalls once, at step 2.
// Every read records, per server, how many pushes of each worker it includes. With
// SGD a row's value is then known exactly: its initial value minus lr times the
// pushes applied, which checks that the recorded clocks are the ones read.
class PsConsistency : public ::testing::Test {
 protected:
  struct Outcome {
    std::vector<ParameterServer::Read> reads;
    double waited = 0;  ///< seconds the first worker waited for rows
  };

  Outcome run(tandem::ps::Consistency model, int64_t staleness) {
    using namespace std::chrono_literals;
    const int n = world->size();
    tandem::ps::ServerOptions o;
    o.table_rows = {40, 40};
    o.dim = 4;
    o.colocated = n == 2;  // 2 ranks: both serve and work, in lock step; 3: 2 workers + 1 server
    o.servers = o.colocated ? 2 : 1;
    o.seed = 11;
    o.consistency = model;
    o.staleness = staleness;
    o.timeout_s = 60;
    ParameterServer ps(o, *world);
    Outcome out;
    if (!ps.trains()) {
      ps.serve();
      return out;
    }
    EXPECT_EQ(ps.lockstep(), o.colocated);
    const RowSharding& sh = ps.sharding();
    std::vector<int64_t> servers, slots;
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t r = 0; r < 10; ++r) {
        servers.push_back(sh.place(t, r).server);
        slots.push_back(sh.place(t, r).slot);
      }
    const at::Tensor srv = at::tensor(servers), slt = at::tensor(slots);
    at::Tensor initial = at::empty({20, o.dim});
    for (int64_t t = 0; t < 2; ++t) {
      at::Tensor part = initial.narrow(0, 10 * t, 10);
      tandem::nn::init_embedding_rows(part, o.seed, t, at::arange(10, at::kLong), o.table_rows[t]);
    }
    const bool slow = world->rank() == ps.workers() - 1;
    const double lr = 0.5;
    ps.record_reads(true);
    for (int64_t step = 0; step < kSteps; ++step) {
      const at::Tensor rows = ps.pull(srv, slt);
      // The rows hold the pushes the read says it includes (each push moves a row
      // by lr, so a count off by one is off by 0.5).
      const auto& read = ps.reads().back();
      for (int64_t i = 0; i < 20; ++i) {
        int64_t pushes = 0;
        for (int64_t a : read.applied[servers[i]]) pushes += a;
        EXPECT_TRUE(at::allclose(rows[i], initial[i] - lr * static_cast<double>(pushes), 0, 1e-5))
            << "row " << i << " at step " << step << ": " << rows[i] << " after " << pushes
            << " pushes from " << initial[i];
      }
      std::this_thread::sleep_for(kCompute + (slow && step == 2 ? kStall : 0ms));
      ps.push(srv, slt, at::ones({20, o.dim}), lr);
    }
    out.reads = ps.reads();
    out.waited = ps.wait_seconds();
    ps.stop();
    return out;
  }

  // The smallest number of another worker's pushes any read included, relative to
  // the read's clock: 0 means every read saw all earlier steps.
  static int64_t largest_lag(const Outcome& o) {
    int64_t lag = 0;
    for (const auto& r : o.reads)
      for (const auto& server : r.applied)
        for (int64_t a : server) lag = std::max(lag, r.clock - a);
    return lag;
  }

  static constexpr int64_t kSteps = 8;
  static constexpr std::chrono::milliseconds kCompute{40}, kStall{100};
  std::unique_ptr<tandem::comm::Communicator> world = tandem::testing::world();
};

// Colocated servers exchange rows in lock step under every model: each read is
// exact, as BSP's, which is within SSP's and ASP's bounds.
TEST_F(PsConsistency, ColocatedReadsAreExactUnderEveryModel) {
  if (world->size() != 2) GTEST_SKIP() << "runs on 2 ranks (colocated)";
  using tandem::ps::Consistency;
  for (const auto& [model, staleness] :
       {std::pair{Consistency::kBsp, 0}, {Consistency::kSsp, 3}, {Consistency::kAsp, 0}}) {
    const Outcome o = run(model, staleness);
    ASSERT_EQ(o.reads.size(), static_cast<size_t>(kSteps)) << to_string(model);
    for (const auto& r : o.reads)
      for (const auto& server : r.applied)
        for (int64_t a : server) EXPECT_EQ(a, r.clock) << to_string(model);
  }
}

// Dedicated servers: 2 workers and 1 server.
TEST_F(PsConsistency, ReadsKeepTheirBoundAndOnlyBspWaitsForAStalledWorker) {
  if (world->size() != 3) GTEST_SKIP() << "runs on 3 ranks (2 workers, 1 dedicated server)";
  using tandem::ps::Consistency;
  const Outcome bsp = run(Consistency::kBsp, 0);
  const Outcome ssp = run(Consistency::kSsp, 3);
  const Outcome asp = run(Consistency::kAsp, 0);
  if (bsp.reads.empty()) return;  // the server
  ASSERT_EQ(bsp.reads.size(), static_cast<size_t>(kSteps));
  // BSP: exactly the pushes of every earlier step, never one of this step.
  for (const auto& r : bsp.reads)
    for (const auto& server : r.applied)
      for (int64_t a : server) EXPECT_EQ(a, r.clock);
  // SSP(3): at most 3 steps of any worker missing, and nothing from the future.
  for (const auto& r : ssp.reads)
    for (const auto& server : r.applied)
      for (int64_t a : server) {
        EXPECT_GE(a, r.clock - 3);
        EXPECT_LE(a, kSteps);
      }
  if (world->rank() != 0) return;
  // The first worker is never stalled: BSP makes it wait out the stall; SSP (its
  // slack, 3 steps of compute, covers the stall) and ASP read older rows instead.
  const double stall = std::chrono::duration<double>(kStall).count();
  EXPECT_GE(bsp.waited, 0.5 * stall);
  EXPECT_LT(ssp.waited, 0.5 * bsp.waited);
  EXPECT_LT(asp.waited, 0.5 * bsp.waited);
  EXPECT_EQ(largest_lag(bsp), 0);
  EXPECT_GE(largest_lag(ssp), 1);
  EXPECT_LE(largest_lag(ssp), 3);
  EXPECT_GE(largest_lag(asp), 1);
  std::printf("rank 0 waited %.3f s (BSP), %.3f s (SSP 3), %.3f s (ASP); largest lag %ld, %ld\n",
              bsp.waited, ssp.waited, asp.waited, static_cast<long>(largest_lag(ssp)),
              static_cast<long>(largest_lag(asp)));
}

}  // namespace
