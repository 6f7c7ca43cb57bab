// GPU benchmark of Tandem's CUDA kernels against torch's CUDA ops on the same
// inputs, in one run, with the device-to-device copy bandwidth measured in the
// same run as the practical memory limit. Prints one markdown table. Built only
// when LibTorch has CUDA; launch/gpu-check.sh runs it.
//   build/bin/kernels_cuda_bench
#include <ATen/ATen.h>
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>
#include <torch/optim/adagrad.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "tandem/nn/embedding_bag.h"
#include "tandem/nn/interaction.h"
#include "tandem/nn/layer_norm.h"
#include "tandem/stats/moments.h"

namespace {

namespace tn = tandem::nn;

// Median milliseconds of `f` over `iters` timed calls (after warm-up), by CUDA
// events on the default stream.
double time_ms(const std::function<void()>& f, int iters = 20) {
  for (int i = 0; i < 3; ++i) f();
  torch::cuda::synchronize();
  std::vector<double> ms;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double copy_gbps = 0;

void row(const std::string& op, const std::string& shape, const std::string& impl, double ms,
         double bytes, double anchor_ms) {
  const double gbps = bytes / (ms * 1e-3) / 1e9;
  fmt::print("| {} | {} | {} | {:.1f} | {:.0f} | {:.0f}% | {} |\n", op, shape, impl, ms * 1e3, gbps,
             100 * gbps / copy_gbps,
             anchor_ms > 0 ? fmt::format("{:.2f}x", anchor_ms / ms) : "anchor");
}

struct Shape {
  const char* name;
  int64_t batch, tables, dim, bag, rows;
};

void embedding(const Shape& sh) {
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const std::string shape =
      fmt::format("{} B={} T={} D={} L={}", sh.name, sh.batch, sh.tables, sh.dim, sh.bag);
  at::manual_seed(1);
  const at::Tensor zipf = 1.0 / at::arange(1, sh.rows + 1, at::kDouble);
  at::Tensor idx = at::empty({sh.tables, sh.batch * sh.bag}, at::kLong);
  for (int64_t t = 0; t < sh.tables; ++t)
    idx[t] = at::randperm(sh.rows).index_select(0, at::multinomial(zipf, sh.batch * sh.bag, true));
  const int64_t n = idx.numel();
  tn::Bags bags;
  bags.indices = idx.view(-1).to(at::kCUDA);
  bags.offsets = at::arange(0, n + 1, sh.bag, cuda.dtype(at::kLong));
  bags.batch = sh.batch;
  const tn::TableLayout layout =
      tn::TableLayout::stacked(std::vector<int64_t>(sh.tables, sh.rows), at::kCUDA);
  const at::Tensor ids =
      (idx + at::arange(sh.tables, at::kLong).unsqueeze(1) * sh.rows).view(-1).to(at::kCUDA);
  const at::Tensor offsets = bags.offsets.narrow(0, 0, n / sh.bag);
  const int64_t unique = std::get<0>(at::_unique(ids)).numel();

  for (at::ScalarType type : {at::kFloat, at::kHalf}) {
    const at::Tensor w = (at::randn({sh.tables * sh.rows, sh.dim}, cuda) * 0.01).to(type);
    const double esize = w.element_size();
    // Rows read + pooled output written (float32 for Tandem, the weight type for torch).
    const double fwd_bytes = n * sh.dim * esize + n * 8.0 + sh.batch * sh.tables * sh.dim * 4.0;
    const double torch_ms = time_ms([&] { at::embedding_bag(w, ids, offsets); });
    const double ours_ms = time_ms([&] { tn::embedding_bag_forward(w, layout, bags); });
    const std::string op = fmt::format("embedding fwd {}", c10::toString(type));
    row(op, shape, "torch", torch_ms, fwd_bytes, 0);
    row(op, shape, "tandem", ours_ms, fwd_bytes, torch_ms);
  }

  // Backward: gradient rows read per position, touched rows written.
  const at::Tensor w = at::randn({sh.tables * sh.rows, sh.dim}, cuda) * 0.01;
  const at::Tensor gout = at::randn({sh.batch, sh.tables * sh.dim}, cuda);
  const at::Tensor gout_torch = gout.view({sh.batch, sh.tables, sh.dim})
                                    .transpose(0, 1)
                                    .reshape({sh.tables * sh.batch, sh.dim});
  const double bwd_bytes = n * sh.dim * 4.0 + n * 8.0 + unique * (sh.dim * 4.0 + 8);
  const double upd_bytes = n * sh.dim * 4.0 + n * 8.0 + unique * (2 * sh.dim * 4.0 + 8);
  for (bool sparse : {true, false}) {
    const at::Tensor wt = w.clone().requires_grad_();
    const double torch_ms = time_ms([&] {
      wt.mutable_grad().reset();
      const at::Tensor out = std::get<0>(at::embedding_bag(wt, ids, offsets, false, 0, sparse));
      out.backward(gout_torch);
    });
    const double fwd_ms = time_ms([&] {
      at::NoGradGuard g;
      at::embedding_bag(wt, ids, offsets, false, 0, sparse);
    });
    row(sparse ? "embedding bwd (sparse grad)" : "embedding bwd (dense grad)", shape,
        "torch (fwd+bwd - fwd)", torch_ms - fwd_ms, bwd_bytes, 0);
    if (sparse) {
      const double ours = time_ms([&] { tn::embedding_bag_backward(gout, w, layout, bags); });
      row("embedding bwd (sparse grad)", shape, "tandem", ours, bwd_bytes, torch_ms - fwd_ms);
    }
  }
  {
    const at::Tensor wt = w.clone().requires_grad_();
    torch::optim::Adagrad opt({wt}, torch::optim::AdagradOptions(0.01));
    const double torch_ms = time_ms([&] {
      opt.zero_grad();
      std::get<0>(at::embedding_bag(wt, ids, offsets, false, 0, true)).backward(gout_torch);
      opt.step();
    });
    const double fwd_ms = time_ms([&] {
      at::NoGradGuard g;
      at::embedding_bag(wt, ids, offsets, false, 0, true);
    });
    at::Tensor ours_w = w.clone();
    const tn::RowOptimizer ropt{tandem::kernels::RowUpdate::kRowwiseAdagrad, 0.01, 1e-8,
                                at::zeros({w.size(0)}, cuda)};
    const double ours =
        time_ms([&] { tn::embedding_bag_backward_update(gout, ours_w, layout, bags, ropt); });
    row("embedding bwd + Adagrad", shape, "torch sparse Adagrad", torch_ms - fwd_ms, upd_bytes, 0);
    row("embedding bwd + Adagrad", shape, "tandem fused row-wise", ours, upd_bytes,
        torch_ms - fwd_ms);
  }
}

void layer_norm(int64_t rows, int64_t cols) {
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const std::string shape = fmt::format("{} x {}", rows, cols);
  const at::Tensor x = at::randn({rows, cols}, cuda), g = at::rand({cols}, cuda),
                   b = at::rand({cols}, cuda), dy = at::randn({rows, cols}, cuda);
  const double fwd_bytes = 2.0 * rows * cols * 4, bwd_bytes = 3.0 * rows * cols * 4;
  const double torch_fwd = time_ms([&] { at::native_layer_norm(x, {cols}, g, b, 1e-5); });
  const double ours_fwd = time_ms([&] { tn::layer_norm_forward(x, g, b, 1e-5); });
  row("layernorm fwd", shape, "torch", torch_fwd, fwd_bytes, 0);
  row("layernorm fwd", shape, "tandem", ours_fwd, fwd_bytes, torch_fwd);
  auto [y, mean, rstd] = at::native_layer_norm(x, {cols}, g, b, 1e-5);
  auto [y2, mean2, rstd2] = tn::layer_norm_forward(x, g, b, 1e-5);
  const double torch_bwd = time_ms([&] {
    at::native_layer_norm_backward(dy, x, {cols}, mean, rstd, g, b, {true, true, true});
  });
  const double ours_bwd = time_ms([&] { tn::layer_norm_backward(dy, x, mean2, rstd2, g); });
  row("layernorm bwd", shape, "torch", torch_bwd, bwd_bytes, 0);
  row("layernorm bwd", shape, "tandem", ours_bwd, bwd_bytes, torch_bwd);
}

// Column moments (stats/): Tandem's one-pass kernel against torch's var_mean and
// against a plain column sum, the memory-bound floor (issue goal: >= 80% of it).
void column_moments(int64_t rows, int64_t cols) {
  const at::Tensor x = at::randn({rows, cols}, at::TensorOptions().device(at::kCUDA)) + 3;
  const std::string shape = fmt::format("{} x {}", rows, cols);
  const double bytes = static_cast<double>(x.nbytes());
  const double sum_ms = time_ms([&] { x.sum(0); });
  const double torch_ms = time_ms([&] { at::var_mean(x, {0}, false); });
  const double ours_ms = time_ms([&] { tandem::stats::Moments::of(x); });
  row("column moments", shape, "torch sum(0) (floor)", sum_ms, bytes, 0);
  row("column moments", shape, "torch var_mean", torch_ms, bytes, 0);
  row("column moments", shape, "tandem", ours_ms, bytes, torch_ms);
  fmt::print("| column moments | {} | tandem / sum(0) throughput | | | | {:.2f} |\n", shape,
             sum_ms / ours_ms);
}

// DLRM's pairwise interaction (nn/interaction.h), forward and forward + backward,
// against ATen's bmm(x, x^T) + index_select of the lower triangle (what
// model.kernels=aten runs). Bytes: x and the dots once forward; backward adds
// the dots' gradient read and dx written.
void interaction(int64_t n, int64_t vectors, int64_t dim) {
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const std::string shape = fmt::format("{} x {} x {}", n, vectors, dim);
  std::vector<int64_t> lower;
  for (int64_t i = 0; i < vectors; ++i)
    for (int64_t j = 0; j < i; ++j) lower.push_back(i * vectors + j);
  const at::Tensor index = at::tensor(lower, at::kLong).to(at::kCUDA);
  const int64_t pairs = static_cast<int64_t>(lower.size());
  const at::Tensor x = at::randn({n, vectors, dim}, cuda), g = at::randn({n, pairs}, cuda);
  auto aten = [&](const at::Tensor& v) {
    return at::bmm(v, v.transpose(1, 2)).flatten(1).index_select(1, index);
  };
  const double fwd_bytes = (n * vectors * dim + n * pairs) * 4.0;
  const double bwd_bytes = fwd_bytes + (n * pairs + 2.0 * n * vectors * dim) * 4.0;
  {
    at::NoGradGuard no_grad;
    if (!at::allclose(aten(x), tn::pairwise_dots(x), 1e-4, 1e-4)) {
      fmt::print("| interaction | {} | tandem DISAGREES with ATen | | | | |\n", shape);
      return;
    }
    const double torch_ms = time_ms([&] { aten(x); });
    const double ours_ms = time_ms([&] { tn::pairwise_dots(x); });
    row("interaction fwd", shape, "torch bmm + index_select", torch_ms, fwd_bytes, 0);
    row("interaction fwd", shape, "tandem", ours_ms, fwd_bytes, torch_ms);
  }
  at::Tensor a = x.clone().requires_grad_(), t = x.clone().requires_grad_();
  const double torch_ms = time_ms([&] {
    a.mutable_grad() = at::Tensor();
    torch::autograd::backward({aten(a)}, {g});
  });
  const double ours_ms = time_ms([&] {
    t.mutable_grad() = at::Tensor();
    torch::autograd::backward({tn::pairwise_dots(t)}, {g});
  });
  row("interaction fwd + bwd", shape, "torch bmm + index_select", torch_ms, bwd_bytes, 0);
  row("interaction fwd + bwd", shape, "tandem", ours_ms, bwd_bytes, torch_ms);
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    fmt::print("kernels_cuda_bench: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  const at::Tensor src = at::empty({int64_t{1} << 28}, at::TensorOptions().device(at::kCUDA));
  at::Tensor dst = at::empty_like(src);
  const double copy_ms = time_ms([&] { dst.copy_(src); });
  copy_gbps = 2.0 * src.nbytes() / (copy_ms * 1e-3) / 1e9;
  fmt::print("device: {}; device-to-device copy (1 GiB): {:.0f} GB/s = 100%\n\n", prop.name,
             copy_gbps);
  fmt::print("| op | shape | impl | time (us) | GB/s | of copy | vs torch |\n");
  fmt::print("|---|---|---|---|---|---|---|\n");
  embedding({"fbgemm", 512, 32, 128, 20, 100000});
  embedding({"fbgemm x8", 4096, 32, 128, 20, 100000});
  embedding({"dlrm_kaggle", 2048, 26, 16, 1, 100000});
  embedding({"dlrm_kaggle x8", 16384, 26, 16, 1, 100000});
  layer_norm(65536, 1024);
  layer_norm(262144, 256);
  layer_norm(16384, 4096);
  layer_norm(1 << 20, 16);
  column_moments(1000000, 64);
  interaction(16384, 27, 16);  // the quickstart model at batch 16384
  interaction(262144, 27, 16);
  return 0;
}
