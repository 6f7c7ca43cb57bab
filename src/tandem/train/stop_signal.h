// SIGTERM / SIGUSR1 (Slurm's preemption warning) ask a training run to stop: the
// handler only notes the signal, and the trainer stops at the next step boundary
// after saving a checkpoint (exit 5). `tandem train` installs the handler before
// anything else, so a signal during start-up is noted too, not fatal.
#pragma once

namespace tandem::train {

/// Forgets any earlier signal and notes SIGTERM / SIGUSR1 from now on.
void install_stop_handlers();
/// Notes SIGTERM / SIGUSR1 from now on, keeping one already noted.
void keep_stop_handlers();
/// The default handlers again (the run is over).
void restore_default_handlers();
/// Whether this process got SIGTERM or SIGUSR1 since install_stop_handlers().
bool stop_signalled();

}  // namespace tandem::train
