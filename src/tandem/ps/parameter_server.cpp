#include "tandem/ps/parameter_server.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include <unistd.h>

#include "tandem/comm/runtime.h"
#include "tandem/nn/embedding_bag.h"
#include "tandem/util/error.h"

namespace tandem::ps {
namespace {

constexpr int64_t kHeader = 3;  // op, learning rate (its bits), slot count

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

const char* op_name(int64_t op) {
  switch (op) {
    case 1:
      return "pull";
    case 2:
      return "push";
    case 3:
      return "stop";
    default:
      return "none";
  }
}

std::string span(int first, int last) {
  return first == last ? fmt::format("rank {}", first) : fmt::format("ranks {}-{}", first, last);
}

std::string human_bytes(int64_t b) {
  if (b >= (int64_t{1} << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (int64_t{1} << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  return fmt::format("{:.1f} KiB", static_cast<double>(b) / 1024);
}

}  // namespace

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
  return o;
}

ParameterServer::ParameterServer(ServerOptions o, comm::Communicator& world)
    : options_(std::move(o)), world_(world), sharding_(options_.table_rows, options_.servers) {
  const int n = world_.size(), k = options_.servers;
  if (options_.colocated ? k != n : k >= n)
    throw ConfigError(fmt::format("ps.servers: {} {} servers do not fit {} ranks", k,
                                  options_.colocated ? "colocated" : "dedicated", n));
  const int me = world_.rank();
  server_ = options_.colocated ? me : (me >= n - k ? me - (n - k) : -1);
  trains_ = options_.colocated || server_ < 0;
  if (!serves()) return;
  // Refuse a shard this node cannot hold, before allocating it: the node's
  // available memory, shared by its ranks.
  const int local = std::max(1, comm::Runtime::get().info().local_size);
  const double available = static_cast<double>(sysconf(_SC_AVPHYS_PAGES)) *
                           static_cast<double>(sysconf(_SC_PAGESIZE)) / local;
  if (static_cast<double>(shard_bytes(server_)) > available)
    throw ConfigError(fmt::format(
        "model.embedding_rows: server {} (rank {}) needs {} for its shard of the tables, but its "
        "node has {} available for each of its {} rank(s); use more ps.servers or smaller tables",
        server_, me, human_bytes(shard_bytes(server_)),
        human_bytes(static_cast<int64_t>(available)), local));
  const int64_t rows = sharding_.rows_on(server_);
  weight_ = at::empty({rows, options_.dim}, at::kFloat);
  state_ = at::zeros({rows}, at::kFloat);
  for (int64_t t = 0; t < sharding_.tables(); ++t) {
    at::Tensor part =
        weight_.narrow(0, sharding_.table_offset(server_, t), sharding_.rows_on(server_, t));
    nn::init_embedding_rows(part, options_.seed, t, sharding_.rows_of(server_, t),
                            options_.table_rows[t]);
  }
}

int ParameterServer::rank_of_server(int s) const {
  return options_.colocated ? s : world_.size() - options_.servers + s;
}

int64_t ParameterServer::shard_bytes(int s) const {
  return shard_rows(s) * (options_.dim + 1) * static_cast<int64_t>(sizeof(float));
}

std::string ParameterServer::describe() const {
  const int n = world_.size(), k = options_.servers;
  std::string out =
      options_.colocated
          ? fmt::format("ps: {} rank(s), each trains and serves a shard (colocated), BSP", n)
          : fmt::format("ps: {} train{}, {} serve{} (dedicated), BSP", span(0, n - k - 1),
                        n - k == 1 ? "s" : "", span(n - k, n - 1), k == 1 ? "s" : "");
  for (int s = 0; s < k; ++s)
    out += fmt::format("\nps: server {} (rank {}) holds {} rows with their row-wise state, {}", s,
                       rank_of_server(s), shard_rows(s), human_bytes(shard_bytes(s)));
  return out;
}

at::Tensor ParameterServer::pull(const at::Tensor& servers, const at::Tensor& slots) {
  return exchange(kPull, 0, servers, slots, at::Tensor());
}

void ParameterServer::push(const at::Tensor& servers, const at::Tensor& slots,
                           const at::Tensor& grads, double lr) {
  exchange(kPush, lr, servers, slots, grads);
}

void ParameterServer::stop() {
  const at::Tensor none = at::empty({0}, at::kLong);
  exchange(kStop, 0, none, none, at::Tensor());
}

void ParameterServer::serve() {
  // What the workers ask for arrives in each exchange's headers.
  const at::Tensor none = at::empty({0}, at::kLong);
  while (!stopped_) exchange(kNone, 0, none, none, at::Tensor());
}

void ParameterServer::arrive() {
  std::unique_ptr<comm::Work> all = world_.ibarrier();
  if (trains_) return all->wait();  // a worker: the others are about to come
  // A dedicated server may wait a whole training step: it sleeps, from 2 us up to
  // 100 us between tests, instead of spinning a core in a blocking collective.
  auto pause = std::chrono::microseconds(2);
  while (!all->test()) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(100));
  }
}

at::Tensor ParameterServer::exchange(Op op, double lr, const at::Tensor& servers,
                                     const at::Tensor& slots, const at::Tensor& grads) {
  const int n_ranks = world_.size(), k = options_.servers;
  const int64_t dim = options_.dim;
  const int64_t n = slots.numel();
  const at::Tensor srv = servers.to(at::kLong).contiguous(), slt = slots.to(at::kLong).contiguous();
  const int64_t* sp = srv.data_ptr<int64_t>();
  const int64_t* lp = slt.data_ptr<int64_t>();

  // This rank's requests grouped by server, keeping their order: sorted[j] is the
  // request sent j-th.
  std::vector<int64_t> count(k, 0), start(k + 1, 0), sorted(n);
  for (int64_t i = 0; i < n; ++i) {
    if (sp[i] < 0 || sp[i] >= k) throw Error(fmt::format("ps: request for server {}", sp[i]));
    ++count[sp[i]];
  }
  for (int s = 0; s < k; ++s) start[s + 1] = start[s] + count[s];
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) sorted[next[sp[i]]++] = i;
  }
  const auto server_at = [&](int rank) {
    const int s = options_.colocated ? rank : rank - (n_ranks - k);
    return s >= 0 && s < k ? s : -1;
  };

  arrive();
  // 1. To every rank a header; to each server the slots asked of it.
  std::vector<int64_t> msg;
  std::vector<int64_t> send_rows(n_ranks);
  msg.reserve(kHeader * n_ranks + n);
  for (int d = 0; d < n_ranks; ++d) {
    const int s = server_at(d);
    const int64_t m = s >= 0 ? count[s] : 0;
    msg.insert(msg.end(), {static_cast<int64_t>(op), bits_of(lr), m});
    for (int64_t j = 0; j < m; ++j) msg.push_back(lp[sorted[start[s] + j]]);
    send_rows[d] = kHeader + m;
  }
  const at::Tensor got = world_.alltoallv(
      at::from_blob(msg.data(), {static_cast<int64_t>(msg.size())}, at::kLong), send_rows);
  const int64_t* g = got.data_ptr<int64_t>();
  int64_t agreed = kNone, agreed_rank = -1;
  double agreed_lr = 0;
  std::vector<at::Tensor> asked(n_ranks);  // slots each rank asked of this server
  int64_t pos = 0;
  for (int r = 0; r < n_ranks; ++r) {
    const int64_t o = g[pos], m = g[pos + 2];
    if (o != kNone) {
      if (agreed == kNone) {
        agreed = o;
        agreed_rank = r;
        agreed_lr = double_of(g[pos + 1]);
      } else if (o != agreed) {
        throw CommError(fmt::format("ps: rank {} asked for a {} while rank {} asked for a {}", r,
                                    op_name(o), agreed_rank, op_name(agreed)));
      }
    }
    asked[r] = got.narrow(0, pos + kHeader, m);
    pos += kHeader + m;
  }
  if (agreed == kStop) {
    stopped_ = true;
    return at::Tensor();
  }

  // 2. Rows back to the workers, or gradients to the servers.
  const auto empty_rows = at::empty({0, dim}, at::kFloat);
  if (agreed == kPull) {
    std::vector<at::Tensor> replies;
    std::vector<int64_t> reply_rows(n_ranks, 0);
    if (serves())
      for (int r = 0; r < n_ranks; ++r) {
        replies.push_back(weight_.index_select(0, asked[r]));
        reply_rows[r] = asked[r].numel();
      }
    const at::Tensor values =
        world_.alltoallv(replies.empty() ? empty_rows : at::cat(replies), reply_rows);
    if (op != kPull) return at::Tensor();  // a dedicated server: nothing was asked of it
    // Servers answer in server order, each in the order asked: sorted order.
    at::Tensor out = at::empty({n, dim}, at::kFloat);
    out.index_copy_(0, at::from_blob(sorted.data(), {n}, at::kLong).clone(), values);
    return out;
  }
  if (agreed == kPush) {
    std::vector<int64_t> grad_rows(n_ranks, 0);
    at::Tensor sent = empty_rows;
    if (op == kPush && n > 0) {
      sent = grads.to(at::kFloat)
                 .index_select(0, at::from_blob(sorted.data(), {n}, at::kLong).clone())
                 .contiguous();
      for (int d = 0; d < n_ranks; ++d)
        if (server_at(d) >= 0) grad_rows[d] = count[server_at(d)];
    }
    const at::Tensor received = world_.alltoallv(sent, grad_rows);
    if (serves() && received.size(0) > 0) {
      // Every worker's rows, in rank order, summed per slot, then one update each.
      const auto [rows, sums] = nn::sum_rows_in_order(at::cat(asked), received, weight_.size(0));
      nn::RowOptimizer opt{options_.update, agreed_lr, options_.eps, state_};
      nn::rowwise_update(weight_, opt, rows.contiguous(), sums.contiguous());
    }
    return at::Tensor();
  }
  return at::Tensor();
}

}  // namespace tandem::ps
