#include "tandem/comm/communicator.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <array>
#include <cstring>

#include "tandem/util/error.h"

namespace tandem::comm {

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
  }
  return "?";
}

ReduceOp parse_reduce_op(const std::string& name) {
  if (name == "sum") return ReduceOp::kSum;
  if (name == "avg") return ReduceOp::kAvg;
  if (name == "min") return ReduceOp::kMin;
  if (name == "max") return ReduceOp::kMax;
  throw ConfigError("unknown reduce op '" + name + "' (expected sum, avg, min or max)");
}

void Communicator::check_tensor(const at::Tensor& t, const char* what,
                                bool needs_contiguous) const {
  if (!t.defined()) throw CommError(fmt::format("comm: {} got an undefined tensor", what));
  if (!accepts(t.device()))
    throw CommError(fmt::format("comm: the {} backend cannot take a tensor on {} ({})", backend(),
                                t.device().str(), what));
  switch (t.scalar_type()) {
    case at::kFloat:
    case at::kDouble:
    case at::kBFloat16:
    case at::kInt:
    case at::kLong:
      break;
    default:
      throw CommError(
          fmt::format("comm: {} does not support dtype {}", what, c10::toString(t.scalar_type())));
  }
  if (needs_contiguous && !t.is_contiguous())
    throw CommError(fmt::format("comm: {} needs a contiguous tensor", what));
}

namespace {

// Fixed-size description of one collective as a rank issued it.
constexpr int kMaxDims = 8;
constexpr int kSigLen = 6 + kMaxDims;
using Signature = std::array<int64_t, kSigLen>;
constexpr const char* kOpNames[] = {"allreduce", "broadcast", "allgather", "allgatherv",
                                    "alltoall",  "alltoallv", "barrier",   "iallreduce",
                                    "split",     "mailbox"};

int op_code(const char* op) {
  for (int i = 0; i < static_cast<int>(std::size(kOpNames)); ++i)
    if (std::string(op) == kOpNames[i]) return i;
  return -1;
}

// Elements in one slice along dim 0 (also when dim 0 is empty).
int64_t elements_per_row(const at::Tensor& t) {
  int64_t n = 1;
  for (int64_t d = 1; d < t.dim(); ++d) n *= t.size(d);
  return n;
}

std::string describe(const Signature& s) {
  if (s[1] < 0 || s[1] >= static_cast<int64_t>(std::size(kOpNames))) return "an unknown op";
  std::string out = kOpNames[s[1]];
  if (s[2] >= 0) {
    out += ' ';
    out += c10::toString(static_cast<at::ScalarType>(s[2]));
    out += " [";
    for (int64_t d = 0; d < s[3] && d < kMaxDims; ++d) {
      if (d) out += ", ";
      out += s[6 + d] < 0 ? std::string("*") : std::to_string(s[6 + d]);
    }
    out += ']';
  }
  if (s[4] >= 0) out += fmt::format(" root {}", s[4]);
  return out;
}

}  // namespace

void Communicator::begin(const char* op, const at::Tensor* t, int64_t root, bool variable_dim0) {
  const uint64_t seq = sequence_++;
  if (!options_.check || size() == 1) return;
  Signature mine;
  mine.fill(-1);
  mine[0] = static_cast<int64_t>(seq);
  mine[1] = op_code(op);
  if (t) {
    mine[2] = static_cast<int64_t>(t->scalar_type());
    mine[3] = t->dim();
    if (t->dim() > kMaxDims)
      throw CommError(fmt::format("comm: {} supports at most {} dims", op, kMaxDims));
    for (int64_t d = 0; d < t->dim(); ++d) mine[6 + d] = t->size(d);
    if (variable_dim0 && t->dim() > 0) mine[6] = -1;
  }
  mine[4] = root;
  mine[5] = 0;
  at::Tensor in = at::from_blob(mine.data(), {kSigLen}, at::kLong);
  at::Tensor all = at::empty({size(), kSigLen}, at::kLong);
  do_allgather(in, all);
  const int64_t* p = all.data_ptr<int64_t>();
  for (int r = 1; r < size(); ++r) {
    if (!std::equal(p, p + kSigLen, p + r * kSigLen)) {
      Signature a, b;
      std::copy(p, p + kSigLen, a.begin());
      std::copy(p + r * kSigLen, p + (r + 1) * kSigLen, b.begin());
      throw CommError(fmt::format(
          "comm.check: collective #{} differs between rank 0 ({}, #{}) and rank {} ({}, #{})", seq,
          describe(a), a[0], r, describe(b), b[0]));
    }
  }
}

void Communicator::check_peer(int peer, const char* op) const {
  if (peer < 0 || peer >= size())
    throw CommError(fmt::format("comm: {} on rank {} names rank {}, but the world has {} ranks", op,
                                rank(), peer, size()));
}

std::vector<int64_t> Communicator::exchange_counts(int64_t mine) {
  at::Tensor in = at::full({1}, mine, at::kLong);
  at::Tensor out = at::empty({size(), 1}, at::kLong);
  do_allgather(in, out);
  const int64_t* p = out.data_ptr<int64_t>();
  return {p, p + size()};
}

void Communicator::allreduce(at::Tensor& t, ReduceOp op) {
  check_tensor(t, "allreduce", true);
  if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type()))
    throw CommError("comm: allreduce avg needs a floating dtype, got " +
                    std::string(c10::toString(t.scalar_type())));
  begin("allreduce", &t, -1, false);
  do_allreduce(t, op);
}

std::unique_ptr<Work> Communicator::iallreduce(at::Tensor& t, ReduceOp op) {
  check_tensor(t, "iallreduce", true);
  if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type()))
    throw CommError("comm: iallreduce avg needs a floating dtype");
  begin("iallreduce", &t, -1, false);
  return do_iallreduce(t, op);
}

void Communicator::broadcast(at::Tensor& t, int root) {
  check_tensor(t, "broadcast", true);
  check_peer(root, "broadcast");
  begin("broadcast", &t, root, false);
  do_broadcast(t, root);
}

at::Tensor Communicator::allgather(const at::Tensor& input) {
  check_tensor(input, "allgather", false);
  at::Tensor in = input.contiguous();
  begin("allgather", &in, -1, false);
  std::vector<int64_t> shape{size()};
  for (int64_t s : in.sizes()) shape.push_back(s);
  at::Tensor out = at::empty(shape, in.options());
  do_allgather(in, out);
  return out;
}

at::Tensor Communicator::allgatherv(const at::Tensor& input) {
  check_tensor(input, "allgatherv", false);
  if (input.dim() == 0) throw CommError("comm: allgatherv needs a tensor of at least 1 dim");
  at::Tensor in = input.contiguous();
  begin("allgatherv", &in, -1, true);
  std::vector<int64_t> rows = exchange_counts(in.size(0));
  const int64_t row_numel = elements_per_row(in);
  int64_t total = 0;
  std::vector<int64_t> counts;
  for (int64_t r : rows) {
    total += r;
    counts.push_back(r * row_numel);
  }
  std::vector<int64_t> shape(in.sizes().begin(), in.sizes().end());
  shape[0] = total;
  at::Tensor out = at::empty(shape, in.options());
  do_allgatherv(in, out, counts);
  return out;
}

at::Tensor Communicator::alltoall(const at::Tensor& input) {
  check_tensor(input, "alltoall", false);
  if (input.dim() == 0 || input.size(0) % size() != 0)
    throw CommError(
        fmt::format("comm: alltoall needs dim 0 divisible by the world size {}", size()));
  at::Tensor in = input.contiguous();
  begin("alltoall", &in, -1, false);
  const int64_t part = in.numel() / size();
  std::vector<int64_t> counts(size(), part);
  at::Tensor out = at::empty_like(in);
  do_alltoallv(in, counts, out, counts);
  return out;
}

at::Tensor Communicator::check_alltoallv(const at::Tensor& input,
                                         const std::vector<int64_t>& send_rows) {
  check_tensor(input, "alltoallv", false);
  if (input.dim() == 0) throw CommError("comm: alltoallv needs a tensor of at least 1 dim");
  if (static_cast<int>(send_rows.size()) != size())
    throw CommError(fmt::format("comm: alltoallv got {} send counts for a world of {}",
                                send_rows.size(), size()));
  int64_t sum = 0;
  for (int64_t r : send_rows) {
    if (r < 0) throw CommError("comm: alltoallv got a negative send count");
    sum += r;
  }
  if (sum != input.size(0))
    throw CommError(fmt::format("comm: alltoallv send counts add up to {}, but dim 0 is {}", sum,
                                input.size(0)));
  at::Tensor in = input.contiguous();
  begin("alltoallv", &in, -1, true);
  return in;
}

at::Tensor Communicator::exchange_rows(const at::Tensor& in, const std::vector<int64_t>& send_rows,
                                       const std::vector<int64_t>& recv_rows) {
  const int64_t row_numel = elements_per_row(in);
  std::vector<int64_t> send_counts, recv_counts;
  int64_t total = 0;
  for (int j = 0; j < size(); ++j) {
    send_counts.push_back(send_rows[j] * row_numel);
    recv_counts.push_back(recv_rows[j] * row_numel);
    total += recv_rows[j];
  }
  std::vector<int64_t> shape(in.sizes().begin(), in.sizes().end());
  shape[0] = total;
  at::Tensor out = at::empty(shape, in.options());
  do_alltoallv(in, send_counts, out, recv_counts);
  return out;
}

at::Tensor Communicator::alltoallv(const at::Tensor& input, const std::vector<int64_t>& send_rows,
                                   std::vector<int64_t>* recv_rows) {
  const at::Tensor in = check_alltoallv(input, send_rows);
  // Every rank learns how many rows each peer sends it: a [size, size] count matrix.
  at::Tensor mine = at::tensor(send_rows, at::kLong);
  at::Tensor matrix = at::empty({size(), size()}, at::kLong);
  do_allgather(mine, matrix);
  std::vector<int64_t> from(size());
  for (int j = 0; j < size(); ++j) from[j] = matrix.data_ptr<int64_t>()[j * size() + rank()];
  if (recv_rows) *recv_rows = from;
  return exchange_rows(in, send_rows, from);
}

at::Tensor Communicator::alltoallv_expecting(const at::Tensor& input,
                                             const std::vector<int64_t>& send_rows,
                                             const std::vector<int64_t>& recv_rows) {
  if (static_cast<int>(recv_rows.size()) != size())
    throw CommError(fmt::format("comm: alltoallv expects {} receive counts for a world of {}",
                                recv_rows.size(), size()));
  const at::Tensor in = check_alltoallv(input, send_rows);
  return exchange_rows(in, send_rows, recv_rows);
}

void Communicator::send(const at::Tensor& t, int dst, int tag) {
  check_tensor(t, "send", false);
  check_peer(dst, "send");
  do_send(t.contiguous(), dst, tag);
}

void Communicator::recv(at::Tensor& t, int src, int tag) {
  check_tensor(t, "recv", true);
  check_peer(src, "recv");
  do_recv(t, src, tag);
}

void Communicator::barrier() {
  begin("barrier", nullptr, -1, false);
  do_barrier();
}

std::unique_ptr<Work> Communicator::ibarrier() {
  begin("ibarrier", nullptr, -1, false);
  return do_ibarrier();
}

std::unique_ptr<Communicator> Communicator::split(int color) {
  if (color < 0) throw CommError(fmt::format("comm: split color {} is negative", color));
  begin("split", nullptr, -1, false);
  return do_split(color);
}

std::unique_ptr<Mailbox> Communicator::mailbox() {
  begin("mailbox", nullptr, -1, false);
  return do_mailbox();
}

std::unique_ptr<Mailbox> Communicator::do_mailbox() {
  throw CommError(fmt::format("comm: the {} backend has no mailbox", backend()));
}

std::unique_ptr<Communicator> Communicator::do_split(int) {
  throw CommError(fmt::format("comm: the {} backend cannot split its communicator", backend()));
}

std::string broadcast_text(Communicator& comm, const std::string& text, int root) {
  // int64 words on the wire (the communicator takes no bytes).
  at::Tensor n = at::tensor({static_cast<int64_t>(text.size())}, at::kLong);
  comm.broadcast(n, root);
  const int64_t len = n.item<int64_t>();
  at::Tensor buf = at::zeros({(len + 7) / 8}, at::kLong);
  if (comm.rank() == root && len > 0) std::memcpy(buf.data_ptr(), text.data(), text.size());
  comm.broadcast(buf, root);
  return std::string(static_cast<const char*>(buf.data_ptr()), static_cast<size_t>(len));
}

}  // namespace tandem::comm
