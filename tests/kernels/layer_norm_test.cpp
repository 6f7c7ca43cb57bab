// Tandem's LayerNorm against ATen's (at::native_layer_norm and its autograd,
// float64 on the CPU) on every backend: forward, saved statistics, backward,
// finite differences, awkward row lengths, far-from-zero data and determinism.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/harness.h"
#include "tandem/nn/layer_norm.h"
#include "tandem/util/error.h"

namespace {

using tandem::testing::Backend;
using tandem::testing::kernel_backends;
using tandem::testing::normalised_error;
using tandem::testing::same_bits;
using tandem::testing::tolerance;
namespace tn = tandem::nn;

constexpr double kEps = 1e-5;

struct Reference {
  at::Tensor y, mean, rstd, dx, dgamma, dbeta;
};

Reference reference(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta,
                    const at::Tensor& dy) {
  const at::Tensor xd = x.to(at::kDouble).detach().requires_grad_();
  const at::Tensor gd = gamma.to(at::kDouble).detach().requires_grad_();
  const at::Tensor bd = beta.to(at::kDouble).detach().requires_grad_();
  auto [y, mean, rstd] = at::native_layer_norm(xd, {x.size(-1)}, gd, bd, kEps);
  (y * dy.to(at::kDouble)).sum().backward();
  return {y.detach(), mean.view(-1), rstd.view(-1), xd.grad(), gd.grad(), bd.grad()};
}

void check(int64_t rows, int64_t cols, at::ScalarType type = at::kFloat, double offset = 0) {
  SCOPED_TRACE(::testing::Message()
               << rows << " x " << cols << " " << c10::toString(type) << " offset " << offset);
  at::manual_seed(rows * 7919 + cols);
  const at::Tensor x = (at::randn({rows, cols}, at::kDouble) + offset).to(type);
  const at::Tensor gamma = (at::rand({cols}, at::kDouble) + 0.5).to(type);
  const at::Tensor beta = at::randn({cols}, at::kDouble).to(type);
  const at::Tensor dy = at::randn({rows, cols}, at::kDouble).to(type);
  const Reference ref = reference(x, gamma, beta, dy);
  // Far from zero, the rounding of the mean itself (relative to the offset) bounds
  // what any implementation can reach.
  // Backward cancels (dx = rstd * (g - mean(g) - xhat * mean(g * xhat))), so allow
  // more than one rounding per element.
  const double tol = tolerance(type) * 50 * std::max(1.0, offset);
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    const at::Tensor xb = x.to(b.device), gb = gamma.to(b.device), bb = beta.to(b.device);
    auto [y, mean, rstd] = tn::layer_norm_forward(xb, gb, bb, kEps);
    EXPECT_LE(normalised_error(y, ref.y), tol);
    EXPECT_LE(normalised_error(mean, ref.mean), tol);
    EXPECT_LE(normalised_error(rstd, ref.rstd), tol);
    auto [dx, dgamma, dbeta] = tn::layer_norm_backward(dy.to(b.device), xb, mean, rstd, gb);
    // With one column, dx and dgamma are zero up to rounding (which rstd, about
    // 1 / sqrt(eps), amplifies): compare those against a scale of 1.
    EXPECT_LE(normalised_error(dx, ref.dx, 1.0), tol);
    EXPECT_LE(normalised_error(dgamma, ref.dgamma, 1.0), tol);
    EXPECT_LE(normalised_error(dbeta, ref.dbeta), tol);
  }
}

// Every CPU variant gives the same bits, forward and backward, for row lengths
// that fill whole lanes, leave a tail, or are shorter than one lane group.
TEST(LayerNorm, CpuVariantsGiveTheSameBits) {
  for (int64_t cols : {3, 37, 64})
    for (at::ScalarType type : {at::kFloat, at::kDouble}) {
      SCOPED_TRACE(::testing::Message() << cols << " columns, " << c10::toString(type));
      at::manual_seed(cols);
      const at::Tensor x = at::randn({301, cols}, type) * 3 + 1;
      const at::Tensor gamma = at::rand({cols}, type) + 0.5, beta = at::randn({cols}, type);
      const at::Tensor dy = at::randn({301, cols}, type);
      tandem::testing::expect_same_bits_on_every_cpu_isa([&] {
        auto [y, mean, rstd] = tn::layer_norm_forward(x, gamma, beta, kEps);
        auto [dx, dgamma, dbeta] = tn::layer_norm_backward(dy, x, mean, rstd, gamma);
        return std::vector<at::Tensor>{y, mean, rstd, dx, dgamma, dbeta};
      });
    }
}

TEST(LayerNorm, MatchesAtenForAnyRowLength) {
  // Lengths below, at and off every vector width, and past the CUDA warp path.
  for (int64_t cols : {1, 2, 3, 7, 8, 16, 17, 100, 1000, 1027, 4099}) check(37, cols);
  check(1000, 64);
}

TEST(LayerNorm, Float64) {
  check(33, 13, at::kDouble);
  check(5, 1000, at::kDouble);
}

TEST(LayerNorm, ZeroRowsAndBadInput) {
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    auto [y, mean, rstd] =
        tn::layer_norm_forward(at::zeros({0, 5}, b.device), at::Tensor(), at::Tensor(), kEps);
    EXPECT_EQ(y.numel(), 0);
    EXPECT_EQ(mean.numel(), 0);
    const at::Tensor x = at::randn({3, 5}, b.device);
    EXPECT_THROW(tn::layer_norm_forward(x, at::ones({4}, b.device), at::Tensor(), kEps),
                 tandem::Error);
    EXPECT_THROW(tn::layer_norm_forward(x.to(at::kInt), at::Tensor(), at::Tensor(), kEps),
                 tandem::Error);
  }
}

// Welford keeps the digits that E[x^2] - mean^2 would lose: rows centred at 1e4
// (float64 input) still give the variance of the N(0,1) part exactly enough.
TEST(LayerNorm, RowsFarFromZero) {
  check(16, 999, at::kDouble, 1e4);
  check(16, 999, at::kFloat, 1e3);
  const at::Tensor x = at::randn({4, 4096}, at::kDouble) + 1e8;
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    auto [y, mean, rstd] = tn::layer_norm_forward(x.to(b.device), at::Tensor(), at::Tensor(), 0);
    // Two-pass in float64: the mean's rounding enters the variance squared.
    const at::Tensor var = (x - x.mean(1, true)).pow(2).mean(1);
    EXPECT_LE(normalised_error(rstd.pow(-2), var), 1e-9);
  }
}

TEST(LayerNorm, FiniteDifferenceGradient) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({3, 5}, at::kDouble), g = at::rand({5}, at::kDouble) + 0.5,
                   be = at::randn({5}, at::kDouble), r = at::randn({3, 5}, at::kDouble);
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    // detach(): on the CPU to() returns x itself, which must stay a constant for the
    // next backend.
    const at::Tensor xb = x.to(b.device).detach().requires_grad_(),
                     gb = g.to(b.device).detach().requires_grad_(),
                     bb = be.to(b.device).detach().requires_grad_();
    (tn::layer_norm(xb, gb, bb, kEps) * r.to(b.device)).sum().backward();
    const std::vector<at::Tensor> inputs{x, g, be};
    const std::vector<at::Tensor> analytic{xb.grad(), gb.grad(), bb.grad()};
    for (size_t k = 0; k < inputs.size(); ++k) {
      at::Tensor numeric = at::zeros_like(inputs[k]);
      for (int64_t i = 0; i < inputs[k].numel(); ++i) {
        std::vector<at::Tensor> plus = inputs, minus = inputs;
        plus[k] = plus[k].clone();
        minus[k] = minus[k].clone();
        plus[k].view(-1)[i] += 1e-6;
        minus[k].view(-1)[i] -= 1e-6;
        const auto loss = [&](const std::vector<at::Tensor>& in) {
          return (std::get<0>(tn::layer_norm_forward(in[0].to(b.device), in[1].to(b.device),
                                                     in[2].to(b.device), kEps))
                      .to(at::kCPU) *
                  r)
              .sum()
              .item<double>();
        };
        numeric.view(-1)[i] = (loss(plus) - loss(minus)) / 2e-6;
      }
      EXPECT_LE((analytic[k].to(at::kCPU) - numeric).abs().max().item<double>(), 1e-7)
          << "input " << k;
    }
  }
}

TEST(LayerNorm, ModuleMatchesAtenModule) {
  at::manual_seed(5);
  tn::LayerNorm tandem_ln(24, tn::KernelChoice::kTandem), aten_ln(24, tn::KernelChoice::kAten);
  const at::Tensor x = at::randn({2, 10, 24}).requires_grad_();
  const at::Tensor x2 = x.detach().clone().requires_grad_();
  const at::Tensor y = tandem_ln(x), y2 = aten_ln(x2);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_LE(normalised_error(y, y2), 1e-5);
  const at::Tensor r = at::randn(y.sizes());
  (y * r).sum().backward();
  (y2 * r).sum().backward();
  EXPECT_LE(normalised_error(x.grad(), x2.grad()), 1e-5);
  EXPECT_LE(normalised_error(tandem_ln->weight.grad(), aten_ln->weight.grad()), 1e-5);
  EXPECT_LE(normalised_error(tandem_ln->bias.grad(), aten_ln->bias.grad()), 1e-5);
}

TEST(LayerNorm, BackwardIsDeterministic) {
  at::manual_seed(9);
  const at::Tensor x = at::randn({3000, 77}), dy = at::randn({3000, 77}), g = at::rand({77});
  const int threads = at::get_num_threads();
  for (const Backend& b : kernel_backends()) {
    SCOPED_TRACE(b.name);
    const at::Tensor xb = x.to(b.device), gb = g.to(b.device), dyb = dy.to(b.device);
    auto [y, mean, rstd] = tn::layer_norm_forward(xb, gb, at::Tensor(), kEps);
    at::set_num_threads(1);
    const auto first = tn::layer_norm_backward(dyb, xb, mean, rstd, gb);
    at::set_num_threads(2);
    const auto second = tn::layer_norm_backward(dyb, xb, mean, rstd, gb);
    EXPECT_TRUE(same_bits(std::get<0>(first), std::get<0>(second)));
    EXPECT_TRUE(same_bits(std::get<1>(first), std::get<1>(second)));
    EXPECT_TRUE(same_bits(std::get<2>(first), std::get<2>(second)));
  }
  at::set_num_threads(threads);
}

// The backends against each other: the same inputs on CPU and CUDA.
TEST(LayerNormCuda, MatchesCpu) {
  const std::string why = tandem::testing::cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "CUDA: " << why;
  for (int64_t cols : {16, 1000, 4099}) {
    SCOPED_TRACE(cols);
    at::manual_seed(cols);
    const at::Tensor x = at::randn({300, cols}), g = at::rand({cols}), b = at::randn({cols}),
                     dy = at::randn({300, cols});
    auto [y, mean, rstd] = tn::layer_norm_forward(x, g, b, kEps);
    auto [yc, meanc, rstdc] = tn::layer_norm_forward(x.cuda(), g.cuda(), b.cuda(), kEps);
    EXPECT_LE(normalised_error(yc, y), 1e-5);
    const auto cpu = tn::layer_norm_backward(dy, x, mean, rstd, g);
    const auto gpu = tn::layer_norm_backward(dy.cuda(), x.cuda(), meanc, rstdc, g.cuda());
    EXPECT_LE(normalised_error(std::get<0>(gpu), std::get<0>(cpu)), 1e-4);
    EXPECT_LE(normalised_error(std::get<1>(gpu), std::get<1>(cpu)), 1e-4);
    EXPECT_LE(normalised_error(std::get<2>(gpu), std::get<2>(cpu)), 1e-4);
  }
}

TEST(KernelBackends, Cuda) {
  const std::string why = tandem::testing::cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "CUDA kernel tests skipped: " << why;
  EXPECT_EQ(kernel_backends().size(), 2u);
}

}  // namespace
