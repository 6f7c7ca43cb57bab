#include "tandem/comm/mpi_watchdog.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "tandem/comm/mpi_check.h"
#include "tandem/util/log.h"

namespace tandem::comm::detail {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPing = 1;  // "where are you?"
constexpr int kPong = 2;  // the answer: a line of text
constexpr auto kTick = std::chrono::milliseconds(100);

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A collective that takes this long is logged as a stall when it finishes.
double stall_s(double timeout_s) { return std::min(timeout_s / 4, 10.0); }

struct Entry {
  const char* op;
  const char* comm;
  uint64_t seq;
  double timeout_s;
  Clock::time_point start;
};

class Watchdog {
 public:
  explicit Watchdog(std::vector<std::string> hosts) : hosts_(std::move(hosts)) {
    TANDEM_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    thread_ = std::thread([this] { run(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && sending_.empty()) MPI_Comm_free(&comm_);
  }

  uint64_t add(const Entry& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    const uint64_t id = ++next_id_;
    in_flight_.emplace(id, e);
    return id;
  }

  void remove(uint64_t id) {
    Entry e;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = in_flight_.find(id);
      if (it == in_flight_.end()) return;
      e = it->second;
      in_flight_.erase(it);
      last_done_ = e;  // formatted only if another rank asks (where())
    }
    const double took = seconds_since(e.start);
    if (took > stall_s(e.timeout_s))
      log::warnf(
          "comm: mpi {} #{} ({}) on rank {} ({}) took {:.1f} s: a peer or its link stalled "
          "(the job ends after comm.timeout_s = {:g} s)",
          e.op, e.seq, e.comm, rank_, hosts_[rank_], took, e.timeout_s);
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, kTick);
      if (stop_) break;
      std::optional<Entry> late;
      for (const auto& [id, e] : in_flight_)
        if (seconds_since(e.start) > e.timeout_s) {
          late = e;
          break;
        }
      lock.unlock();
      try {
        answer_pings();
      } catch (const Error&) {
        // MPI itself failed (a lost peer, say): the collectives report it.
      }
      if (late) fire(*late);
      lock.lock();
    }
  }

  // Where this rank is, for another rank's watchdog.
  std::string where() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (in_flight_.empty())
      return last_done_ ? fmt::format("in no collective (last done: {} #{} ({}))", last_done_->op,
                                      last_done_->seq, last_done_->comm)
                        : std::string("in no collective (none done yet)");
    const Entry& e = in_flight_.begin()->second;  // the oldest
    return fmt::format("in {} #{} ({}) for {:.1f} s", e.op, e.seq, e.comm, seconds_since(e.start));
  }

  void send(int dst, int tag, std::string text) {
    for (auto it = sending_.begin(); it != sending_.end();) {  // drop finished sends
      int done = 0;
      MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
      it = done ? sending_.erase(it) : std::next(it);
    }
    Pending& p = sending_.emplace_back();
    p.text = std::move(text);
    TANDEM_MPI_CHECK(MPI_Isend(p.text.data(), static_cast<int>(p.text.size()), MPI_CHAR, dst, tag,
                               comm_, &p.request));
  }

  void answer_pings() {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      TANDEM_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kPing, comm_, &flag, &status));
      if (!flag) return;
      TANDEM_MPI_CHECK(
          MPI_Recv(nullptr, 0, MPI_CHAR, status.MPI_SOURCE, kPing, comm_, MPI_STATUS_IGNORE));
      send(status.MPI_SOURCE, kPong, where());
    }
  }

  std::string rank_name(int r) const { return fmt::format("rank {} ({})", r, hosts_[r]); }

  // Asks every rank where it is, names the silent ones, and ends the job.
  [[noreturn]] void fire(const Entry& e) {
    std::vector<std::optional<std::string>> answers(size_);
    int missing = size_ - 1;
    try {
      for (int r = 0; r < size_; ++r)
        if (r != rank_) send(r, kPing, "");
      const auto deadline =
          Clock::now() + std::chrono::duration<double>(std::clamp(e.timeout_s / 10, 0.5, 3.0));
      while (missing > 0 && Clock::now() < deadline) {
        answer_pings();
        int flag = 0;
        MPI_Status status;
        TANDEM_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kPong, comm_, &flag, &status));
        if (!flag) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        int n = 0;
        MPI_Get_count(&status, MPI_CHAR, &n);
        std::string text(static_cast<size_t>(n), '\0');
        TANDEM_MPI_CHECK(
            MPI_Recv(text.data(), n, MPI_CHAR, status.MPI_SOURCE, kPong, comm_, MPI_STATUS_IGNORE));
        if (!answers[status.MPI_SOURCE]) --missing;
        answers[status.MPI_SOURCE] = std::move(text);
      }
    } catch (const Error&) {
      // The ranks that did not answer are named below either way.
    }
    std::string silent, elsewhere;
    int listed = 0;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      if (!answers[r]) {
        silent += (silent.empty() ? "" : ", ") + rank_name(r);
      } else if (listed < 4 && answers[r]->rfind(fmt::format("in {} #{} ", e.op, e.seq), 0) != 0) {
        elsewhere +=
            fmt::format("{}{} is {}", elsewhere.empty() ? "" : ", ", rank_name(r), *answers[r]);
        ++listed;
      }
    }
    std::string peers;
    if (!silent.empty()) peers = "no answer from " + silent;
    if (!elsewhere.empty()) peers += (peers.empty() ? "" : "; ") + elsewhere;
    if (peers.empty()) peers = "every rank answered and is in it too";
    log::warnf(
        "comm: mpi {} #{} ({}) on {} not done after {:g} s (comm.timeout_s): {}; aborting "
        "the job",
        e.op, e.seq, e.comm, rank_name(rank_), e.timeout_s, peers);
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, 4);
    std::_Exit(4);
  }

  struct Pending {
    std::string text;
    MPI_Request request = MPI_REQUEST_NULL;
  };

  const std::vector<std::string> hosts_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::list<Pending> sending_;  ///< used by the watchdog thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<uint64_t, Entry> in_flight_;  ///< by id: the oldest first
  std::optional<Entry> last_done_;
  uint64_t next_id_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

std::unique_ptr<Watchdog> g_watchdog;

}  // namespace

void watchdog_start(const std::vector<std::string>& hosts) {
  int level = 0;
  MPI_Query_thread(&level);
  if (hosts.size() < 2 || level != MPI_THREAD_MULTIPLE || g_watchdog) return;
  g_watchdog = std::make_unique<Watchdog>(hosts);
}

void watchdog_stop() { g_watchdog.reset(); }

Watched::Watched(const char* op, const char* comm, uint64_t seq, double timeout_s) {
  if (g_watchdog) id_ = g_watchdog->add({op, comm, seq, timeout_s, Clock::now()});
}

void Watched::done() {
  if (id_ == 0 || !g_watchdog) return;
  g_watchdog->remove(id_);
  id_ = 0;
}

}  // namespace tandem::comm::detail
