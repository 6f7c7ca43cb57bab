#include "tandem/meta/task_family.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "tandem/config/meta_config.h"
#include "tandem/util/error.h"
#include "tandem/util/hash.h"

namespace tandem::meta {

at::Tensor TaskFamily::accuracy(const at::Tensor&, const at::Tensor&) const {
  throw Error("task family " + name() + " has no accuracy");
}

Task SinusoidTasks::sample(at::Generator& gen, Split, int64_t shots, int64_t queries) const {
  // One draw for the whole task, then plain loops: a meta-batch samples dozens of
  // tasks per iteration, and per-element tensor ops would cost more than the step.
  const at::Tensor u = at::rand({2 + shots + queries}, gen, at::kDouble);
  const double* r = u.data_ptr<double>();
  const double amplitude = 0.1 + 4.9 * r[0];
  const double phase = M_PI * r[1];
  r += 2;
  auto draw = [&](int64_t n, at::Tensor& x, at::Tensor& y) {
    x = at::empty({n, 1}, at::kFloat);
    y = at::empty({n, 1}, at::kFloat);
    float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i, ++r) {
      xp[i] = static_cast<float>(10.0 * *r - 5.0);
      yp[i] = static_cast<float>(amplitude * std::sin(static_cast<double>(xp[i]) - phase));
    }
  };
  Task t;
  draw(shots, t.support_x, t.support_y);
  draw(queries, t.query_x, t.query_y);
  return t;
}

at::Tensor SinusoidTasks::loss(const at::Tensor& pred, const at::Tensor& target) const {
  return (pred - target).square().flatten(1).mean(1);
}

ClusterTasks::ClusterTasks(int64_t classes, int64_t features, int64_t ways, uint64_t seed)
    : ways_(ways), train_classes_(classes - classes / 5) {
  at::Generator gen = at::detail::createCPUGenerator(mix64(seed ^ 0xc1a55e5ULL));
  centres_ = at::randn({classes, features}, gen, at::kFloat);
}

Task ClusterTasks::sample(at::Generator& gen, Split split, int64_t shots, int64_t queries) const {
  const int64_t first = split == Split::kTrain ? 0 : train_classes_;
  const int64_t pool = split == Split::kTrain ? train_classes_ : centres_.size(0) - train_classes_;
  // The first `ways` of a random permutation: distinct classes, in a random order
  // that becomes their labels.
  const at::Tensor picked = at::randperm(pool, gen, at::kLong).slice(0, 0, ways_) + first;
  auto draw = [&](int64_t per_class, at::Tensor& x, at::Tensor& y) {
    const at::Tensor labels = at::arange(ways_, at::kLong).repeat_interleave(per_class);
    x = centres_.index_select(0, picked.index_select(0, labels)) +
        at::randn({ways_ * per_class, centres_.size(1)}, gen, at::kFloat);
    y = labels;
  };
  Task t;
  draw(shots, t.support_x, t.support_y);
  draw(queries, t.query_x, t.query_y);
  return t;
}

at::Tensor ClusterTasks::loss(const at::Tensor& pred, const at::Tensor& target) const {
  const at::Tensor per_example =
      at::cross_entropy_loss(pred.flatten(0, 1), target.flatten(), {}, at::Reduction::None);
  return per_example.view(target.sizes()).mean(1);
}

at::Tensor ClusterTasks::accuracy(const at::Tensor& pred, const at::Tensor& target) const {
  return pred.argmax(-1).eq(target).to(at::kFloat).mean(1);
}

std::unique_ptr<TaskFamily> make_task_family(const config::MetaSection& meta, uint64_t seed) {
  if (meta.task == "sinusoid") return std::make_unique<SinusoidTasks>();
  if (meta.task == "clusters")
    return std::make_unique<ClusterTasks>(meta.classes, meta.features, meta.ways, seed);
  throw ConfigError("meta.task: unknown task family '" + meta.task + "'");
}

at::Generator task_generator(uint64_t seed, Stream stream, int64_t iteration, int64_t index) {
  uint64_t h = mix64(seed);
  h = mix64(h ^ static_cast<uint64_t>(stream));
  h = mix64(h ^ static_cast<uint64_t>(iteration));
  h = mix64(h ^ static_cast<uint64_t>(index));
  return at::detail::createCPUGenerator(h);
}

Tasks sample_tasks(const TaskFamily& family, Split split, uint64_t seed, Stream stream,
                   int64_t iteration, int64_t first, int64_t count, int64_t shots,
                   int64_t queries) {
  Tasks out;
  if (count == 0) return out;
  std::vector<at::Tensor> sx, sy, qx, qy;
  for (int64_t i = first; i < first + count; ++i) {
    at::Generator gen = task_generator(seed, stream, iteration, i);
    Task t = family.sample(gen, split, shots, queries);
    sx.push_back(t.support_x);
    sy.push_back(t.support_y);
    qx.push_back(t.query_x);
    qy.push_back(t.query_y);
  }
  out.support_x = at::stack(sx);
  out.support_y = at::stack(sy);
  out.query_x = at::stack(qx);
  out.query_y = at::stack(qy);
  return out;
}

std::pair<int64_t, int64_t> share(int64_t n, int rank, int world) {
  const int64_t first = n * rank / world;
  return {first, n * (rank + 1) / world - first};
}

}  // namespace tandem::meta
