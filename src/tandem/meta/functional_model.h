// A model written as a function of an explicit parameter list, so that the inner
// loop can differentiate through its own updates (MAML needs the adapted weights
// as functions of the initial ones, which nn::Module's stateful parameters hide).
//
// Every parameter carries a leading task dimension T at forward(): each task of
// a meta-batch adapts its own copy, and the whole meta-batch runs as batched
// matrix products rather than a loop over tasks.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::meta {

class FunctionalModel {
 public:
  virtual ~FunctionalModel() = default;
  /// Parameter names, in the order of init() and forward() (checkpoint keys).
  virtual std::vector<std::string> names() const = 0;
  /// Freshly initialised parameters, without a task dimension.
  virtual std::vector<at::Tensor> init(at::Generator& gen) const = 0;
  /// Predictions [T, N, out] for inputs [T, N, in]; params[i] is [T, *shape_i].
  virtual at::Tensor forward(const std::vector<at::Tensor>& params, const at::Tensor& x) const = 0;
};

/// Fully connected layers with ReLU between them; sizes = {in, hidden..., out}.
/// Initialised like torch.nn.Linear: weights and biases ~ U(-1/sqrt(in), 1/sqrt(in)).
class Mlp : public FunctionalModel {
 public:
  explicit Mlp(std::vector<int64_t> sizes);
  std::vector<std::string> names() const override;
  std::vector<at::Tensor> init(at::Generator& gen) const override;
  at::Tensor forward(const std::vector<at::Tensor>& params, const at::Tensor& x) const override;

 private:
  std::vector<int64_t> sizes_;
};

}  // namespace tandem::meta
