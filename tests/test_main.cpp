// GoogleTest main for every Tandem test binary. Starts the runtime (MPI when built
// with it), so the same binary runs as one process or under mpirun. Only rank 0
// prints the usual report; other ranks print their failures, prefixed by rank.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "kernels/cpu_isa.h"
#include "tandem/comm/runtime.h"

namespace {

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  // CTest runs the kernel tests once per CPU variant on every machine: a variant
  // this CPU lacks is skipped (CTest's skip code), any other bad name fails.
  const char* isa = std::getenv("TANDEM_CPU_ISA");
  if (isa) {
    const auto named = tandem::kernels::cpu_isa_from_name(isa);
    if (named && !tandem::kernels::cpu_isa_supported(*named)) {
      std::printf("skipped: this CPU lacks TANDEM_CPU_ISA=%s\n", isa);
      return 77;
    }
  }
  auto& runtime = tandem::comm::Runtime::init(&argc, &argv);
  if (runtime.rank() == 0)
    std::printf("CPU kernels: %s\n", tandem::kernels::cpu_isa_description().c_str());
  testing::InitGoogleTest(&argc, argv);
  if (runtime.rank() != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(runtime.rank()));
  }
  runtime.set_threads(1);
  return RUN_ALL_TESTS();
}
