#include "tandem/comm/single_communicator.h"

#include <ATen/ATen.h>

#include "tandem/util/error.h"

namespace tandem::comm {
namespace {

class DoneWork final : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

class SingleCommunicator final : public Communicator {
 public:
  using Communicator::Communicator;
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  std::unique_ptr<Work> do_ibarrier() override { return std::make_unique<DoneWork>(); }
  std::unique_ptr<Communicator> do_split(int) override {
    return make_single_communicator(options());
  }
  std::unique_ptr<Mailbox> do_mailbox() override { return make_local_mailbox(); }

 protected:
  void do_allreduce(at::Tensor&, ReduceOp) override {}
  std::unique_ptr<Work> do_iallreduce(at::Tensor&, ReduceOp) override {
    return std::make_unique<DoneWork>();
  }
  void do_broadcast(at::Tensor&, int) override {}
  void do_allgather(const at::Tensor& in, at::Tensor& out) override {
    out.view(in.sizes()).copy_(in);
  }
  void do_allgatherv(const at::Tensor& in, at::Tensor& out, const std::vector<int64_t>&) override {
    out.copy_(in);
  }
  void do_alltoallv(const at::Tensor& in, const std::vector<int64_t>&, at::Tensor& out,
                    const std::vector<int64_t>&) override {
    out.copy_(in);
  }
  // A world of one has nobody to talk to; check_peer() already rejects any peer but 0.
  void do_send(const at::Tensor&, int, int) override {
    throw CommError("comm: send to self is not supported by the single-process backend");
  }
  void do_recv(at::Tensor&, int, int) override {
    throw CommError("comm: recv from self is not supported by the single-process backend");
  }
  void do_barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator(CommOptions options) {
  return std::make_unique<SingleCommunicator>(options);
}

}  // namespace tandem::comm
