// Task families: how meta-learning tasks are drawn and scored. The MAML core knows
// only this interface, so a new kind of task plugs in without touching it.
//
// Sampling is counter-based: task `index` of meta-batch `iteration` is drawn from
// its own generator, seeded from (seed, stream, iteration, index). A task is
// therefore the same whichever rank draws it, and the sampler's whole state is
// the iteration number (which checkpoints hold).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tandem::config {
struct MetaSection;
}

namespace tandem::meta {

/// One task's examples, without a task dimension.
struct Task {
  at::Tensor support_x, support_y;
  at::Tensor query_x, query_y;
};

/// Several tasks stacked: dim 0 is the task ([T, N, in] inputs, [T, N, ...] targets).
struct Tasks {
  at::Tensor support_x, support_y;
  at::Tensor query_x, query_y;
  int64_t size() const { return support_x.defined() ? support_x.size(0) : 0; }
};

/// Training tasks, or tasks held out for evaluation (families that have a
/// held-out part, such as unseen classes, draw those from it).
enum class Split { kTrain, kEval };

class TaskFamily {
 public:
  virtual ~TaskFamily() = default;
  virtual std::string name() const = 0;
  virtual int64_t input_size() const = 0;
  virtual int64_t output_size() const = 0;
  /// How loss() is called in metrics: "mse", "xent".
  virtual std::string loss_name() const = 0;
  /// Draws a task from `gen`: `shots` support and `queries` query examples (per
  /// class, for a classification family).
  virtual Task sample(at::Generator& gen, Split split, int64_t shots, int64_t queries) const = 0;
  /// Per-task mean loss [T] of predictions [T, N, out] against targets [T, N, ...].
  virtual at::Tensor loss(const at::Tensor& pred, const at::Tensor& target) const = 0;
  /// Whether accuracy() applies (classification families).
  virtual bool classifies() const { return false; }
  /// Per-task accuracy [T]; only for families that classify.
  virtual at::Tensor accuracy(const at::Tensor& pred, const at::Tensor& target) const;
};

/// Regression of y = A sin(x - phase): A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]
/// (Finn et al. 2017, section 5.1). Loss: MSE.
class SinusoidTasks : public TaskFamily {
 public:
  std::string name() const override { return "sinusoid"; }
  int64_t input_size() const override { return 1; }
  int64_t output_size() const override { return 1; }
  std::string loss_name() const override { return "mse"; }
  Task sample(at::Generator& gen, Split split, int64_t shots, int64_t queries) const override;
  at::Tensor loss(const at::Tensor& pred, const at::Tensor& target) const override;
};

/// N-way K-shot classification over a generated dataset of `classes` Gaussian
/// clusters (unit-variance centres, unit-variance noise) in `features` dimensions.
/// The last fifth of the classes is held out: evaluation tasks use only those.
/// Each task picks `ways` distinct classes and labels them 0..ways-1 in a random
/// order, so a model cannot memorise classes and must adapt. Loss: cross-entropy.
class ClusterTasks : public TaskFamily {
 public:
  ClusterTasks(int64_t classes, int64_t features, int64_t ways, uint64_t seed);
  std::string name() const override { return "clusters"; }
  int64_t input_size() const override { return centres_.size(1); }
  int64_t output_size() const override { return ways_; }
  std::string loss_name() const override { return "xent"; }
  Task sample(at::Generator& gen, Split split, int64_t shots, int64_t queries) const override;
  at::Tensor loss(const at::Tensor& pred, const at::Tensor& target) const override;
  bool classifies() const override { return true; }
  at::Tensor accuracy(const at::Tensor& pred, const at::Tensor& target) const override;
  const at::Tensor& centres() const { return centres_; }

 private:
  at::Tensor centres_;  ///< [classes, features]
  int64_t ways_;
  int64_t train_classes_;
};

/// The family meta.task names.
std::unique_ptr<TaskFamily> make_task_family(const config::MetaSection& meta, uint64_t seed);

/// Independent sampling streams of one run.
enum class Stream : uint64_t { kTrain = 1, kEval = 2 };

/// The generator of task `index` of meta-batch `iteration`.
at::Generator task_generator(uint64_t seed, Stream stream, int64_t iteration, int64_t index);

/// Tasks [first, first + count) of meta-batch `iteration`, stacked (count may be 0:
/// then every tensor is undefined and size() is 0).
Tasks sample_tasks(const TaskFamily& family, Split split, uint64_t seed, Stream stream,
                   int64_t iteration, int64_t first, int64_t count, int64_t shots,
                   int64_t queries);

/// This rank's share of n items: [first, first + count), contiguous and in rank
/// order; the shares of all ranks differ in size by at most one.
std::pair<int64_t, int64_t> share(int64_t n, int rank, int world);

}  // namespace tandem::meta
