// Messages between ranks outside the collectives' lock-step order: what the
// parameter server's workers and servers send each other. Messages from one rank to
// another arrive in the order they were posted. A mailbox may be used from two
// threads at once (a colocated server's thread and the training thread); it is
// separate from its communicator's collectives, so neither sees the other's traffic.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tandem::comm {

struct Message {
  int source = -1;
  std::vector<char> bytes;
};

class Mailbox {
 public:
  virtual ~Mailbox() = default;
  /// Sends `bytes` to rank `dst` under `tag` without waiting for the receiver.
  virtual void post(int dst, int tag, std::vector<char> bytes) = 0;
  /// A message under `tag` that has arrived, from any rank; nullopt if none yet.
  virtual std::optional<Message> poll(int tag) = 0;

  /// Waits for a message under `tag` without spinning a core: it polls, sleeping
  /// 2 us at first and up to `max_pause` between polls. After `timeout_s` seconds
  /// without one it throws CommError with `what_timed_out()` as the message.
  Message wait(int tag, double timeout_s, const std::function<std::string()>& what_timed_out,
               std::chrono::microseconds max_pause = std::chrono::microseconds(50));
};

/// The mailbox of a world of one: messages to itself, queued in memory.
std::unique_ptr<Mailbox> make_local_mailbox();

}  // namespace tandem::comm
