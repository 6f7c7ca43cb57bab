// Checkpoint files: every state element round-trips; truncated and bit-flipped
// files are detected; the store keeps the last K and best K and falls back past a
// corrupt newest checkpoint; a trainer restored from a snapshot continues exactly
// like the original, for every optimizer. (Kills at each step of the write
// sequence and kill -9 resumes run as processes: tests/ckpt/resume_test.sh.)
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/ckpt/store.h"
#include "tandem/comm/single_communicator.h"
#include "tandem/data/generator.h"
#include "tandem/train/trainer.h"
#include "tandem/util/error.h"

namespace {

namespace fs = std::filesystem;
namespace ck = tandem::ckpt;

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TANDEM_WITH_HDF5) GTEST_SKIP() << "built without HDF5";
    dir = (fs::temp_directory_path() /
           ("tandem-ckpt-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name()))
              .string();
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    if (!dir.empty()) fs::remove_all(dir);
  }

  static ck::State sample_state(int64_t step) {
    at::manual_seed(step);
    ck::State s;
    s.step = step;
    s.epoch = 2;
    s.samples = 12345;
    s.lr = 0.0125;
    s.best = 0.4567;
    s.bad_evals = 1;
    s.monitor = 0.5 + step * 0.001;
    s.world_size = 2;
    s.global_batch = 64;
    s.version = "9.9.9";
    s.config = "[run]\nseed = 1\n";
    s.metrics = "{\"event\":\"baseline\"}\n";
    s.data = {{"a.tsv", 10, "00ff"}, {"dir/b.tsv", 20, "abcd"}};
    s.params["bottom.0.weight"] = at::randn({5, 3});
    s.params["tables.weight"] = at::randn({100, 4});
    s.buffers["tables.table_offsets"] = at::arange(26, at::kLong);
    s.buffers["empty"] = at::empty({0, 4});
    s.buffers["scalar"] = at::tensor(3.5, at::kDouble);
    s.optimizer["tables.weight/sum"] = at::rand({100, 4});
    s.optimizer["tables.weight/step"] = at::tensor({7}, at::kLong);
    s.optimizer_name = "adagrad";
    s.rng = {at::randint(0, 255, {5056}, at::kByte), at::randint(0, 255, {5056}, at::kByte)};
    s.cuda_rng = {at::randint(0, 255, {16}, at::kByte), at::randint(0, 255, {16}, at::kByte)};
    return s;
  }

  static void expect_equal(const std::map<std::string, at::Tensor>& a,
                           const std::map<std::string, at::Tensor>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, t] : a) {
      ASSERT_TRUE(b.count(k)) << k;
      EXPECT_EQ(t.sizes(), b.at(k).sizes()) << k;
      EXPECT_EQ(t.scalar_type(), b.at(k).scalar_type()) << k;
      EXPECT_TRUE(at::equal(t, b.at(k))) << k;
    }
  }

  // A small DLRM trainer's config on generated data (dir/d.tsv, 50 ids per table),
  // CPU semantics also where a GPU exists; the tests set what they vary.
  tandem::config::TrainConfig tiny_trainer(int64_t rows, uint64_t seed) const {
    tandem::data::GenerateOptions g;
    g.rows = rows;
    g.seed = seed;
    g.out = dir + "/d.tsv";
    g.cardinalities = {50};
    tandem::data::generate(g);
    tandem::config::TrainConfig c;
    c.run.dir = "";
    c.train.device = "cpu";
    c.data.train = g.out;
    c.data.block_rows = 100;
    c.model.embedding_rows = "50";
    c.model.embedding_dim = 4;
    c.model.bottom_mlp = "8";
    c.model.top_mlp = "8";
    c.train.batch_size = 32;
    c.train.log_every = 0;
    return c;
  }

  std::string dir;
};

TEST_F(Checkpoint, EveryElementRoundTrips) {
  const ck::State s = sample_state(5);
  const std::string path = dir + "/c.h5";
  ck::write(path, s, {3, true});  // gzip on
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const ck::State r = ck::read(path);
  EXPECT_EQ(r.step, s.step);
  EXPECT_EQ(r.epoch, s.epoch);
  EXPECT_EQ(r.samples, s.samples);
  EXPECT_EQ(r.lr, s.lr);
  EXPECT_EQ(r.best, s.best);
  EXPECT_EQ(r.bad_evals, s.bad_evals);
  EXPECT_EQ(r.monitor, s.monitor);
  EXPECT_EQ(r.world_size, s.world_size);
  EXPECT_EQ(r.global_batch, s.global_batch);
  EXPECT_EQ(r.version, s.version);
  EXPECT_EQ(r.config, s.config);
  EXPECT_EQ(r.metrics, s.metrics);
  ASSERT_EQ(r.data.size(), 2u);
  EXPECT_EQ(r.data[1].path, "dir/b.tsv");
  EXPECT_EQ(r.data[1].bytes, 20);
  EXPECT_EQ(r.data[1].digest, "abcd");
  EXPECT_EQ(r.optimizer_name, "adagrad");
  expect_equal(r.params, s.params);
  expect_equal(r.buffers, s.buffers);
  expect_equal(r.optimizer, s.optimizer);
  ASSERT_EQ(r.rng.size(), 2u);
  EXPECT_TRUE(at::equal(r.rng[1], s.rng[1]));
  ASSERT_EQ(r.cuda_rng.size(), 2u);
  EXPECT_TRUE(at::equal(r.cuda_rng[0], s.cuda_rng[0]));
  EXPECT_EQ(ck::digest(r), ck::digest(s));
}

TEST_F(Checkpoint, TruncatedAndBitFlippedFilesAreDetected) {
  const std::string path = dir + "/c.h5";
  ck::write(path, sample_state(1), {0, true});
  const auto size = fs::file_size(path);
  {
    const std::string cut = dir + "/cut.h5";
    fs::copy_file(path, cut);
    fs::resize_file(cut, size / 2);
    EXPECT_THROW(ck::read(cut), tandem::DataError);
    EXPECT_THROW(ck::verify(cut), tandem::DataError);
  }
  EXPECT_NO_THROW(ck::verify(path));
  // Flip one bit in the middle of the file (inside the large tables.weight data):
  // its dataset's XXH3 checksum catches it on read.
  int detected = 0, trials = 0;
  for (auto offset : {size / 3, size / 2, size * 2 / 3}) {
    const std::string flipped = dir + "/flip.h5";
    fs::remove(flipped);
    fs::copy_file(path, flipped);
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x10));
    f.close();
    ++trials;
    // The write sequence's read-back (verify, chunk by chunk) and a full read agree.
    bool verify_failed = false;
    try {
      ck::verify(flipped);
    } catch (const tandem::DataError&) {
      verify_failed = true;
    }
    try {
      const ck::State r = ck::read(flipped);
      EXPECT_FALSE(verify_failed) << "verify refused a file read accepts, flip at " << offset;
      // A flip in unused padding changes nothing; a flip in data never goes unseen.
      if (ck::digest(r) != ck::digest(sample_state(1)))
        ADD_FAILURE() << "undetected flip at " << offset;
    } catch (const tandem::DataError&) {
      ++detected;
      EXPECT_TRUE(verify_failed) << "verify missed a flip read caught, at " << offset;
    }
  }
  EXPECT_GT(detected, 0) << "of " << trials;
  EXPECT_THROW(ck::read(dir + "/missing.h5"), tandem::DataError);
}

TEST_F(Checkpoint, StoreKeepsLastAndBestAndFallsBackPastCorruption) {
  ck::StoreOptions o;
  o.keep_last = 2;
  o.keep_best = 1;
  std::ofstream(dir + "/step-000000099.h5.tmp") << "stale";
  ck::Store store(dir, o);
  EXPECT_FALSE(fs::exists(dir + "/step-000000099.h5.tmp"));  // cleaned at start
  for (int64_t step : {10, 20, 30, 40}) {
    ck::State s = sample_state(step);
    s.monitor = step == 20 ? 0.1 : 0.9;  // step 20 is the best (min)
    store.save(s);
  }
  const auto files = store.list();
  ASSERT_EQ(files.size(), 3u);
  EXPECT_NE(files[0].find("step-000000020"), std::string::npos);
  EXPECT_NE(files[2].find("step-000000040"), std::string::npos);
  EXPECT_EQ(*store.latest_valid(), dir + "/step-000000040.h5");
  // Corrupt the newest: resume falls back to the previous valid one.
  fs::resize_file(dir + "/step-000000040.h5", 100);
  EXPECT_EQ(*store.latest_valid(), dir + "/step-000000030.h5");
  EXPECT_EQ(ck::Store(dir, o).claim("auto", false), dir + "/step-000000030.h5");
  EXPECT_EQ(ck::Store(dir + "/none", o).claim("auto", false), "");
  EXPECT_THROW(ck::Store(dir + "/other", o).claim(dir + "/step-000000040.h5", false),
               tandem::DataError);
}

// A checkpoint directory is one run's: its id is kept across resumes, a fresh start
// over it refuses (or, told to, deletes it), and another run's checkpoints are never
// resumed, counted or pruned.
TEST_F(Checkpoint, StoreBelongsToOneRun) {
  ck::StoreOptions o;
  o.keep_last = 1;
  o.keep_best = 0;
  const auto save = [&](ck::Store& store, int64_t step) {
    ck::State s = sample_state(step);
    s.run_id = store.run_id();
    return store.save(s);
  };
  std::string first;
  {
    ck::Store a(dir, o);
    EXPECT_EQ(a.claim("", false), "");
    first = a.run_id();
    EXPECT_EQ(first.size(), std::string("20261204-061502-9f3a01c2").size()) << first;
    // Claimed again before any save (the parameter-server launch, then the
    // trainer): the same run.
    EXPECT_EQ(ck::Store(dir, o).claim("", false), "");
    std::ifstream id(dir + "/run_id");
    std::string line;
    std::getline(id, line);
    EXPECT_EQ(line, first);
    save(a, 10);
    save(a, 20);
  }
  // A resume continues the same run, from its own newest checkpoint.
  {
    ck::Store b(dir, o);
    EXPECT_EQ(b.claim("auto", false), dir + "/step-000000020.h5");
    EXPECT_EQ(b.run_id(), first);
    EXPECT_EQ(ck::read_header(dir + "/step-000000020.h5").run_id, first);
  }
  // A fresh start refuses, naming the run and the way out.
  try {
    ck::Store(dir, o).claim("", false);
    ADD_FAILURE() << "a fresh start took another run's directory";
  } catch (const tandem::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("holds 1 checkpoint(s) of another run (" + first),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("run.overwrite=true"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(dir + "/step-000000020.h5"));
  EXPECT_EQ(ck::Store(dir, o).claim("auto", false), dir + "/step-000000020.h5");  // still first's
  // So does a resume from another run's checkpoint.
  {
    const std::string other_dir = dir + "/elsewhere";
    ck::Store other(other_dir, o);
    other.claim("", false);
    const std::string theirs = save(other, 5);
    EXPECT_THROW(ck::Store(dir, o).claim(theirs, false), tandem::ConfigError);
  }
  // Another run's file with a higher step (as a crash during an overwrite leaves):
  // neither resumed, nor counted against keep_last, nor deleted.
  {
    ck::State foreign = sample_state(90);
    foreign.run_id = "19990101-000000-00000000";
    ck::write(dir + "/step-000000090.h5", foreign, {});
    ck::Store c(dir, o);
    EXPECT_EQ(c.claim("auto", false), dir + "/step-000000020.h5");
    const std::string saved = save(c, 30);
    EXPECT_TRUE(fs::exists(saved));
    EXPECT_FALSE(fs::exists(dir + "/step-000000020.h5"));  // keep_last = 1 of this run
    EXPECT_TRUE(fs::exists(dir + "/step-000000090.h5"));
    EXPECT_EQ(*c.latest_valid(), saved);
  }
  // run.overwrite: a fresh start deletes every old checkpoint and is a new run.
  {
    ck::Store d(dir, o);
    EXPECT_EQ(d.claim("", true), "");
    EXPECT_NE(d.run_id(), first);
    EXPECT_TRUE(d.list().empty());
    std::ifstream id(dir + "/run_id");
    std::string line;
    std::getline(id, line);
    EXPECT_EQ(line, d.run_id());
  }
}

// Checkpoints from before runs had ids belong to the run that resumes them.
TEST_F(Checkpoint, StoreAdoptsCheckpointsWithoutRunId) {
  ck::StoreOptions o;
  o.keep_last = 5;
  ck::write(dir + "/step-000000010.h5", sample_state(10), {});  // run_id ""
  ck::Store s(dir, o);
  EXPECT_EQ(s.claim("auto", false), dir + "/step-000000010.h5");
  EXPECT_FALSE(s.run_id().empty());
  ck::State next = sample_state(20);
  next.run_id = s.run_id();
  s.save(next);
  EXPECT_EQ(s.list().size(), 2u);
  EXPECT_EQ(ck::Store(dir, o).claim("auto", false), dir + "/step-000000020.h5");
}

// A trainer restored from another's snapshot continues bit-identically, for
// every optimizer's state (and the row-wise embedding state).
TEST_F(Checkpoint, TrainerSnapshotRestoresExactly) {
  const tandem::config::TrainConfig base = tiny_trainer(3000, 2);
  for (const auto& [name, kernels] :
       std::vector<std::pair<std::string, std::string>>{{"sgd", "tandem"},
                                                        {"sgd_momentum", "aten"},
                                                        {"adagrad", "tandem"},
                                                        {"adagrad", "aten"},
                                                        {"adam", "aten"},
                                                        {"adamw", "aten"}}) {
    SCOPED_TRACE(name + " " + kernels);
    tandem::config::TrainConfig c = base;
    c.model.dropout = 0.2;  // uses the RNG, which must be restored too
    c.model.kernels = kernels;
    c.model.sparse_embeddings = name == "sgd" || name == "adagrad";
    c.optim.name = name == "sgd_momentum" ? "sgd" : name;
    c.optim.momentum = name == "sgd_momentum" ? 0.9 : 0;
    c.optim.lr = 0.01;
    auto single = tandem::comm::make_single_communicator();
    tandem::train::Trainer a(c, *single);
    for (int64_t s = 0; s < 5; ++s) a.train_step(0, s, s);
    const std::string path = dir + "/t.h5";
    ck::write(path, a.snapshot(), {0, true});
    for (int64_t s = 5; s < 9; ++s) a.train_step(0, s, s);
    const std::string expected = ck::digest(a.snapshot());
    // One process, one global generator: b runs after a, from the restored state.
    tandem::train::Trainer b(c, *single);
    b.restore(ck::read(path));
    for (int64_t s = 5; s < 9; ++s) b.train_step(0, s, s);
    EXPECT_EQ(ck::digest(b.snapshot()), expected);
  }
}

// An async save's snapshot on the CPU leaves the table rows to the saving thread;
// training steps that run before it finishes (updating rows, fused into backward
// or applied after it) must not reach it: it equals the state at its step.
TEST_F(Checkpoint, DeferredTableSnapshotHoldsItsStepWhileTrainingGoesOn) {
  const tandem::config::TrainConfig base = tiny_trainer(2000, 3);
  for (bool fused : {true, false}) {
    SCOPED_TRACE(fused ? "fused update" : "update after backward");
    tandem::config::TrainConfig c = base;
    // Tables of 100,000 rows: a batch's ids are few for them, so the guard saves
    // rows (rather than finishing the copy itself).
    c.model.embedding_rows = "100000";
    c.model.sparse_embeddings = true;
    c.optim.name = "adagrad";
    c.optim.fused_embedding_update = fused;
    c.optim.lr = 0.05;
    auto single = tandem::comm::make_single_communicator();
    tandem::train::Trainer t(c, *single);
    for (int64_t s = 0; s < 3; ++s) t.train_step(0, s, s);
    const std::string at_step = ck::digest(t.snapshot());
    ck::State deferred = t.snapshot(/*defer_rows=*/true);
    ASSERT_TRUE(static_cast<bool>(deferred.complete));
    for (int64_t s = 3; s < 6; ++s) t.train_step(0, s, s);  // before the copy ran
    EXPECT_NE(ck::digest(t.snapshot()), at_step);           // the model did move on
    deferred.complete();
    EXPECT_EQ(ck::digest(deferred), at_step);
  }
}

}  // namespace
