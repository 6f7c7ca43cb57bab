// Tandem's pairwise interaction (kernels/interaction.h, nn/interaction.h) against
// ATen's bmm + index_select of the lower triangle, computed in float64 on the CPU,
// on every backend this build and machine can run; and the same bits on every CPU
// variant.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <vector>

#include "harness.h"
#include "tandem/nn/interaction.h"
#include "tandem/util/error.h"

namespace {

using tandem::testing::Backend;
using tandem::testing::kernel_backends;
using tandem::testing::normalised_error;

// The lower triangle (i > j, row-major) of x x^T, as nn/dlrm.cpp's ATen path forms it.
at::Tensor reference(const at::Tensor& x) {
  const int64_t f = x.size(1);
  std::vector<int64_t> pairs;
  for (int64_t i = 0; i < f; ++i)
    for (int64_t j = 0; j < i; ++j) pairs.push_back(i * f + j);
  return at::bmm(x, x.transpose(1, 2)).flatten(1).index_select(1, at::tensor(pairs, at::kLong));
}

// Forward and the gradient for a random upstream gradient, against the reference
// (with_first: the first vector beside the dots, as DLRM concatenates them).
void check(int64_t rows, int64_t vectors, int64_t dim, at::ScalarType type,
           bool with_first = false) {
  SCOPED_TRACE(::testing::Message() << rows << " x " << vectors << " x " << dim << " "
                                    << c10::toString(type) << (with_first ? " with first" : ""));
  at::manual_seed(rows * 1000 + vectors * 10 + dim);
  const at::Tensor x = at::randn({rows, vectors, dim}, at::kDouble);
  const int64_t width = (with_first ? dim : 0) + vectors * (vectors - 1) / 2;
  const at::Tensor g = at::randn({rows, width}, at::kDouble);
  at::Tensor xr = x.clone().set_requires_grad(true);
  const at::Tensor ref = with_first ? at::cat({xr.select(1, 0), reference(xr)}, 1) : reference(xr);
  torch::autograd::backward({ref}, {g});
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    // A copy: x.to() of x's own device and type would be x itself, which would then
    // require grad, and the next backend's x.to() would not be a leaf.
    at::Tensor xt =
        x.to(b.device, type, /*non_blocking=*/false, /*copy=*/true).set_requires_grad(true);
    const at::Tensor out = tandem::nn::pairwise_dots(xt, with_first);
    ASSERT_EQ(out.sizes(), ref.sizes());
    torch::autograd::backward({out}, {g.to(b.device, type)});
    const double tol = tandem::testing::tolerance(type) * (dim + vectors);
    EXPECT_LE(normalised_error(out, ref.detach(), 1.0), tol);
    EXPECT_LE(normalised_error(xt.grad(), xr.grad(), 1.0), tol);
  }
}

TEST(Interaction, MatchesAtenForAnyShape) {
  // One vector (no pairs), two, the quickstart's 27; dims below, at and off the 8
  // lanes; no rows, one, and more than one block of rows.
  for (int64_t vectors : {1, 2, 5, 27})
    for (int64_t dim : {1, 3, 8, 16, 17})
      for (int64_t rows : {0, 1, 37})
        for (bool with_first : {false, true}) check(rows, vectors, dim, at::kFloat, with_first);
  check(300, 27, 16, at::kFloat);
  check(300, 27, 16, at::kFloat, true);
  check(33, 27, 16, at::kDouble);
  check(33, 27, 16, at::kDouble, true);
  check(7, 4, 129, at::kDouble, true);
  check(7, 4, 129, at::kDouble);
}

// With the first vector beside the dots, the dots are the same bits as without it,
// and the first vector is copied exactly.
TEST(Interaction, FirstVectorBesideTheDotsChangesNoDot) {
  at::manual_seed(4);
  const at::Tensor x = at::randn({50, 27, 16});
  const at::Tensor both = tandem::nn::pairwise_dots(x, /*with_first=*/true);
  ASSERT_EQ(both.sizes(), (std::vector<int64_t>{50, 16 + 351}));
  EXPECT_TRUE(tandem::testing::same_bits(both.narrow(1, 0, 16).contiguous(), x.select(1, 0)));
  EXPECT_TRUE(tandem::testing::same_bits(both.narrow(1, 16, 351).contiguous(),
                                         tandem::nn::pairwise_dots(x)));
}

TEST(Interaction, CpuVariantsGiveTheSameBits) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    at::manual_seed(5);
    const at::Tensor x = at::randn({101, 27, 17}, type) * 3;
    const at::Tensor g = at::randn({101, 351}, type);
    const at::Tensor own = at::randn({101, 17}, type);  // the first vector's gradient
    tandem::testing::expect_same_bits_on_every_cpu_isa([&] {
      std::vector<at::Tensor> results;
      for (bool with_first : {false, true}) {
        at::Tensor xt = x.clone().set_requires_grad(true);
        const at::Tensor out = tandem::nn::pairwise_dots(xt, with_first);
        const at::Tensor go = with_first ? at::cat({own, g}, 1) : g;
        torch::autograd::backward({out}, {go});
        results.push_back(out.detach());
        results.push_back(xt.grad());
      }
      return results;
    });
  }
}

TEST(Interaction, BackwardIsDeterministic) {
  at::manual_seed(9);
  const at::Tensor x = at::randn({513, 27, 16});
  const at::Tensor g = at::randn({513, 351});
  std::vector<at::Tensor> grads;
  for (int i = 0; i < 2; ++i) {
    at::Tensor xt = x.clone().set_requires_grad(true);
    torch::autograd::backward({tandem::nn::pairwise_dots(xt)}, {g});
    grads.push_back(xt.grad());
  }
  EXPECT_TRUE(tandem::testing::same_bits(grads[0], grads[1]));
}

TEST(Interaction, BadInput) {
  EXPECT_THROW(tandem::nn::pairwise_dots(at::zeros({4, 27})), tandem::Error);
  EXPECT_THROW(tandem::nn::pairwise_dots(at::zeros({4, 0, 16})), tandem::Error);
  EXPECT_THROW(tandem::nn::pairwise_dots(at::zeros({4, 3, 2}, at::kLong)), tandem::Error);
}

}  // namespace
