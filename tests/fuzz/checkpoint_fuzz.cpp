// libFuzzer target for the checkpoint reader (ckpt::read_header, ckpt::verify,
// ckpt::read): every byte of a checkpoint file is untrusted, as a disk or a copy can
// damage any of them. Any file must either read, or be refused with a DataError
// that is one printable line; never another exception, a crash or an invalid
// access (AddressSanitizer + UndefinedBehaviorSanitizer on Tandem's code). Seeded
// with small real checkpoints; built and run by tests/fuzz/run.sh.
#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tandem/ckpt/checkpoint.h"
#include "tandem/util/error.h"

// TANDEM_FUZZ_SEED=PATH: writes a small, valid checkpoint there and exits (the
// first entry of the corpus; real ones are large for a fuzzer).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* seed = std::getenv("TANDEM_FUZZ_SEED");
  if (!seed) return 0;
  tandem::ckpt::State s;
  s.run_id = "20261204-000000-00000000";
  s.step = 7;
  s.global_batch = 4;
  s.lr = 0.1;
  s.version = "fuzz";
  s.optimizer_name = "adagrad";
  s.config = "[train]\nbatch_size = 4\n";
  s.metrics = "{\"event\":\"final\",\"step\":7}\n";
  s.data = {{"data.tsv", 120, "0123456789abcdef"}};
  s.params["top.0.weight"] = at::arange(6, at::kFloat).reshape({2, 3});
  s.buffers["norm.running_mean"] = at::zeros({3}, at::kDouble);
  s.optimizer["top.0.weight/sum"] = at::ones({2, 3});
  s.rng = {at::arange(8, at::kByte)};
  tandem::ckpt::write(seed, s, {0, false});
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/tandem-checkpoint-fuzz-" +
           std::to_string(::getpid()) + ".h5";
  }();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<long>(size));
  try {
    const tandem::ckpt::State header = tandem::ckpt::read_header(path, false);
    tandem::ckpt::verify(path, false);
    const tandem::ckpt::State s = tandem::ckpt::read(path, false);
    // What verify and the header accepted, read gives.
    if (s.step != header.step || s.run_id != header.run_id) std::abort();
  } catch (const tandem::DataError& e) {
    const std::string m = e.what();
    if (m.empty()) std::abort();
    for (char c : m)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {  // no control byte, one line
        std::fprintf(stderr, "not one printable line: %s\n", m.c_str());
        std::abort();
      }
  }
  return 0;
}
