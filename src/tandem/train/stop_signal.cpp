#include "tandem/train/stop_signal.h"

#include <csignal>

namespace tandem::train {
namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }
}  // namespace

void install_stop_handlers() {
  g_stop_signal = 0;
  keep_stop_handlers();
}

void keep_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

void restore_default_handlers() {
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGUSR1, SIG_DFL);
}

bool stop_signalled() { return g_stop_signal != 0; }

}  // namespace tandem::train
