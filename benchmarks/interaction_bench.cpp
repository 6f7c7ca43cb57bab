// Where the CPU step goes: the DLRM pairwise interaction (nn/dlrm.cpp: bmm of the
// [n, 27, 16] stacked vectors, then the 351 lower-triangle dots by index_select),
// forward and backward through LibTorch, against the same dots and gradient as
// plain loops over the 351 pairs (what a fused kernel would compute; not yet in
// kernels/). Interleaved rounds, 2 intra-op threads; checks that both agree.
//   build/bin/interaction_bench [THREADS=2]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr int64_t kVectors = 27, kDim = 16, kPairs = kVectors * (kVectors - 1) / 2;

// out[r, k] = <x_i, x_j> over the pairs (i > j) in row-major order; grad_x from g.
void loops(const at::Tensor& s, const at::Tensor& g, at::Tensor& out, at::Tensor& grad) {
  const float* S = s.data_ptr<float>();
  const float* G = g.data_ptr<float>();
  float* O = out.data_ptr<float>();
  float* GS = grad.data_ptr<float>();
  at::parallel_for(0, s.size(0), 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = S + r * kVectors * kDim;
      const float* gr = G + r * kPairs;
      float* o = O + r * kPairs;
      float* gx = GS + r * kVectors * kDim;
      std::fill(gx, gx + kVectors * kDim, 0.f);
      int64_t k = 0;
      for (int64_t i = 0; i < kVectors; ++i)
        for (int64_t j = 0; j < i; ++j, ++k) {
          float acc = 0;
          for (int64_t c = 0; c < kDim; ++c) acc += x[i * kDim + c] * x[j * kDim + c];
          o[k] = acc;
          for (int64_t c = 0; c < kDim; ++c) {
            gx[i * kDim + c] += gr[k] * x[j * kDim + c];
            gx[j * kDim + c] += gr[k] * x[i * kDim + c];
          }
        }
    }
  });
}

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
  std::printf("#  batch   aten_ms  loops_ms   ratio   max|dgrad|\n");
  for (int64_t n : {256, 2048, 8192}) {
    const at::Tensor s = at::randn({n, kVectors, kDim});
    const at::Tensor g = at::randn({n, kPairs});
    at::Tensor v = s.clone().set_requires_grad(true);
    at::Tensor out = at::empty({n, kPairs}), grad = at::empty({n, kVectors, kDim});
    auto aten = [&] {
      v.mutable_grad() = at::Tensor();
      const at::Tensor dots = at::bmm(v, v.transpose(1, 2)).flatten(1).index_select(1, index);
      torch::autograd::backward({dots}, {g});
    };
    auto fused = [&] { loops(s, g, out, grad); };
    const int reps = std::max<int>(10, 20000 / static_cast<int>(n));
    std::vector<double> a, f;
    for (int round = 0; round < 5; ++round) {
      a.push_back(ms_per_call(reps, aten));
      f.push_back(ms_per_call(reps, fused));
    }
    std::sort(a.begin(), a.end());
    std::sort(f.begin(), f.end());
    aten();
    fused();
    const at::Tensor ref = at::bmm(s, s.transpose(1, 2)).flatten(1).index_select(1, index);
    if (!at::allclose(ref, out, 1e-5, 1e-5) || !at::allclose(v.grad(), grad, 1e-4, 1e-4)) {
      std::fprintf(stderr, "interaction_bench: the loops disagree with ATen at batch %ld\n",
                   static_cast<long>(n));
      return 1;
    }
    std::printf("%8ld %9.2f %9.2f %7.2fx %12.2e\n", static_cast<long>(n), a[2], f[2], a[2] / f[2],
                (v.grad() - grad).abs().max().item<float>());
  }
  return 0;
}
