// Drift figures (stats/drift.h): PSI, Jensen-Shannon distance, L-infinity and KS
// against their definitions worked by hand; bad threshold overrides; a window from
// the reference's own rows has zero drift, a generated covariate shift is found in
// exactly the shifted features; and every rank count gives the same figures (the
// multi-rank run is under mpirun).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tandem/data/criteo.h"
#include "tandem/data/dataset.h"
#include "tandem/data/generator.h"
#include "tandem/stats/drift.h"
#include "tandem/util/error.h"
#include "test_util.h"

namespace {

using tandem::stats::DriftReport;

TEST(Drift, FiguresMatchTheirDefinitions) {
  // Shares p = (0.5, 0.3, 0.2) and q = (0.2, 0.3, 0.5), given as counts.
  const std::vector<double> p{50, 30, 20}, q{2, 3, 5};
  EXPECT_NEAR(tandem::stats::psi(p, q), 0.6 * std::log(2.5), 1e-12);
  const double kl = 0.5 * std::log(0.5 / 0.35) + 0.2 * std::log(0.2 / 0.35);  // = KL(q || m)
  EXPECT_NEAR(tandem::stats::js_distance(p, q), std::sqrt(kl), 1e-12);
  EXPECT_NEAR(tandem::stats::linf(p, q), 0.3, 1e-12);
  EXPECT_NEAR(tandem::stats::ks(p, q), 0.3, 1e-12);  // cumulative 0.5/0.8 against 0.2/0.5
  for (auto f : {tandem::stats::psi, tandem::stats::js_distance, tandem::stats::linf,
                 tandem::stats::ks}) {
    EXPECT_EQ(f(p, {5, 3, 2}), 0.0);  // the same shares
    EXPECT_EQ(f(p, {0, 0, 0}), 0.0);  // an empty window is no drift
  }
  // An empty bucket is floored at 1e-4: finite, and large.
  const double apart = tandem::stats::psi({1, 0}, {0, 1});
  EXPECT_TRUE(std::isfinite(apart));
  EXPECT_NEAR(apart, 2 * (1 - 1e-4) * std::log(1 / 1e-4), 1e-3);
  EXPECT_NEAR(tandem::stats::js_distance({1, 0}, {0, 1}), std::sqrt(std::log(2.0)), 1e-3);
}

TEST(Drift, ThresholdOverrides) {
  tandem::stats::DriftThresholds t;
  t.parse_overrides("k", "I3:psi=0.5,C7:js=0.2,C7:linf=0.4");
  EXPECT_EQ(t.get("I3", "psi"), 0.5);
  EXPECT_EQ(t.get("I4", "psi"), 0.25);
  EXPECT_EQ(t.get("C7", "js"), 0.2);
  EXPECT_EQ(t.get("C7", "linf"), 0.4);
  EXPECT_EQ(t.get("C8", "linf"), 0.3);
  EXPECT_NO_THROW(t.check(*tandem::data::Schema::criteo()));
  for (const char* bad : {"I1:psi=-1", "I1:psi=x", "junk", "I1:ks=1", ":psi=1"})
    EXPECT_THROW(t.parse_overrides("continuous.thresholds", bad), tandem::ConfigError) << bad;
  // Names and metrics are checked against the data's columns once they are known.
  for (const char* bad : {"I14:psi=1", "C2:psi=1", "I1:js=1", "C27:js=0.1", "age:psi=1"}) {
    tandem::stats::DriftThresholds u;
    u.parse_overrides("continuous.thresholds", bad);
    try {
      u.check(*tandem::data::Schema::criteo());
      ADD_FAILURE() << bad << " was accepted";
    } catch (const tandem::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("continuous.thresholds: '"), std::string::npos)
          << e.what();
    }
  }
}

class DriftData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = tandem::testing::shared_temp_dir(*world, "drift");
    if (world->rank() == 0) {
      tandem::data::GenerateOptions g;
      g.rows = 6000;
      g.cardinalities = {300};
      g.seed = 5;
      g.out = dir + "/base.tsv";
      tandem::data::generate(g);
      // Another sample of the same distribution, and one where I2 and I5 shift and
      // C4's ids are permuted from row 0.
      g.seed = 6;
      g.out = dir + "/same.tsv";
      tandem::data::generate(g);
      g.out = dir + "/shifted.tsv";
      g.drift_at = 0;
      g.shift_dense = {2, 5};
      g.permute_categorical = {4};
      tandem::data::generate(g);
    }
    world->barrier();
  }

  tandem::data::Loader loader(const std::string& file, tandem::comm::Communicator& comm) const {
    return tandem::data::Loader(
        tandem::data::Dataset::index(file, {256, true}), rows,
        tandem::data::LoaderOptions{0, false, 1000, comm.rank(), comm.size()});
  }

  DriftReport report(const std::string& name, tandem::comm::Communicator& comm) {
    tandem::data::Loader base = loader(dir + "/base.tsv", comm);
    const auto ref = tandem::stats::fit(base, comm, {16, 10});
    tandem::data::Loader window = loader(dir + "/" + name, comm);
    return tandem::stats::drift(window, comm, ref, {});
  }

  std::unique_ptr<tandem::comm::Communicator> world = tandem::testing::world();
  std::string dir;
  const std::vector<int64_t> rows = std::vector<int64_t>(tandem::data::kNumCategorical, 300);
};

TEST_F(DriftData, OwnRowsHaveNoDriftAndAShiftIsFoundWhereItIs) {
  const DriftReport own = report("base.tsv", *world);
  EXPECT_EQ(own.rows, 6000);
  for (const auto& f : own.features) {
    EXPECT_EQ(f.psi + f.ks + f.js + f.linf, 0.0) << f.feature;
    EXPECT_FALSE(f.drifted);
  }
  const DriftReport same = report("same.tsv", *world);
  EXPECT_EQ(same.drifted, 0) << same.summary();
  EXPECT_FALSE(same.window_drifted);

  const DriftReport shifted = report("shifted.tsv", *world);
  std::set<std::string> drifted;
  for (const auto& f : shifted.features)
    if (f.drifted) drifted.insert(f.feature);
  EXPECT_EQ(drifted, (std::set<std::string>{"I2", "I5", "C4"})) << shifted.summary();
  EXPECT_FALSE(shifted.window_drifted);  // 3 of 39 features, under the default half
  EXPECT_NE(shifted.summary().find("I2 (psi"), std::string::npos);
}

// Integer counts summed over ranks: the figures do not depend on the rank count.
TEST_F(DriftData, EveryRankCountGivesTheSameFigures) {
  const DriftReport all = report("shifted.tsv", *world);
  std::unique_ptr<tandem::comm::Communicator> alone = world->split(world->rank());
  const DriftReport one = report("shifted.tsv", *alone);
  ASSERT_EQ(all.features.size(), one.features.size());
  for (size_t i = 0; i < all.features.size(); ++i) {
    EXPECT_NEAR(all.features[i].psi, one.features[i].psi, 1e-9);
    EXPECT_NEAR(all.features[i].ks, one.features[i].ks, 1e-9);
    EXPECT_NEAR(all.features[i].js, one.features[i].js, 1e-9);
    EXPECT_NEAR(all.features[i].linf, one.features[i].linf, 1e-9);
  }
  EXPECT_EQ(all.drifted, one.drifted);
}

}  // namespace
