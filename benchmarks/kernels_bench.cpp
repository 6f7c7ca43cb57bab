// Google Benchmark of Tandem's CPU kernels against ATen's ops on the same inputs,
// in one run (the anchor: "aten" entries). kernel_table.py turns the JSON output
// into a table of time, effective GB/s and ratio against ATen.
//
// Shapes: FBGEMM's TBE defaults (B=512, T=32, D=128, L=20, 1e5 rows per table,
// Zipf alpha=1.0) and the DLRM Criteo-Kaggle lookup (B=2048, T=26, D=16, L=1),
// each also with 1000 rows per table ("cached": the tables fit in the L3 cache, so
// the kernels' own instruction cost shows instead of DRAM latency).
// Backward + optimizer compares Tandem's fused row-wise Adagrad with ATen's
// embedding_bag backward followed by LibTorch's Adagrad step, with dense gradients
// (what ATen's default touches: the whole table) and with sparse ones.
//   build/bin/kernels_bench --benchmark_format=json | benchmarks/kernel_table.py
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/optim/adagrad.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "tandem/nn/embedding_bag.h"
#include "tandem/nn/layer_norm.h"
#include "tandem/stats/moments.h"

namespace {

namespace tn = tandem::nn;

struct Shape {
  const char* name;
  int64_t batch, tables, dim, bag, rows;
};
const Shape kShapes[] = {{"fbgemm", 512, 32, 128, 20, 100000},
                         {"dlrm_kaggle", 2048, 26, 16, 1, 100000},
                         {"fbgemm_cached", 512, 32, 128, 20, 1000},
                         {"dlrm_cached", 2048, 26, 16, 1, 1000}};

// One shape's inputs, built once: Zipf(1.0) rows scattered by a permutation (as
// hashing scatters hot ids), table-major bags of fixed length.
struct Problem {
  at::Tensor weight;  // [T * rows, dim]
  tn::TableLayout layout;
  tn::Bags bags;
  at::Tensor global_ids;  // indices + table offset, for ATen
  at::Tensor grad_out;
  int64_t unique_rows = 0;
};

Problem& problem(int s) {
  static std::map<int, std::unique_ptr<Problem>> cache;
  auto& slot = cache[s];
  if (slot) return *slot;
  const Shape& sh = kShapes[s];
  at::manual_seed(1);
  slot = std::make_unique<Problem>();
  Problem& p = *slot;
  p.weight = at::randn({sh.tables * sh.rows, sh.dim}) * 0.01;
  p.layout = tn::TableLayout::stacked(std::vector<int64_t>(sh.tables, sh.rows), at::kCPU);
  const at::Tensor zipf = 1.0 / at::arange(1, sh.rows + 1, at::kDouble);
  const int64_t n = sh.batch * sh.tables * sh.bag;
  at::Tensor idx = at::empty({sh.tables, sh.batch * sh.bag}, at::kLong);
  for (int64_t t = 0; t < sh.tables; ++t)
    idx[t] = at::randperm(sh.rows).index_select(0, at::multinomial(zipf, sh.batch * sh.bag, true));
  p.bags.indices = idx.view(-1).contiguous();
  p.bags.offsets = at::arange(0, n + 1, sh.bag, at::kLong);
  p.bags.batch = sh.batch;
  p.global_ids = (idx + at::arange(sh.tables, at::kLong).unsqueeze(1) * sh.rows).view(-1);
  p.grad_out = at::randn({sh.batch, sh.tables * sh.dim});
  p.unique_rows = std::get<0>(at::_unique(p.global_ids)).numel();
  return p;
}

void bytes(benchmark::State& st, double per_iter) {
  st.counters["GB/s"] = benchmark::Counter(per_iter * static_cast<double>(st.iterations()) / 1e9,
                                           benchmark::Counter::kIsRate);
}

// Rows read + output written (+ indices).
double forward_bytes(const Shape& sh) {
  const double n = sh.batch * sh.tables * sh.bag;
  return n * sh.dim * 4 + n * 8 + sh.batch * sh.tables * sh.dim * 4.0;
}

void BM_EmbeddingForward_tandem(benchmark::State& st) {
  Problem& p = problem(st.range(0));
  for (auto _ : st) benchmark::DoNotOptimize(tn::embedding_bag_forward(p.weight, p.layout, p.bags));
  bytes(st, forward_bytes(kShapes[st.range(0)]));
}

void BM_EmbeddingForward_aten(benchmark::State& st) {
  Problem& p = problem(st.range(0));
  const at::Tensor offsets = p.bags.offsets.narrow(0, 0, p.bags.offsets.numel() - 1);
  for (auto _ : st)
    benchmark::DoNotOptimize(std::get<0>(at::embedding_bag(p.weight, p.global_ids, offsets)));
  bytes(st, forward_bytes(kShapes[st.range(0)]));
}

// grad_out rows read per position + each touched row's weight read and written
// and its state read and written.
double update_bytes(const Shape& sh, const Problem& p) {
  const double n = sh.batch * sh.tables * sh.bag;
  return n * sh.dim * 4 + n * 8 + p.unique_rows * (2.0 * sh.dim * 4 + 8);
}

void BM_EmbeddingBackwardAdagrad_tandem(benchmark::State& st) {
  Problem& p = problem(st.range(0));
  at::Tensor w = p.weight.clone();
  const tn::RowOptimizer opt{tandem::kernels::RowUpdate::kRowwiseAdagrad, 0.01, 1e-8,
                             at::zeros({w.size(0)})};
  for (auto _ : st) tn::embedding_bag_backward_update(p.grad_out, w, p.layout, p.bags, opt);
  bytes(st, update_bytes(kShapes[st.range(0)], p));
}

// Unfused: the row-wise sparse gradient, then the row-wise update (the path of a
// multi-rank step, where the gradient is exchanged in between).
void BM_EmbeddingBackwardAdagrad_tandem_unfused(benchmark::State& st) {
  Problem& p = problem(st.range(0));
  at::Tensor w = p.weight.clone();
  const tn::RowOptimizer opt{tandem::kernels::RowUpdate::kRowwiseAdagrad, 0.01, 1e-8,
                             at::zeros({w.size(0)})};
  for (auto _ : st) {
    auto [rows, grads] = tn::embedding_bag_backward(p.grad_out, w, p.layout, p.bags);
    tn::rowwise_update(w, opt, rows, grads);
  }
  bytes(st, update_bytes(kShapes[st.range(0)], p));
}

// ATen: embedding_bag's backward through autograd, then LibTorch's Adagrad.
void aten_backward_adagrad(benchmark::State& st, bool sparse) {
  Problem& p = problem(st.range(0));
  at::Tensor w = p.weight.clone().requires_grad_();
  torch::optim::Adagrad opt({w}, torch::optim::AdagradOptions(0.01).eps(1e-8));
  const at::Tensor offsets = p.bags.offsets.narrow(0, 0, p.bags.offsets.numel() - 1);
  const Shape& sh = kShapes[st.range(0)];
  for (auto _ : st) {
    st.PauseTiming();  // the forward is not part of this measurement
    opt.zero_grad();
    const at::Tensor out =
        std::get<0>(at::embedding_bag(w, p.global_ids, offsets, false, 0, sparse));
    const at::Tensor g = p.grad_out.view({sh.batch, sh.tables, sh.dim})
                             .transpose(0, 1)
                             .reshape({sh.tables * sh.batch, sh.dim});
    st.ResumeTiming();
    out.backward(g);
    opt.step();
  }
  bytes(st, update_bytes(sh, p));
}
void BM_EmbeddingBackwardAdagrad_aten_dense(benchmark::State& st) {
  aten_backward_adagrad(st, false);
}
void BM_EmbeddingBackwardAdagrad_aten_sparse(benchmark::State& st) {
  aten_backward_adagrad(st, true);
}

// LayerNorm: [rows, cols] float32.
struct LnShape {
  int64_t rows, cols;
};
const LnShape kLn[] = {{16384, 256}, {4096, 1024}, {65536, 16}};

void BM_LayerNormForward_tandem(benchmark::State& st) {
  const LnShape s = kLn[st.range(0)];
  const at::Tensor x = at::randn({s.rows, s.cols}), g = at::rand({s.cols}), b = at::rand({s.cols});
  for (auto _ : st) benchmark::DoNotOptimize(tn::layer_norm_forward(x, g, b, 1e-5));
  bytes(st, 2.0 * s.rows * s.cols * 4);
}
void BM_LayerNormForward_aten(benchmark::State& st) {
  const LnShape s = kLn[st.range(0)];
  const at::Tensor x = at::randn({s.rows, s.cols}), g = at::rand({s.cols}), b = at::rand({s.cols});
  for (auto _ : st) benchmark::DoNotOptimize(at::native_layer_norm(x, {s.cols}, g, b, 1e-5));
  bytes(st, 2.0 * s.rows * s.cols * 4);
}
void BM_LayerNormBackward_tandem(benchmark::State& st) {
  const LnShape s = kLn[st.range(0)];
  const at::Tensor x = at::randn({s.rows, s.cols}), g = at::rand({s.cols}), b = at::rand({s.cols});
  const at::Tensor dy = at::randn({s.rows, s.cols});
  auto [y, mean, rstd] = tn::layer_norm_forward(x, g, b, 1e-5);
  for (auto _ : st) benchmark::DoNotOptimize(tn::layer_norm_backward(dy, x, mean, rstd, g));
  bytes(st, 3.0 * s.rows * s.cols * 4);
}
void BM_LayerNormBackward_aten(benchmark::State& st) {
  const LnShape s = kLn[st.range(0)];
  const at::Tensor x = at::randn({s.rows, s.cols}), g = at::rand({s.cols}), b = at::rand({s.cols});
  const at::Tensor dy = at::randn({s.rows, s.cols});
  auto [y, mean, rstd] = at::native_layer_norm(x, {s.cols}, g, b, 1e-5);
  for (auto _ : st)
    benchmark::DoNotOptimize(
        at::native_layer_norm_backward(dy, x, {s.cols}, mean, rstd, g, b, {true, true, true}));
  bytes(st, 3.0 * s.rows * s.cols * 4);
}

// Column moments of [1e6, 64] float32 (stats/): Tandem's one-pass kernel against
// ATen's var_mean (two-pass) and against a plain column sum (the memory-bound floor).
const at::Tensor& moments_input() {
  static const at::Tensor x = at::randn({1000000, 64}) + 3;
  return x;
}
void BM_ColumnMoments_tandem(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(tandem::stats::Moments::of(moments_input()));
  bytes(st, static_cast<double>(moments_input().nbytes()));
}
void BM_ColumnMoments_aten_var_mean(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(at::var_mean(moments_input(), {0}, false));
  bytes(st, static_cast<double>(moments_input().nbytes()));
}
void BM_ColumnMoments_aten_sum(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(moments_input().sum(0));
  bytes(st, static_cast<double>(moments_input().nbytes()));
}

// A multi-hot batch through the tables module (what training runs): 26 one-id
// tables plus one multi-hot table of up to 8 ids (0-8 each, uniform), averaged,
// B=2048, D=16, 1000 rows per table. Forward and backward with the fused row-wise
// Adagrad. Tandem pads each bag to 8 slots (weight 0 beyond its ids); the anchor
// is ATen's embedding_bag on the same ids without padding (variable-length bags,
// the mean as per-sample weights 1/L), then LibTorch's sparse Adagrad.
struct MultiHot {
  tn::TableBatchedEmbedding module{nullptr}, one_id{nullptr};
  at::Tensor slots;      // [B, 26 + 8], -1 = no id
  at::Tensor first_ids;  // [B, 27]: one id per table (a bag's first, or 0)
  at::Tensor weight, ids, offsets, psw, grad_out;  // the anchor's compacted bags
};
MultiHot& multi_hot() {
  static std::unique_ptr<MultiHot> m;
  if (m) return *m;
  constexpr int64_t B = 2048, T = 27, D = 16, kMax = 8, kRows = 1000;
  at::manual_seed(2);
  m = std::make_unique<MultiHot>();
  tn::TableBatchedEmbeddingOptions o;
  o.table_rows.assign(T, kRows);
  o.dim = D;
  o.bag_sizes.assign(T, 1);
  o.bag_sizes.back() = kMax;
  o.mean_bags.assign(T, false);
  o.mean_bags.back() = true;
  m->module = tn::TableBatchedEmbedding(o);
  o.bag_sizes.clear();
  o.mean_bags.clear();
  m->one_id = tn::TableBatchedEmbedding(o);
  for (auto* t : {&m->module, &m->one_id}) {
    (*t)->set_optimizer(tandem::kernels::RowUpdate::kRowwiseAdagrad, 1e-8, /*fused=*/true);
    (*t)->set_learning_rate(0.01);
  }
  m->slots = at::randint(kRows, {B, T - 1 + kMax}, at::kLong);
  const at::Tensor count = at::randint(kMax + 1, {B}, at::kLong);
  m->slots.narrow(1, T - 1, kMax)
      .masked_fill_(at::arange(kMax).view({1, kMax}) >= count.view({B, 1}), -1);
  m->first_ids = m->slots.narrow(1, 0, T).clamp_min(0).contiguous();
  // The anchor's sample-major bags: 26 of one id, then the multi-hot one.
  std::vector<int64_t> ids, offsets;
  std::vector<float> psw;
  const at::Tensor s = m->slots.contiguous();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      offsets.push_back(static_cast<int64_t>(ids.size()));
      const int64_t first = t < T - 1 ? t : T - 1, n = t < T - 1 ? 1 : count[b].item<int64_t>();
      for (int64_t j = 0; j < n; ++j) {
        ids.push_back(s[b][first + j].item<int64_t>() + t * kRows);
        psw.push_back(t < T - 1 ? 1.0f : 1.0f / static_cast<float>(n));
      }
    }
  }
  m->weight = m->module->weight.detach().clone();
  m->ids = at::tensor(ids, at::kLong);
  m->offsets = at::tensor(offsets, at::kLong);
  m->psw = at::tensor(psw, at::kFloat);
  m->grad_out = at::randn({B, T, D});
  return *m;
}
void BM_MultiHotTrainStep_tandem(benchmark::State& st) {
  MultiHot& m = multi_hot();
  for (auto _ : st) m.module->forward(m.slots).backward(m.grad_out);
}
// The same step with one id per table: what the multi-hot table adds.
void BM_MultiHotTrainStep_tandem_one_id(benchmark::State& st) {
  MultiHot& m = multi_hot();
  for (auto _ : st) m.one_id->forward(m.first_ids).backward(m.grad_out);
}
void BM_MultiHotTrainStep_aten(benchmark::State& st) {
  MultiHot& m = multi_hot();
  at::Tensor w = m.weight.clone().requires_grad_();
  torch::optim::Adagrad opt({w}, torch::optim::AdagradOptions(0.01).eps(1e-8));
  const at::Tensor g = m.grad_out.view({-1, m.grad_out.size(2)});
  for (auto _ : st) {
    opt.zero_grad();
    std::get<0>(at::embedding_bag(w, m.ids, m.offsets, false, 0, true, m.psw)).backward(g);
    opt.step();
  }
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgName("shape")->DenseRange(0, 3)->Unit(benchmark::kMicrosecond)->UseRealTime();
}
void ln_shapes(benchmark::internal::Benchmark* b) {
  b->ArgName("shape")->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_EmbeddingForward_tandem)->Apply(shapes);
BENCHMARK(BM_EmbeddingForward_aten)->Apply(shapes);
BENCHMARK(BM_EmbeddingBackwardAdagrad_tandem)->Apply(shapes);
BENCHMARK(BM_EmbeddingBackwardAdagrad_tandem_unfused)->Apply(shapes);
BENCHMARK(BM_EmbeddingBackwardAdagrad_aten_sparse)->Apply(shapes);
BENCHMARK(BM_EmbeddingBackwardAdagrad_aten_dense)->Apply(shapes)->Iterations(3);
BENCHMARK(BM_MultiHotTrainStep_tandem)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MultiHotTrainStep_tandem_one_id)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MultiHotTrainStep_aten)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_LayerNormForward_tandem)->Apply(ln_shapes);
BENCHMARK(BM_LayerNormForward_aten)->Apply(ln_shapes);
BENCHMARK(BM_LayerNormBackward_tandem)->Apply(ln_shapes);
BENCHMARK(BM_LayerNormBackward_aten)->Apply(ln_shapes);
BENCHMARK(BM_ColumnMoments_tandem)
    ->Arg(0)
    ->ArgName("shape")
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_ColumnMoments_aten_var_mean)
    ->Arg(0)
    ->ArgName("shape")
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_ColumnMoments_aten_sum)
    ->Arg(0)
    ->ArgName("shape")
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // Threads: TANDEM_BENCH_THREADS, else every core.
  const char* env = std::getenv("TANDEM_BENCH_THREADS");
  at::set_num_threads(env ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency()));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
