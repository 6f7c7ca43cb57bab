#include "tandem/comm/mailbox.h"

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "tandem/util/error.h"

namespace tandem::comm {

Message Mailbox::wait(int tag, double timeout_s, const std::function<std::string()>& what,
                      std::chrono::microseconds max_pause) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_s));
  auto pause = std::chrono::microseconds(2);
  for (;;) {
    if (std::optional<Message> m = poll(tag)) return std::move(*m);
    if (Clock::now() > deadline) throw CommError(what());
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, max_pause);
  }
}

namespace {

class LocalMailbox final : public Mailbox {
 public:
  void post(int dst, int tag, std::vector<char> bytes) override {
    if (dst != 0) throw CommError("comm: a world of one has no rank " + std::to_string(dst));
    std::lock_guard<std::mutex> lock(mutex_);
    queues_[tag].push_back(Message{0, std::move(bytes)});
  }
  std::optional<Message> poll(int tag) override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::deque<Message>& q = queues_[tag];
    if (q.empty()) return std::nullopt;
    Message m = std::move(q.front());
    q.pop_front();
    return m;
  }

 private:
  std::mutex mutex_;
  std::map<int, std::deque<Message>> queues_;
};

}  // namespace

std::unique_ptr<Mailbox> make_local_mailbox() { return std::make_unique<LocalMailbox>(); }

}  // namespace tandem::comm
