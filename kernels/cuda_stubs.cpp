// A build without CUDA still links every caller of the *_cuda entry points; they
// throw, naming the build option. (CUDA tensors cannot reach them in such a build.)
#include <stdexcept>
#include <string>

#include "kernels/embedding_bag.h"
#include "kernels/interaction.h"
#include "kernels/layer_norm.h"
#include "kernels/moments.h"

namespace tandem::kernels {
namespace {

[[noreturn]] void no_cuda(const char* op) {
  throw std::invalid_argument(std::string(op) +
                              ": Tandem was built without CUDA (TANDEM_WITH_CUDA=OFF or no nvcc)");
}

}  // namespace

void embedding_bag_forward_cuda(const EmbeddingBags&, void*, int64_t*, cudaStream_t) {
  no_cuda("embedding_bag");
}
size_t embedding_bag_backward_cuda_workspace(const EmbeddingBags&) { no_cuda("embedding_bag"); }
void embedding_bag_backward_cuda(const EmbeddingBags&, const void*, const RowOptimizer&, int64_t*,
                                 void*, int64_t*, void*, size_t, cudaStream_t) {
  no_cuda("embedding_bag");
}
void rowwise_update_cuda(const RowOptimizer&, DType, int64_t, const int64_t*, const void*, int64_t,
                         cudaStream_t) {
  no_cuda("rowwise_update");
}
void layer_norm_forward_cuda(const LayerNormShape&, const void*, const void*, const void*, double,
                             void*, void*, void*, cudaStream_t) {
  no_cuda("layer_norm");
}
size_t layer_norm_backward_cuda_workspace(const LayerNormShape&) { no_cuda("layer_norm"); }
void layer_norm_backward_cuda(const LayerNormShape&, const void*, const void*, const void*,
                              const void*, const void*, void*, void*, void*, void*, size_t,
                              cudaStream_t) {
  no_cuda("layer_norm");
}

void interaction_forward_cuda(const InteractionShape&, const void*, void*, cudaStream_t) {
  no_cuda("interaction");
}
void interaction_backward_cuda(const InteractionShape&, const void*, const void*, void*,
                               cudaStream_t) {
  no_cuda("interaction");
}

size_t column_moments_cuda_workspace(int64_t, int64_t) { no_cuda("column_moments"); }
void column_moments_cuda(const void*, DType, int64_t, int64_t, const Moments&, void*, size_t,
                         cudaStream_t) {
  no_cuda("column_moments");
}

}  // namespace tandem::kernels
