// The model on Tandem's kernels trains like the model on ATen's ops: the same
// eval NE within noise on generated data (SGD: the same math; Adagrad: row-wise on
// Tandem's kernels, element-wise on ATen's), with and without LayerNorm. And the
// embedding update fused into backward is bit-identical to the unfused one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "tandem/comm/single_communicator.h"
#include "tandem/data/generator.h"
#include "tandem/train/trainer.h"

namespace {

using tandem::config::TrainConfig;
using tandem::train::Trainer;

class KernelsTraining : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = (std::filesystem::temp_directory_path() /
             ("tandem-kernels-training-" + std::to_string(::getpid()) + ".tsv"))
                .string();
    tandem::data::GenerateOptions g;
    g.rows = 24000;
    g.seed = 5;
    g.out = data_;
    g.cardinalities = {300};
    tandem::data::generate(g);
  }
  static void TearDownTestSuite() { std::filesystem::remove(data_); }

  static TrainConfig config(const std::string& kernels, const std::string& optimizer) {
    TrainConfig c;
    c.run.dir = "";
    c.train.device = "cpu";  // CPU semantics, also where a GPU exists
    c.run.seed = 3;
    c.data.train = data_;
    c.data.eval_fraction = 0.15;
    c.data.block_rows = 500;
    c.model.embedding_dim = 8;
    c.model.bottom_mlp = "32";
    c.model.top_mlp = "32,16";
    c.model.embedding_rows = "300";
    c.model.kernels = kernels;
    c.optim.name = optimizer;
    c.optim.lr = optimizer == "sgd" ? 0.3 : 0.05;
    c.train.epochs = optimizer == "sgd" ? 4 : 2;
    c.train.batch_size = 128;
    c.train.log_every = 0;
    return c;
  }

  static double final_ne(const TrainConfig& c) {
    auto single = tandem::comm::make_single_communicator();
    Trainer t(c, *single);
    return t.run().final.ne;
  }

  static std::string data_;
};
std::string KernelsTraining::data_;

// SGD is the same math on both (only the summation order differs), so the NE
// agrees closely. Adagrad is row-wise on Tandem's tables (one accumulator per row,
// as FBGEMM) and element-wise on ATen's: a different optimizer, which must not
// train worse (on this data it trains better), with and without LayerNorm.
TEST_F(KernelsTraining, SameEvalNeAsAten) {
  {
    SCOPED_TRACE("sgd");
    const double tandem_ne = final_ne(config("tandem", "sgd"));
    const double aten_ne = final_ne(config("aten", "sgd"));
    EXPECT_LT(tandem_ne, 1.0) << "the model did not learn";
    EXPECT_NEAR(tandem_ne, aten_ne, 0.005);
  }
  for (bool layer_norm : {false, true}) {
    SCOPED_TRACE(layer_norm ? "adagrad with LayerNorm" : "adagrad");
    TrainConfig tandem_cfg = config("tandem", "adagrad"), aten_cfg = config("aten", "adagrad");
    tandem_cfg.model.layer_norm = aten_cfg.model.layer_norm = layer_norm;
    const double tandem_ne = final_ne(tandem_cfg), aten_ne = final_ne(aten_cfg);
    EXPECT_LT(aten_ne, 0.92) << "the model did not learn";
    EXPECT_LT(tandem_ne, aten_ne + 0.01);
  }
}

TEST_F(KernelsTraining, FusedUpdateEqualsUnfused) {
  for (const char* optimizer : {"sgd", "adagrad"}) {
    SCOPED_TRACE(optimizer);
    std::vector<std::vector<at::Tensor>> params;
    for (bool fused : {true, false}) {
      TrainConfig c = config("tandem", optimizer);
      c.optim.fused_embedding_update = fused;
      auto single = tandem::comm::make_single_communicator();
      Trainer t(c, *single);
      for (int64_t s = 0; s < 30; ++s) t.train_step(0, s, s);
      params.push_back(t.model()->parameters());
      params.back().push_back(t.model()->embeddings()->rowwise_state);
    }
    for (size_t i = 0; i < params[0].size(); ++i)
      EXPECT_TRUE(at::equal(params[0][i], params[1][i])) << "tensor " << i;
  }
}

}  // namespace
