#include "tandem/ps/parameter_server.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>


#include "tandem/comm/runtime.h"
#include "tandem/nn/embedding_bag.h"
#include "tandem/ps/table_checkpoint.h"
#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::ps {
namespace {

using Clock = std::chrono::steady_clock;

// " (rank 2 runs on node2)" for a failure message; empty where the hosts are unknown.
std::string host_of(int world_rank) {
  const auto& hosts = comm::Runtime::get().info().hosts;
  if (world_rank < 0 || world_rank >= static_cast<int>(hosts.size())) return "";
  return fmt::format(" (rank {} runs on {})", world_rank, hosts[world_rank]);
}

// Message tags on the parameter server's mailbox.
constexpr int kRequestTag = 1;  // worker -> server
constexpr int kReplyTag = 2;    // server -> worker
constexpr int kSavedTag = 3;    // server -> worker 0: a checkpoint shard is durable
constexpr int kBeatTag = 4;     // either way: still alive
enum Op : int64_t { kPull = 1, kPush = 2, kStop = 3, kSave = 4 };

// A message: int64 words, then float rows. Request: op, id, clock, lr (its bits),
// n, then n slots (and a push's n x dim gradients; a save's n bytes of path).
// Reply: id, n, the applied pushes of every worker, then n x dim rows. Saved: ok,
// bytes, then the digest or the error.
class Writer {
 public:
  void words(std::initializer_list<int64_t> w) { raw(w.begin(), w.size() * sizeof(int64_t)); }
  void raw(const void* p, size_t bytes) {
    if (bytes == 0) return;
    const char* c = static_cast<const char*>(p);
    bytes_.insert(bytes_.end(), c, c + bytes);
  }
  void tensor(const at::Tensor& t) { raw(t.data_ptr(), t.numel() * t.element_size()); }
  void text(const std::string& s) { raw(s.data(), s.size()); }
  std::vector<char> take() { return std::move(bytes_); }

 private:
  std::vector<char> bytes_;
};

class Reader {
 public:
  explicit Reader(const comm::Message& m) : m_(m) {}
  int64_t word() {
    int64_t w;
    std::memcpy(&w, take(sizeof w), sizeof w);
    return w;
  }
  /// The next n values of `type`, shaped `shape` (a copy).
  at::Tensor tensor(at::IntArrayRef shape, at::ScalarType type) {
    at::Tensor t = at::empty(shape, type);
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    if (n > 0) std::memcpy(t.data_ptr(), take(n), n);  // an empty tensor has no data pointer
    return t;
  }
  std::string text(size_t n) { return std::string(take(n), n); }
  std::string rest() { return text(m_.bytes.size() - at_); }

 private:
  const char* take(size_t bytes) {
    if (at_ + bytes > m_.bytes.size())
      throw CommError(fmt::format("ps: a truncated message from rank {}", m_.source));
    const char* p = m_.bytes.data() + at_;
    at_ += bytes;
    return p;
  }
  const comm::Message& m_;
  size_t at_ = 0;
};

int64_t bits_of(double x) {
  int64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

double double_of(int64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

std::string span(int first, int last) {
  return first == last ? fmt::format("rank {}", first) : fmt::format("ranks {}-{}", first, last);
}

// Requests grouped by server, each group in the order given: order[j] is the
// request sent j-th; server s gets order[start[s] .. start[s + 1]).
struct Grouping {
  at::Tensor order;
  std::vector<int64_t> start;
};

// Whether any of `slots` lies outside a shard of `rows` rows.
bool outside(const at::Tensor& slots, int64_t rows) {
  return slots.numel() > 0 &&
         (slots.min().item<int64_t>() < 0 || slots.max().item<int64_t>() >= rows);
}

Grouping group_by_server(const at::Tensor& servers, int k) {
  const at::Tensor srv = servers.to(at::kLong).contiguous();
  const int64_t n = srv.numel();
  const int64_t* sp = srv.data_ptr<int64_t>();
  Grouping g{at::empty({n}, at::kLong), std::vector<int64_t>(k + 1, 0)};
  for (int64_t i = 0; i < n; ++i) {
    if (sp[i] < 0 || sp[i] >= k) throw Error(fmt::format("ps: request for server {}", sp[i]));
    ++g.start[sp[i] + 1];
  }
  for (int s = 0; s < k; ++s) g.start[s + 1] += g.start[s];
  std::vector<int64_t> next(g.start.begin(), g.start.end() - 1);
  int64_t* o = g.order.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) o[next[sp[i]]++] = i;
  return g;
}

}  // namespace

const char* to_string(Consistency c) {
  switch (c) {
    case Consistency::kBsp:
      return "BSP";
    case Consistency::kSsp:
      return "SSP";
    case Consistency::kAsp:
      return "ASP";
  }
  return "?";
}

ServerOptions server_options(const config::TrainConfig& cfg) {
  ServerOptions o;
  o.table_rows = cfg.table_rows();
  o.dim = cfg.model.embedding_dim;
  o.servers = cfg.ps.servers;
  o.colocated = cfg.ps.placement == "colocated";
  o.update =
      cfg.optim.name == "adagrad" ? kernels::RowUpdate::kRowwiseAdagrad : kernels::RowUpdate::kSgd;
  o.eps = cfg.optim.eps;
  o.seed = static_cast<uint64_t>(cfg.run.seed);
  o.consistency = cfg.ps.consistency == "ssp"   ? Consistency::kSsp
                  : cfg.ps.consistency == "asp" ? Consistency::kAsp
                                                : Consistency::kBsp;
  o.staleness = cfg.ps.staleness;
  o.timeout_s = cfg.comm.timeout_s;
  o.write = {static_cast<int>(cfg.ckpt.gzip), cfg.ckpt.file_locking};
  return o;
}

// A request whose rows have not all arrived.
struct ParameterServer::Pending {
  int64_t n = 0;
  Grouping groups;
  std::vector<std::optional<comm::Message>> replies;  ///< per server
  int arrived = 0;
  int64_t clock = 0;
  at::Tensor sorted;  ///< lock step: the slots, grouped by server
};

ParameterServer::ParameterServer(ServerOptions o, comm::Communicator& world)
    : options_(std::move(o)), world_(world), sharding_(options_.table_rows, options_.servers) {
  const int n = world_.size(), k = options_.servers;
  if (options_.colocated ? k != n : k >= n)
    throw ConfigError(fmt::format("ps.servers: {} {} servers do not fit {} ranks", k,
                                  options_.colocated ? "colocated" : "dedicated", n));
  if (options_.staleness < 0)
    throw ConfigError(fmt::format("ps.staleness: {} is negative", options_.staleness));
  if (!lockstep() && !comm::Runtime::get().info().threads)
    throw ConfigError(
        "ps.placement: dedicated servers and workers send beats from a thread of their own, but "
        "this MPI does not provide MPI_THREAD_MULTIPLE; use colocated placement");
  const int me = world_.rank();
  server_ = options_.colocated ? me : (me >= n - k ? me - (n - k) : -1);
  trains_ = options_.colocated || server_ < 0;
  workers_ = options_.colocated ? n : n - k;
  server_heard_.assign(k, Clock::now());
  // Collective, so before anything that throws on some ranks only.
  if (lockstep())
    exchange_ = world_.split(0);
  else
    mailbox_ = world_.mailbox();
  if (serves()) make_shard();
  if (lockstep()) return;
  // Last, once nothing can throw (a thread must not outlive a failed constructor).
  beats_ = std::thread([this] { beat(); });
}

void ParameterServer::make_shard() {
  const int me = world_.rank();
  // Refuse a shard this rank cannot hold, before allocating it.
  std::string why;
  const double limit = comm::Runtime::get().memory_per_rank(&why);
  if (static_cast<double>(shard_bytes(server_)) > limit)
    throw ConfigError(fmt::format(
        "model.embedding_rows: server {} (rank {}) needs {} for its shard of the tables, but {}; "
        "use more ps.servers or smaller tables",
        server_, me, log::bytes(static_cast<double>(shard_bytes(server_))), why));
  const int64_t rows = sharding_.rows_on(server_);
  weight_ = at::empty({rows, options_.dim}, at::kFloat);
  state_ = at::zeros({rows}, at::kFloat);
  for (int64_t t = 0; t < sharding_.tables(); ++t) {
    at::Tensor part =
        weight_.narrow(0, sharding_.table_offset(server_, t), sharding_.rows_on(server_, t));
    nn::init_embedding_rows(part, options_.seed, t, sharding_.rows_of(server_, t),
                            options_.table_rows[t]);
  }
  applied_.assign(workers_, 0);
  queued_.resize(workers_);
  stopped_.assign(workers_, false);
  saving_.assign(workers_, "");
  heard_.assign(workers_, Clock::now());
}

ParameterServer::~ParameterServer() { end_beats(); }

void ParameterServer::beat() {
  // Liveness apart from requests: a worker may be silent for a long time (waiting
  // in the dense layers' all-reduce for another one, writing a checkpoint), and a
  // server too (waiting for a step to complete). Four beats per comm.timeout_s.
  const auto every = std::chrono::duration<double>(std::clamp(options_.timeout_s / 4, 0.05, 10.0));
  std::unique_lock<std::mutex> lock(beat_mutex_);
  while (!beats_done_) {
    if (trains_)
      for (int s = 0; s < options_.servers; ++s) mailbox_->post(rank_of_server(s), kBeatTag, {});
    if (serves())
      for (int w = 0; w < workers_; ++w) mailbox_->post(w, kBeatTag, {});
    beat_cv_.wait_for(lock, every);
  }
}

void ParameterServer::end_beats() {
  {
    std::lock_guard<std::mutex> lock(beat_mutex_);
    beats_done_ = true;
  }
  beat_cv_.notify_all();
  if (beats_.joinable()) beats_.join();
}

comm::Message ParameterServer::await(int tag, const std::function<bool(int)>& waits_for,
                                     const char* what) {
  auto pause = std::chrono::microseconds(2);
  for (;;) {
    if (std::optional<comm::Message> m = mailbox_->poll(tag)) return std::move(*m);
    const auto now = Clock::now();
    while (std::optional<comm::Message> b = mailbox_->poll(kBeatTag)) {
      const int s = server_at(b->source);
      if (s >= 0) server_heard_[s] = now;
    }
    for (int s = 0; s < options_.servers; ++s) {
      const double quiet = std::chrono::duration<double>(now - server_heard_[s]).count();
      if (waits_for(s) && quiet > options_.timeout_s)
        throw CommError(
            fmt::format("ps: worker rank {} has heard nothing from server {} (rank {}) for {} s "
                        "(comm.timeout_s) while waiting for {}: the server died or hangs{}",
                        world_.rank(), s, rank_of_server(s), options_.timeout_s, what,
                        host_of(rank_of_server(s))));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(50));
  }
}

int ParameterServer::server_at(int rank) const {
  const int s = options_.colocated ? rank : rank - (world_.size() - options_.servers);
  return s >= 0 && s < options_.servers ? s : -1;
}

int ParameterServer::rank_of_server(int s) const {
  return options_.colocated ? s : world_.size() - options_.servers + s;
}

int64_t ParameterServer::shard_bytes(int s) const {
  return shard_rows(s) * (options_.dim + 1) * static_cast<int64_t>(sizeof(float));
}

std::string ParameterServer::describe() const {
  const int n = world_.size(), k = options_.servers;
  std::string model = to_string(options_.consistency);
  if (options_.consistency == Consistency::kSsp)
    model += fmt::format(" (staleness {})", options_.staleness);
  if (lockstep() && options_.consistency != Consistency::kBsp)
    model += ", exchanged in lock step: every read is exact";
  std::string out =
      options_.colocated
          ? fmt::format("ps: {} rank(s), each trains and serves a shard (colocated), {}", n, model)
          : fmt::format("ps: {} train{}, {} serve{} (dedicated), {}", span(0, n - k - 1),
                        n - k == 1 ? "s" : "", span(n - k, n - 1), k == 1 ? "s" : "", model);
  for (int s = 0; s < k; ++s)
    out += fmt::format("\nps: server {} (rank {}) holds {} rows with their row-wise state, {}", s,
                       rank_of_server(s), shard_rows(s), log::bytes(static_cast<double>(shard_bytes(s))));
  return out;
}

// ---- The worker side.

int64_t ParameterServer::request(const at::Tensor& servers, const at::Tensor& slots,
                                 int64_t clock) {
  const int k = options_.servers;
  auto p = std::make_unique<Pending>();
  p->n = slots.numel();
  p->groups = group_by_server(servers, k);
  p->replies.resize(k);
  p->clock = clock;
  const at::Tensor sorted = slots.to(at::kLong).index_select(0, p->groups.order);
  const int64_t id = next_id_++;
  if (lockstep())
    p->sorted = sorted;  // asked for in collect()
  else
    for (int s = 0; s < k; ++s) {
      const int64_t first = p->groups.start[s], m = p->groups.start[s + 1] - first;
      Writer w;
      w.words({kPull, id, clock, 0, m});
      w.tensor(sorted.narrow(0, first, m));
      mailbox_->post(rank_of_server(s), kRequestTag, w.take());
    }
  pending_.emplace(id, std::move(p));
  return id;
}

void ParameterServer::discard(int64_t id) {
  if (lockstep())
    pending_.erase(id);
  else
    collect(id);  // its replies must still be received
}

at::Tensor ParameterServer::collect(int64_t id) {
  const auto began = Clock::now();
  Pending& p = *pending_.at(id);
  const at::Tensor grouped = lockstep() ? collect_in_step(p) : collect_replies(p);
  // The servers' rows, in request order.
  at::Tensor out = at::empty({p.n, options_.dim}, at::kFloat);
  out.index_copy_(0, p.groups.order, grouped);
  pending_.erase(id);
  wait_seconds_ += std::chrono::duration<double>(Clock::now() - began).count();
  return out;
}

at::Tensor ParameterServer::collect_replies(Pending& p) {
  const int k = options_.servers;
  while (p.arrived < k) {
    comm::Message m = await(
        kReplyTag, [&](int s) { return !p.replies[s].has_value(); }, "rows it pulled");
    const int s = server_at(m.source);
    const int64_t rid = Reader(m).word();
    const auto it = pending_.find(rid);
    if (s < 0 || it == pending_.end() || it->second->replies[s])
      throw CommError(fmt::format("ps: an unexpected reply from rank {}", m.source));
    it->second->replies[s] = std::move(m);
    ++it->second->arrived;
  }
  const int64_t dim = options_.dim;
  at::Tensor grouped = at::empty({p.n, dim}, at::kFloat);
  Read read{p.clock, {}};
  for (int s = 0; s < k; ++s) {
    Reader r(*p.replies[s]);
    r.word();
    const int64_t m = r.word(), first = p.groups.start[s];
    if (m != p.groups.start[s + 1] - first)
      throw CommError(fmt::format("ps: server {} answered {} rows", s, m));
    const at::Tensor applied = r.tensor({workers_}, at::kLong);
    if (record_)
      read.applied.emplace_back(applied.data_ptr<int64_t>(),
                                applied.data_ptr<int64_t>() + workers_);
    grouped.narrow(0, first, m).copy_(r.tensor({m, dim}, at::kFloat));
  }
  if (record_) reads_.push_back(std::move(read));
  return grouped;
}

void ParameterServer::push(const at::Tensor& servers, const at::Tensor& slots,
                           const at::Tensor& grads, double lr) {
  const int k = options_.servers;
  const Grouping g = group_by_server(servers, k);
  const at::Tensor s_sorted = slots.to(at::kLong).index_select(0, g.order);
  const at::Tensor g_sorted = slots.numel() > 0
                                  ? grads.to(at::kFloat).index_select(0, g.order).contiguous()
                                  : at::empty({0, options_.dim}, at::kFloat);
  if (lockstep()) {
    const auto began = Clock::now();
    push_in_step(s_sorted, g_sorted, g.start, lr);
    wait_seconds_ += std::chrono::duration<double>(Clock::now() - began).count();
    ++clock_;
    return;
  }
  for (int s = 0; s < k; ++s) {
    const int64_t first = g.start[s], m = g.start[s + 1] - first;
    Writer w;
    w.words({kPush, 0, clock_, bits_of(lr), m});
    w.tensor(s_sorted.narrow(0, first, m));
    w.tensor(g_sorted.narrow(0, first, m));
    mailbox_->post(rank_of_server(s), kRequestTag, w.take());
  }
  ++clock_;
}

std::vector<ckpt::ShardRecord> ParameterServer::save(const std::string& path) {
  if (lockstep()) return save_in_step(path);
  const int k = options_.servers;
  for (int s = 0; s < k; ++s) {
    Writer w;
    w.words({kSave, 0, clock_, 0, static_cast<int64_t>(path.size())});
    w.text(path);
    mailbox_->post(rank_of_server(s), kRequestTag, w.take());
  }
  if (world_.rank() != 0) return {};
  std::vector<std::optional<comm::Message>> saved(k);
  for (int got = 0; got < k; ++got) {
    comm::Message m = await(
        kSavedTag, [&](int s) { return !saved[s].has_value(); }, "its checkpoint shard");
    saved.at(server_at(m.source)) = std::move(m);
  }
  std::vector<std::vector<char>> bytes;
  for (auto& m : saved) bytes.push_back(std::move(m->bytes));
  return shard_records(path, bytes);
}

std::vector<ckpt::ShardRecord> ParameterServer::shard_records(
    const std::string& path, const std::vector<std::vector<char>>& saved) const {
  const int k = options_.servers;
  std::vector<ckpt::ShardRecord> records;
  for (int s = 0; s < k; ++s) {
    const comm::Message m{rank_of_server(s), saved[s]};
    Reader r(m);
    const int64_t ok = r.word(), bytes = r.word();
    const std::string text = r.rest();
    if (!ok)
      throw Error(fmt::format("ps: server {} (rank {}) could not save its shard: {}", s,
                              rank_of_server(s), text));
    records.push_back(
        {std::filesystem::path(ckpt::shard_path(path, s, k)).filename().string(), bytes, text});
  }
  return records;
}

void ParameterServer::load(const std::string& path) {
  if (serves()) load_shard(path, sharding_, server_, weight_, state_, options_.write.locking);
}

void ParameterServer::stop() {
  if (lockstep()) {
    pending_.clear();  // nothing was sent for them
    return;
  }
  while (!pending_.empty()) collect(pending_.begin()->first);  // the servers' sends complete
  for (int s = 0; s < options_.servers; ++s) {
    Writer w;
    w.words({kStop, 0, clock_, 0, 0});
    mailbox_->post(rank_of_server(s), kRequestTag, w.take());
  }
  end_beats();
}

// ---- The server side.

void ParameterServer::serve() {
  // Between messages the server sleeps, from 2 us up to 100 us: an idle server
  // costs no core.
  auto pause = std::chrono::microseconds(2);
  auto checked = Clock::now();
  while (stopped_count_ < workers_) {
    if (std::optional<comm::Message> m = mailbox_->poll(kRequestTag)) {
      handle(*m);
      pause = std::chrono::microseconds(2);
      continue;
    }
    const auto now = Clock::now();
    while (std::optional<comm::Message> b = mailbox_->poll(kBeatTag))
      if (b->source < workers_) heard_[b->source] = now;
    if (now - checked > std::chrono::milliseconds(100)) {
      check_silence(now);
      checked = now;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(100));
  }
}

void ParameterServer::check_silence(Clock::time_point now) const {
  // The worker silent longest (all beat while alive, so at most one is silent).
  int silent = -1;
  for (int w = 0; w < workers_; ++w)
    if (!stopped_[w] && (silent < 0 || heard_[w] < heard_[silent])) silent = w;
  if (silent < 0) return;
  const double quiet = std::chrono::duration<double>(now - heard_[silent]).count();
  if (quiet > options_.timeout_s)
    throw CommError(
        fmt::format("ps: server {} (rank {}) has heard nothing from worker rank {} for {} s "
                    "(comm.timeout_s): the worker died or hangs{}",
                    server_, world_.rank(), silent, options_.timeout_s, host_of(silent)));
}

bool ParameterServer::answerable(int64_t clock) const {
  if (options_.consistency == Consistency::kAsp) return true;
  const int64_t bound = options_.consistency == Consistency::kSsp ? options_.staleness : 0;
  return *std::min_element(applied_.begin(), applied_.end()) >= clock - bound;
}

void ParameterServer::answer(int worker, int64_t id, const at::Tensor& slots) {
  Writer w;
  w.words({id, slots.numel()});
  w.raw(applied_.data(), applied_.size() * sizeof(int64_t));
  w.tensor(weight_.index_select(0, slots));
  mailbox_->post(worker, kReplyTag, w.take());
}

void ParameterServer::answer_deferred() {
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    if (!answerable(it->clock)) {
      ++it;
      continue;
    }
    answer(it->worker, it->id, it->slots);
    it = deferred_.erase(it);
  }
}

void ParameterServer::apply(const std::vector<Push>& pushes) {
  std::vector<at::Tensor> slots, grads;
  for (const Push& p : pushes) {
    slots.push_back(p.slots);
    grads.push_back(p.grads);
  }
  const at::Tensor all_slots = at::cat(slots);
  if (all_slots.numel() == 0) return;
  nn::RowOptimizer opt{options_.update, pushes.front().lr, options_.eps, state_};
  if (pushes.size() == 1) {  // one worker's rows are distinct
    nn::rowwise_update(weight_, opt, all_slots, pushes.front().grads);
    return;
  }
  // Summed per row in the pushes' order (worker rank order, for BSP), then one
  // update each: as replicated training does after its all-gather.
  const auto [rows, sums] = nn::sum_rows_in_order(all_slots, at::cat(grads), weight_.size(0));
  nn::rowwise_update(weight_, opt, rows.contiguous(), sums.contiguous());
}

std::vector<char> ParameterServer::save_shard(const std::string& path, int64_t step) {
  const std::string file = ckpt::shard_path(path, server_, options_.servers);
  Writer w;
  try {
    ckpt::State s;
    s.step = step;
    s.world_size = options_.servers;
    s.version = TANDEM_VERSION;
    s.params = shard_tensors(sharding_, server_, weight_, state_);
    ckpt::write(file, s, options_.write);
    const ckpt::ShardRecord r = ckpt::shard_record(file);
    w.words({1, r.bytes});
    w.text(r.digest);
  } catch (const std::exception& e) {
    w.words({0, 0});
    w.text(fmt::format("{}: {}", file, e.what()));
  }
  return w.take();
}

void ParameterServer::handle(comm::Message& m) {
  Reader r(m);
  const int64_t op = r.word(), id = r.word(), clock = r.word();
  const double lr = double_of(r.word());
  const int64_t n = r.word();
  const int w = m.source;  // a worker's number is its world rank
  if (w < 0 || w >= workers_ || n < 0)
    throw CommError(
        fmt::format("ps: server {} got a request from rank {}, not a worker", server_, m.source));
  heard_[w] = Clock::now();
  if (op == kSave) {
    // Written once every worker asked: then it holds each one's pushes before it.
    saving_[w] = r.text(static_cast<size_t>(n));
    if (std::any_of(saving_.begin(), saving_.end(), [](const auto& p) { return p.empty(); }))
      return;
    if (std::any_of(saving_.begin(), saving_.end(), [&](const auto& p) { return p != saving_[w]; }))
      throw CommError(
          fmt::format("ps: server {}: the workers asked to save different checkpoints ({} and {})",
                      server_, saving_.front(), saving_.back()));
    mailbox_->post(0, kSavedTag, save_shard(saving_[w], clock));
    for (std::string& p : saving_) p.clear();
    return;
  }
  const at::Tensor slots = r.tensor({n}, at::kLong);
  if (outside(slots, weight_.size(0)))
    throw CommError(
        fmt::format("ps: worker rank {} asked server {} for a slot out of its shard", w, server_));
  switch (op) {
    case kPull:
      if (answerable(clock))
        answer(w, id, slots);
      else
        deferred_.push_back({w, id, clock, slots});
      return;
    case kPush: {
      Push p{slots, r.tensor({n, options_.dim}, at::kFloat), lr};
      const int64_t expected = applied_[w] + static_cast<int64_t>(queued_[w].size());
      if (clock != expected)
        throw CommError(
            fmt::format("ps: server {} got worker rank {}'s push of step {}, expected {}", server_,
                        w, clock, expected));
      if (options_.consistency != Consistency::kBsp) {
        apply({p});
        ++applied_[w];
        answer_deferred();
        return;
      }
      // BSP: a step's pushes are applied together, once every worker sent its own.
      queued_[w].push_back(std::move(p));
      while (
          std::all_of(queued_.begin(), queued_.end(), [](const auto& q) { return !q.empty(); })) {
        std::vector<Push> step;
        for (auto& q : queued_) {
          step.push_back(std::move(q.front()));
          q.pop_front();
        }
        apply(step);
        for (int64_t& a : applied_) ++a;
        answer_deferred();  // before the next step's pushes
      }
      return;
    }
    case kStop:
      if (!stopped_[w]) ++stopped_count_;
      stopped_[w] = true;
      return;
    default:
      throw CommError(fmt::format("ps: server {} got unknown op {} from rank {}", server_, op, w));
  }
}

}  // namespace tandem::ps

// ---- Lock step (colocated): rank s is server s and worker s.

namespace tandem::ps {

at::Tensor ParameterServer::collect_in_step(Pending& p) {
  const int k = options_.servers;
  std::vector<int64_t> send(k), asked;
  for (int s = 0; s < k; ++s) send[s] = p.groups.start[s + 1] - p.groups.start[s];
  // The slots every worker asks of this rank's shard, in worker order; the rows go
  // back the same way, and arrive grouped by server as asked.
  const at::Tensor slots = exchange_->alltoallv(p.sorted, send, &asked);
  if (outside(slots, weight_.size(0)))
    throw CommError(fmt::format("ps: server {} was asked for a slot out of its shard", server_));
  if (record_) reads_.push_back({p.clock, std::vector<std::vector<int64_t>>(k, applied_)});
  return exchange_->alltoallv_expecting(weight_.index_select(0, slots), asked, send);
}

void ParameterServer::push_in_step(const at::Tensor& slots, const at::Tensor& grads,
                                   const std::vector<int64_t>& start, double lr) {
  const int k = options_.servers;
  std::vector<int64_t> send(k), got;
  for (int s = 0; s < k; ++s) send[s] = start[s + 1] - start[s];
  const at::Tensor my_slots = exchange_->alltoallv(slots, send, &got);
  const at::Tensor my_grads = exchange_->alltoallv_expecting(grads, send, got);
  if (outside(my_slots, weight_.size(0)))
    throw CommError(fmt::format("ps: server {} got a push out of its shard", server_));
  std::vector<Push> pushes;  // one per worker, in rank order: BSP's sum order
  int64_t first = 0;
  for (int w = 0; w < k; ++w) {
    pushes.push_back({my_slots.narrow(0, first, got[w]), my_grads.narrow(0, first, got[w]), lr});
    first += got[w];
  }
  apply(pushes);
  for (int64_t& a : applied_) ++a;
}

std::vector<ckpt::ShardRecord> ParameterServer::save_in_step(const std::string& path) {
  // Every rank writes its shard now (it holds exactly the pushes before this step);
  // worker 0 gathers what each wrote.
  const std::vector<char> mine = save_shard(path, clock_);
  std::vector<std::vector<char>> saved;
  for (int s = 0; s < options_.servers; ++s) {
    const std::string got =
        comm::broadcast_text(*exchange_, std::string(mine.begin(), mine.end()), s);
    saved.emplace_back(got.begin(), got.end());
  }
  if (world_.rank() != 0) return {};
  return shard_records(path, saved);
}

}  // namespace tandem::ps
