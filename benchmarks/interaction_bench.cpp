// The DLRM pairwise interaction, forward and backward, as nn/dlrm.cpp runs it:
// Tandem's kernel (kernels/interaction.h: only the 351 lower-triangle dots of 27
// vectors) against ATen's bmm of the [n, 27, 16] vectors followed by index_select
// of the lower triangle (model.kernels=aten). Interleaved rounds; checks that both
// agree.
//   build/bin/interaction_bench [THREADS=2]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tandem/nn/interaction.h"

namespace {

constexpr int64_t kVectors = 27, kDim = 16, kPairs = kVectors * (kVectors - 1) / 2;

template <class F>
double ms_per_call(int reps, const F& f) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
         reps;
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  std::vector<int64_t> pairs;
  for (int64_t i = 0; i < kVectors; ++i)
    for (int64_t j = 0; j < i; ++j) pairs.push_back(i * kVectors + j);
  const at::Tensor index = at::tensor(pairs, at::kLong);
  std::printf("# interaction forward + backward, %d threads, [n, %ld, %ld]; medians of 5 rounds\n",
              at::get_num_threads(), static_cast<long>(kVectors), static_cast<long>(kDim));
  std::printf("#  batch   aten_ms  tandem_ms   ratio   max|dgrad|\n");
  for (int64_t n : {256, 2048, 8192}) {
    const at::Tensor s = at::randn({n, kVectors, kDim});
    const at::Tensor g = at::randn({n, kPairs});
    at::Tensor a = s.clone().set_requires_grad(true), t = s.clone().set_requires_grad(true);
    auto aten = [&] {
      a.mutable_grad() = at::Tensor();
      const at::Tensor dots = at::bmm(a, a.transpose(1, 2)).flatten(1).index_select(1, index);
      torch::autograd::backward({dots}, {g});
    };
    auto tandem = [&] {
      t.mutable_grad() = at::Tensor();
      torch::autograd::backward({tandem::nn::pairwise_dots(t)}, {g});
    };
    const int reps = std::max<int>(10, 20000 / static_cast<int>(n));
    std::vector<double> ta, tt;
    for (int round = 0; round < 5; ++round) {
      ta.push_back(ms_per_call(reps, aten));
      tt.push_back(ms_per_call(reps, tandem));
    }
    std::sort(ta.begin(), ta.end());
    std::sort(tt.begin(), tt.end());
    const at::Tensor ref = at::bmm(s, s.transpose(1, 2)).flatten(1).index_select(1, index);
    if (!at::allclose(ref, tandem::nn::pairwise_dots(s), 1e-5, 1e-5) ||
        !at::allclose(a.grad(), t.grad(), 1e-4, 1e-4)) {
      std::fprintf(stderr, "interaction_bench: Tandem's kernel disagrees with ATen at batch %ld\n",
                   static_cast<long>(n));
      return 1;
    }
    std::printf("%8ld %9.2f %10.2f %7.2fx %12.2e\n", static_cast<long>(n), ta[2], tt[2],
                ta[2] / tt[2], (a.grad() - t.grad()).abs().max().item<float>());
  }
  return 0;
}
