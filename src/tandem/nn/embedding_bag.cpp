#include "tandem/nn/embedding_bag.h"

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <thread>

#include "tandem/data/schema.h"
#include "tandem/nn/kernel_bridge.h"
#include "tandem/util/error.h"
#include "tandem/util/hash.h"

namespace tandem::nn {
namespace {

using kernels::DType;

DType accumulate_dtype(const at::Tensor& weight) {
  return kernels::accumulate_type(kernel_dtype(weight, "embedding_bag weight"));
}

kernels::EmbeddingBags describe(const at::Tensor& weight, const TableLayout& layout,
                                const Bags& bags) {
  const c10::Device dev = weight.device();
  require_on(weight, dev, "embedding_bag weight");
  if (weight.dim() != 2 || !at::isFloatingType(weight.scalar_type()))
    throw Error("embedding_bag: weight must be a floating-point [rows, dim] tensor");
  for (const auto& [t, what] : {std::pair{layout.row_offsets, "embedding_bag row_offsets"},
                                std::pair{layout.rows, "embedding_bag rows"}}) {
    require_on(t, dev, what);
    if (t.scalar_type() != at::kLong || t.dim() != 1 || t.numel() != layout.tables())
      throw Error(fmt::format("{}: must be int64 [tables]", what));
  }
  require_on(bags.indices, dev, "embedding_bag indices");
  require_on(bags.offsets, dev, "embedding_bag offsets");
  const DType index_type = kernel_dtype(bags.indices, "embedding_bag indices");
  if ((index_type != DType::kInt32 && index_type != DType::kInt64) ||
      bags.offsets.scalar_type() != bags.indices.scalar_type())
    throw Error("embedding_bag: indices and offsets must both be int32 or both int64");
  if (bags.indices.dim() != 1 || bags.offsets.dim() != 1)
    throw Error("embedding_bag: indices and offsets must be 1-D");
  if (bags.batch < 0 || bags.offsets.numel() != layout.tables() * bags.batch + 1)
    throw Error(fmt::format("embedding_bag: {} offsets for {} tables x batch {}; expected {}",
                            bags.offsets.numel(), layout.tables(), bags.batch,
                            layout.tables() * bags.batch + 1));
  kernels::EmbeddingBags e;
  e.weight = weight.data_ptr();
  e.weight_type = kernel_dtype(weight, "embedding_bag weight");
  e.total_rows = weight.size(0);
  e.dim = weight.size(1);
  e.tables = layout.tables();
  e.batch = bags.batch;
  e.row_offsets = layout.row_offsets.data_ptr<int64_t>();
  e.rows = layout.rows.data_ptr<int64_t>();
  e.indices = bags.indices.data_ptr();
  e.offsets = bags.offsets.data_ptr();
  e.index_type = index_type;
  e.num_indices = bags.indices.numel();
  e.pooling = bags.pooling;
  if (bags.per_sample_weights.defined()) {
    const at::Tensor& w = bags.per_sample_weights;
    require_on(w, dev, "embedding_bag per_sample_weights");
    if (w.scalar_type() != scalar_type(kernels::accumulate_type(e.weight_type)) ||
        w.numel() != e.num_indices)
      throw Error(fmt::format("embedding_bag: per_sample_weights must be {} [indices]",
                              kernels::dtype_name(kernels::accumulate_type(e.weight_type))));
    if (bags.pooling != kernels::Pooling::kSum)
      throw Error("embedding_bag: per_sample_weights need sum pooling");
    if (w.requires_grad())
      throw Error("embedding_bag: per_sample_weights are constants here (no gradient)");
    e.per_sample_weights = w.data_ptr();
  }
  return e;
}

// The one-line error for the lowest bad bag the kernel reported.
[[noreturn]] void bad_bag(const kernels::EmbeddingBags& e, const Bags& bags,
                          const TableLayout& layout, int64_t bag) {
  const int64_t t = bag / e.batch, sample = bag % e.batch;
  const at::Tensor range = bags.offsets.narrow(0, bag, 2).to(at::kCPU, at::kLong);
  const int64_t begin = range[0].item<int64_t>(), end = range[1].item<int64_t>();
  if (begin < 0 || end < begin || end > e.num_indices)
    throw DataError(fmt::format(
        "embedding_bag: table {}, bag {} (sample {}): offsets [{}, {}) are out of order or "
        "outside the {} indices",
        t, bag, sample, begin, end, e.num_indices));
  const int64_t rows = layout.rows[t].item<int64_t>();
  const at::Tensor ids = bags.indices.narrow(0, begin, end - begin).to(at::kCPU, at::kLong);
  for (int64_t k = 0; k < ids.numel(); ++k) {
    const int64_t v = ids[k].item<int64_t>();
    if (v < 0 || v >= rows)
      throw DataError(fmt::format(
          "embedding_bag: table {}, bag {} (sample {}), position {}: index {} is outside the "
          "table's {} rows",
          t, bag, sample, begin + k, v, rows));
  }
  throw DataError(fmt::format("embedding_bag: table {}, bag {}: invalid bag", t, bag));
}

kernels::RowOptimizer kernel_optimizer(at::Tensor& weight, const RowOptimizer& opt) {
  kernels::RowOptimizer k;
  k.update = opt.update;
  k.lr = opt.lr;
  k.eps = opt.eps;
  k.weight = weight.data_ptr();
  if (opt.update == kernels::RowUpdate::kRowwiseAdagrad) {
    require_on(opt.state, weight.device(), "row-wise Adagrad state");
    if (opt.state.numel() != weight.size(0) ||
        opt.state.scalar_type() != scalar_type(accumulate_dtype(weight)))
      throw Error("row-wise Adagrad state must be [rows] of the weight's accumulate dtype");
    k.state = opt.state.data_ptr();
  }
  return k;
}

at::Tensor device_workspace(size_t bytes, const c10::Device& dev) {
  return at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).device(dev));
}

}  // namespace

TableLayout TableLayout::stacked(const std::vector<int64_t>& table_rows,
                                 const c10::Device& device) {
  std::vector<int64_t> offsets;
  int64_t at = 0;
  for (int64_t r : table_rows) {
    offsets.push_back(at);
    at += r;
  }
  return {at::tensor(offsets, at::kLong).to(device), at::tensor(table_rows, at::kLong).to(device),
          true};
}

// The CUDA kernel's flag holds the lowest bad bag, or INT64_MAX.
constexpr int64_t kNoBadBag = INT64_MAX;

struct DeferredBagCheck::Pending {
  explicit Pending(c10::DeviceType type) : copied(type) {}
  c10::Event copied;  ///< the flag's copy to host_ has landed
  kernels::EmbeddingBags e;
  Bags bags;  ///< held, so the error can name the bag's indices
  TableLayout layout;
};

DeferredBagCheck::DeferredBagCheck() = default;
DeferredBagCheck::~DeferredBagCheck() = default;

void DeferredBagCheck::check() {
  if (!pending_) return;
  const std::unique_ptr<Pending> p = std::move(pending_);
  // (LibTorch 1.13's c10::Event cannot wait; the copy is normally long done.)
  while (!p->copied.query()) std::this_thread::yield();
  if (const int64_t v = host_.data_ptr<int64_t>()[0]; v != kNoBadBag)
    bad_bag(p->e, p->bags, p->layout, v);
}

void DeferredBagCheck::defer(const at::Tensor& flag, const kernels::EmbeddingBags& e,
                             const Bags& bags, const TableLayout& layout) {
  check();
  if (!host_.defined()) host_ = at::empty({1}, at::kLong).pin_memory();
  host_.copy_(flag, /*non_blocking=*/true);
  auto p = std::make_unique<Pending>(flag.device().type());
  p->copied.record(c10::impl::VirtualGuardImpl(flag.device().type()).getStream(flag.device()));
  p->e = e;
  p->bags = bags;
  p->layout = layout;
  pending_ = std::move(p);
}

at::Tensor embedding_bag_forward(const at::Tensor& weight, const TableLayout& layout,
                                 const Bags& bags, DeferredBagCheck* deferred) {
  const kernels::EmbeddingBags e = describe(weight, layout, bags);
  at::Tensor out = at::empty({e.batch, e.tables * e.dim},
                             weight.options().dtype(scalar_type(accumulate_dtype(weight))));
  int64_t bad = -1;
  if (weight.is_cpu()) {
    bad = kernels::embedding_bag_forward_cpu(e, out.data_ptr());
  } else {
    const cudaStream_t stream = cuda_stream(weight.device());
    at::Tensor flag = at::full({1}, kNoBadBag, weight.options().dtype(at::kLong));
    kernels::embedding_bag_forward_cuda(e, out.data_ptr(), flag.data_ptr<int64_t>(), stream);
    if (deferred) {
      deferred->defer(flag, e, bags, layout);
      return out;
    }
    const int64_t v = flag.item<int64_t>();
    bad = v == kNoBadBag ? -1 : v;
  }
  if (bad >= 0) bad_bag(e, bags, layout, bad);
  return out;
}

std::pair<at::Tensor, at::Tensor> embedding_bag_backward(const at::Tensor& grad_out,
                                                         const at::Tensor& weight,
                                                         const TableLayout& layout,
                                                         const Bags& bags) {
  const kernels::EmbeddingBags e = describe(weight, layout, bags);
  const at::Tensor g = grad_out.contiguous();
  const auto acc = scalar_type(accumulate_dtype(weight));
  if (g.scalar_type() != acc || g.numel() != e.batch * e.tables * e.dim)
    throw Error("embedding_bag backward: grad_out must match the forward output");
  at::Tensor rows = at::empty({e.num_indices}, weight.options().dtype(at::kLong));
  at::Tensor grads = at::empty({e.num_indices, e.dim}, weight.options().dtype(acc));
  int64_t n = 0;
  if (weight.is_cpu()) {
    n = kernels::embedding_bag_backward_cpu(e, g.data_ptr(), {}, rows.data_ptr<int64_t>(),
                                            grads.data_ptr());
  } else {
    const size_t bytes = kernels::embedding_bag_backward_cuda_workspace(e);
    at::Tensor ws = device_workspace(bytes, weight.device());
    at::Tensor count = at::empty({1}, weight.options().dtype(at::kLong));
    kernels::embedding_bag_backward_cuda(e, g.data_ptr(), {}, rows.data_ptr<int64_t>(),
                                         grads.data_ptr(), count.data_ptr<int64_t>(), ws.data_ptr(),
                                         bytes, cuda_stream(weight.device()));
    n = count.item<int64_t>();
  }
  return {rows.narrow(0, 0, n), grads.narrow(0, 0, n)};
}

void embedding_bag_backward_update(const at::Tensor& grad_out, at::Tensor& weight,
                                   const TableLayout& layout, const Bags& bags,
                                   const RowOptimizer& opt) {
  if (opt.update == kernels::RowUpdate::kNone)
    throw Error("embedding_bag_backward_update: no update given");
  const kernels::EmbeddingBags e = describe(weight, layout, bags);
  const at::Tensor g = grad_out.contiguous();
  if (g.scalar_type() != scalar_type(accumulate_dtype(weight)) ||
      g.numel() != e.batch * e.tables * e.dim)
    throw Error("embedding_bag backward: grad_out must match the forward output");
  const kernels::RowOptimizer k = kernel_optimizer(weight, opt);
  if (weight.is_cpu()) {
    kernels::embedding_bag_backward_cpu(e, g.data_ptr(), k, nullptr, nullptr);
    return;
  }
  const size_t bytes = kernels::embedding_bag_backward_cuda_workspace(e);
  at::Tensor ws = device_workspace(bytes, weight.device());
  at::Tensor count = at::empty({1}, weight.options().dtype(at::kLong));
  kernels::embedding_bag_backward_cuda(e, g.data_ptr(), k, nullptr, nullptr,
                                       count.data_ptr<int64_t>(), ws.data_ptr(), bytes,
                                       cuda_stream(weight.device()));
}

void rowwise_update(at::Tensor& weight, const RowOptimizer& opt, const at::Tensor& rows,
                    const at::Tensor& grads) {
  require_on(weight, weight.device(), "rowwise_update weight");
  require_on(rows, weight.device(), "rowwise_update rows");
  require_on(grads, weight.device(), "rowwise_update grads");
  const DType acc = accumulate_dtype(weight);
  if (rows.scalar_type() != at::kLong || grads.scalar_type() != scalar_type(acc) ||
      grads.dim() != 2 || grads.size(0) != rows.numel() || grads.size(1) != weight.size(1))
    throw Error(
        "rowwise_update: rows must be int64 [n] and grads [n, dim] of the weight's "
        "accumulate dtype");
  const kernels::RowOptimizer k = kernel_optimizer(weight, opt);
  const DType type = kernel_dtype(weight, "rowwise_update weight");
  if (weight.is_cpu())
    kernels::rowwise_update_cpu(k, type, weight.size(1), rows.data_ptr<int64_t>(), grads.data_ptr(),
                                rows.numel());
  else
    kernels::rowwise_update_cuda(k, type, weight.size(1), rows.data_ptr<int64_t>(),
                                 grads.data_ptr(), rows.numel(), cuda_stream(weight.device()));
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Non-tensor arguments travel to backward in saved_data (IValues).
struct EmbeddingBagFunction : torch::autograd::Function<EmbeddingBagFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight,
                            const TableLayout& layout, const Bags& bags, const RowOptimizer& fused,
                            DeferredBagCheck* deferred) {
    at::Tensor out = embedding_bag_forward(weight, layout, bags, deferred);
    auto& s = ctx->saved_data;
    s["weight"] = weight;
    s["row_offsets"] = layout.row_offsets;
    s["rows"] = layout.rows;
    s["ascending"] = layout.ascending;
    s["indices"] = bags.indices;
    s["offsets"] = bags.offsets;
    s["psw"] =
        bags.per_sample_weights.defined() ? c10::IValue(bags.per_sample_weights) : c10::IValue();
    s["batch"] = bags.batch;
    s["mean"] = bags.pooling == kernels::Pooling::kMean;
    s["update"] = static_cast<int64_t>(fused.update);
    s["lr"] = fused.lr;
    s["eps"] = fused.eps;
    s["state"] = fused.state.defined() ? c10::IValue(fused.state) : c10::IValue();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto& s = ctx->saved_data;
    at::Tensor weight = s["weight"].toTensor();
    const TableLayout layout{s["row_offsets"].toTensor(), s["rows"].toTensor(),
                             s["ascending"].toBool()};
    Bags bags;
    bags.indices = s["indices"].toTensor();
    bags.offsets = s["offsets"].toTensor();
    if (!s["psw"].isNone()) bags.per_sample_weights = s["psw"].toTensor();
    bags.batch = s["batch"].toInt();
    bags.pooling = s["mean"].toBool() ? kernels::Pooling::kMean : kernels::Pooling::kSum;
    RowOptimizer fused;
    fused.update = static_cast<kernels::RowUpdate>(s["update"].toInt());
    at::Tensor grad_weight;
    if (fused.update != kernels::RowUpdate::kNone) {
      fused.lr = s["lr"].toDouble();
      fused.eps = s["eps"].toDouble();
      if (!s["state"].isNone()) fused.state = s["state"].toTensor();
      at::NoGradGuard no_grad;
      embedding_bag_backward_update(grads[0], weight, layout, bags, fused);
    } else {
      auto [rows, values] = embedding_bag_backward(grads[0], weight, layout, bags);
      grad_weight = at::_sparse_coo_tensor_unsafe(rows.view({1, -1}), values, weight.sizes(),
                                                  values.options().layout(at::kSparse));
      // Rows come out unique, and sorted when the tables are stacked in order.
      if (layout.ascending) grad_weight._coalesced_(true);
      if (grad_weight.scalar_type() != weight.scalar_type())
        grad_weight = grad_weight.to(weight.scalar_type());
    }
    return {grad_weight, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::pair<at::Tensor, at::Tensor> unique_inverse(const at::Tensor& ids) {
  const at::Tensor v = ids.to(at::kLong).contiguous().view(-1);
  const int64_t n = v.numel();
  const auto [sorted, order] = v.sort();
  const int64_t* s = sorted.data_ptr<int64_t>();
  const int64_t* o = order.data_ptr<int64_t>();
  at::Tensor unique = at::empty({n}, at::kLong), inverse = at::empty({n}, at::kLong);
  int64_t* u = unique.data_ptr<int64_t>();
  int64_t* inv = inverse.data_ptr<int64_t>();
  int64_t g = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0 || s[i] != s[i - 1]) u[++g] = s[i];
    inv[o[i]] = g;
  }
  return {unique.narrow(0, 0, g + 1).clone(), inverse};
}

std::pair<at::Tensor, at::Tensor> sum_rows_in_order(const at::Tensor& rows,
                                                    const at::Tensor& values, int64_t total_rows) {
  std::vector<int64_t> shape(values.sizes().begin(), values.sizes().end());
  shape[0] = total_rows;
  if (!rows.is_cpu()) {
    const at::Tensor c = at::sparse_coo_tensor(rows.view({1, -1}), values, shape).coalesce();
    return {c.indices().view(-1), c.values()};
  }
  auto [unique, inverse] = unique_inverse(rows);
  shape[0] = unique.numel();
  // index_add_ on the CPU adds the source rows one after another, in their order.
  at::Tensor sums = at::zeros(shape, values.options());
  sums.index_add_(0, inverse, values);
  return {unique, sums};
}

at::Tensor embedding_bag(const at::Tensor& weight, const TableLayout& layout, const Bags& bags,
                         const RowOptimizer& fused, DeferredBagCheck* deferred) {
  return EmbeddingBagFunction::apply(weight, layout, bags, fused, deferred);
}

KernelChoice parse_kernel_choice(const std::string& name) {
  if (name == "tandem") return KernelChoice::kTandem;
  if (name == "aten") return KernelChoice::kAten;
  throw ConfigError(fmt::format("unknown kernels '{}' (tandem or aten)", name));
}

void init_embedding_rows(at::Tensor& out, uint64_t seed, int64_t table, const at::Tensor& rows,
                         int64_t table_rows) {
  const int64_t n = rows.numel(), dim = out.size(1);
  const double bound = std::sqrt(1.0 / static_cast<double>(table_rows));
  at::Tensor values = at::empty({n, dim}, at::kDouble);
  double* v = values.data_ptr<double>();
  const at::Tensor r = rows.to(at::kLong).contiguous();
  const int64_t* ids = r.data_ptr<int64_t>();
  const uint64_t key = mix64(seed ^ mix64(static_cast<uint64_t>(table) + 0x51ed270b27ULL));
  at::parallel_for(0, n, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const uint64_t row_key = mix64(key ^ static_cast<uint64_t>(ids[i]));
      for (int64_t k = 0; k < dim; ++k) {
        // 53 random bits: a uniform double in [0, 1).
        const double u = static_cast<double>(mix64(row_key + static_cast<uint64_t>(k)) >> 11) *
                         (1.0 / 9007199254740992.0);
        v[i * dim + k] = -bound + 2 * bound * u;
      }
    }
  });
  out.copy_(values);
}

TableBatchedEmbeddingImpl::TableBatchedEmbeddingImpl(TableBatchedEmbeddingOptions o)
    : options_(std::move(o)) {
  const TableLayout layout = TableLayout::stacked(options_.table_rows, c10::Device(at::kCPU));
  int64_t total = 0;
  for (int64_t r : options_.table_rows) total += r;
  if (options_.remote) total = 0;  // rows arrive with set_working_rows()
  weight = register_parameter("weight", at::empty({total, options_.dim}));
  if (!options_.remote) {
    at::NoGradGuard no_grad;
    int64_t at = 0;
    for (size_t t = 0; t < options_.table_rows.size(); ++t) {
      const int64_t rows = options_.table_rows[t];
      at::Tensor part = weight.narrow(0, at, rows);
      init_embedding_rows(part, options_.init_seed, static_cast<int64_t>(t),
                          at::arange(rows, at::kLong), rows);
      at += rows;
    }
  }
  table_offsets = register_buffer("table_offsets", layout.row_offsets);
  table_sizes = register_buffer("table_sizes", layout.rows);
  rowwise_state = register_buffer("rowwise_state", at::zeros({total}));

  const size_t tables = options_.table_rows.size();
  std::vector<int64_t>& sizes = options_.bag_sizes;
  std::vector<bool>& mean = options_.mean_bags;
  if (sizes.empty()) sizes.assign(tables, 1);
  if (mean.empty()) mean.assign(tables, false);
  if (sizes.size() != tables || mean.size() != tables)
    throw Error("embedding: bag_sizes and mean_bags need one entry per table");
  for (int64_t size : sizes)
    if (size < 1) throw Error("embedding: a table's bag size must be >= 1");
  std::vector<uint8_t> mean_table(mean.begin(), mean.end());
  slot_table_ = slot_tables(sizes);
  slots_ = slot_table_.numel();
  any_mean_ = std::find(mean.begin(), mean.end(), true) != mean.end();
  multi_hot_ = slots_ > static_cast<int64_t>(tables) || any_mean_;
  table_slots_ = at::tensor(sizes, at::kLong);
  table_first_slot_ = table_slots_.cumsum(0) - table_slots_;
  slot_first_ = table_first_slot_.index_select(0, slot_table_);
  slot_width_ = table_slots_.index_select(0, slot_table_);
  mean_slot_ = at::tensor(at::ArrayRef<uint8_t>(mean_table), at::kByte)
                   .to(at::kBool)
                   .index_select(0, slot_table_);
}

at::Tensor slot_tables(const std::vector<int64_t>& bag_sizes) {
  const auto n = static_cast<int64_t>(bag_sizes.size());
  return at::repeat_interleave(at::arange(n, at::kLong), at::tensor(bag_sizes, at::kLong));
}

std::pair<at::Tensor, at::Tensor> TableBatchedEmbeddingImpl::slot_rows(const at::Tensor& sparse) {
  if (slot_table_.device() != sparse.device())
    for (at::Tensor* t :
         {&slot_table_, &table_first_slot_, &table_slots_, &slot_first_, &slot_width_, &mean_slot_})
      *t = t->to(sparse.device());
  const at::Tensor ids = sparse.to(at::kLong);
  const auto acc = weight.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  // A slot without an id looks up row 0 of its table with weight 0: exact, and the
  // bags keep a fixed shape, so no step waits for a GPU to count ids. Any other
  // negative id stays, for the kernel to refuse.
  const at::Tensor present = ids != data::Schema::kNoId;
  at::Tensor weights = present.to(acc);
  if (any_mean_) {
    const int64_t n = ids.size(0);
    const at::Tensor count =
        at::zeros({n, table_slots_.numel()}, weights.options()).index_add_(1, slot_table_, weights);
    weights =
        weights /
        count.index_select(1, slot_table_).clamp_min(1).masked_fill(mean_slot_.logical_not(), 1);
  }
  return {ids.masked_fill(present.logical_not(), 0), weights};
}

void TableBatchedEmbeddingImpl::set_working_rows(const at::Tensor& rows,
                                                 const std::vector<int64_t>& counts) {
  if (!options_.remote) throw Error("embedding: set_working_rows needs remote tables");
  if (static_cast<int64_t>(counts.size()) != table_offsets.numel())
    throw Error("embedding: set_working_rows needs one count per table");
  const TableLayout layout = TableLayout::stacked(counts, weight.device());
  at::NoGradGuard no_grad;
  weight.set_data(rows.to(weight.device(), weight.scalar_type()));
  weight.mutable_grad() = at::Tensor();
  table_offsets.copy_(layout.row_offsets);
  table_sizes.copy_(layout.rows);
}

at::Tensor TableBatchedEmbeddingImpl::forward(const at::Tensor& sparse) {
  const int64_t tables = table_offsets.numel(), dim = options_.dim;
  if (sparse.dim() != 2 || sparse.size(1) != slots_)
    throw Error(fmt::format("embedding: expected [n, {}] ids, got {}", slots_,
                            fmt::join(sparse.sizes(), " x ")));
  const int64_t n = sparse.size(0);
  // Multi-hot: the ids with a weight each (0 for an empty slot, 1 / ids for a mean).
  at::Tensor rows = sparse, weights;
  if (multi_hot_) std::tie(rows, weights) = slot_rows(sparse);
  const at::Tensor slot_offsets =
      multi_hot_ ? table_offsets.index_select(0, slot_table_) : table_offsets;
  if (options_.kernels == KernelChoice::kAten) {
    // Sample-major bags: bag i is sample i / tables, table i % tables.
    const at::Tensor ids = (rows + slot_offsets.view({1, -1})).view(-1);
    const at::Tensor offsets =
        multi_hot_
            ? (at::arange(n, ids.options()).view({n, 1}) * slots_ + table_first_slot_.view({1, -1}))
                  .view(-1)
            : at::arange(n * tables, ids.options());
    const at::Tensor psw = multi_hot_ ? weights.view(-1).to(weight.scalar_type()) : at::Tensor();
    const at::Tensor out =
        std::get<0>(at::embedding_bag(weight, ids, offsets, false, 0, options_.sparse, psw));
    return out.view({n, tables, dim});
  }
  Bags bags;  // table-major, as the kernel wants
  bags.batch = n;
  if (!multi_hot_) {
    bags.indices = rows.t().contiguous().view(-1);
    bags.offsets = at::arange(n * tables + 1, bags.indices.options());
  } else {
    // Sample b's slot s (of table t, whose first slot is f and which has w slots)
    // goes to n * f + b * w + (s - f).
    const at::Tensor& first = slot_first_;
    const at::Tensor to = (first * n + at::arange(slots_, first.options()) - first).view({1, -1}) +
                          at::arange(n, first.options()).view({n, 1}) * slot_width_.view({1, -1});
    bags.indices =
        at::empty({n * slots_}, rows.options()).index_copy_(0, to.view(-1), rows.view(-1));
    bags.per_sample_weights =
        at::empty({n * slots_}, weights.options()).index_copy_(0, to.view(-1), weights.view(-1));
    bags.offsets =
        at::cat({(table_first_slot_.view({-1, 1}) * n +
                  table_slots_.view({-1, 1}) * at::arange(n, first.options()).view({1, n}))
                     .view(-1),
                 at::full({1}, n * slots_, first.options())});
  }
  RowOptimizer fused;
  if (fused_ && is_training()) {
    fused = optimizer_;
    fused.state = rowwise_state;
  }
  // Training on a GPU checks the indices one call late, so steps can be queued.
  DeferredBagCheck* deferred = is_training() && weight.is_cuda() ? bag_check_.get() : nullptr;
  const at::Tensor out =
      embedding_bag(weight, TableLayout{table_offsets, table_sizes, true}, bags, fused, deferred);
  if (fused.update != kernels::RowUpdate::kNone && snapshot_ && !snapshot_->completed()) {
    // Backward updates exactly this batch's rows (bad ids are refused there). The
    // guard runs when backward reaches the tables, the last thing it does, so the
    // copy has had the whole step to get ahead of it.
    const at::Tensor touched = rows.to(at::kLong) + slot_offsets.view({1, -1});
    out.register_hook(
        [snapshot = snapshot_, touched](const at::Tensor&) { snapshot->before_update(touched); });
  }
  return out.view({n, tables, dim});
}

void TableBatchedEmbeddingImpl::set_optimizer(kernels::RowUpdate update, double eps, bool fused) {
  if (options_.kernels != KernelChoice::kTandem || !options_.sparse)
    throw Error("row-wise optimizers need Tandem's kernels with sparse gradients");
  optimizer_.update = update;
  optimizer_.eps = eps;
  fused_ = fused && update != kernels::RowUpdate::kNone;
}

void TableBatchedEmbeddingImpl::apply_gradient() {
  const at::Tensor& g = weight.grad();
  if (!g.defined() || optimizer_.update == kernels::RowUpdate::kNone) return;
  if (!g.is_sparse()) throw Error("embedding: expected a sparse gradient");
  const at::Tensor c = g.coalesce();
  RowOptimizer opt = optimizer_;
  opt.state = rowwise_state;
  at::NoGradGuard no_grad;
  at::Tensor w = weight;
  const at::Tensor rows = c.indices().view(-1).contiguous();
  if (snapshot_) snapshot_->before_update(rows);
  rowwise_update(w, opt, rows, c.values().to(rowwise_state.scalar_type()).contiguous());
}

std::shared_ptr<RowSnapshot> TableBatchedEmbeddingImpl::snapshot_rows(at::Tensor weight_copy,
                                                                      at::Tensor state_copy) {
  if (snapshot_ && !snapshot_->completed())
    throw Error("embedding: a row snapshot is still in progress");
  snapshot_ = std::make_shared<RowSnapshot>(
      std::vector<at::Tensor>{weight.detach(), rowwise_state},
      std::vector<at::Tensor>{std::move(weight_copy), std::move(state_copy)});
  return snapshot_;
}

}  // namespace tandem::nn
