#include "tandem/train/run_dir.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "tandem/util/error.h"
#include "tandem/util/log.h"

namespace tandem::train {
namespace {

// Writes all of `text` to `fd`; false (errno set) when the system refuses part of it.
bool write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

RunDir::RunDir(const std::string& path, bool writer, bool replace, bool tensorboard)
    : path_(path), enabled_(writer && !path.empty()), tensorboard_(tensorboard) {
  if (!enabled_) return;
  metrics_path_ = path_ + "/metrics.jsonl";
  std::error_code ec;
  if (!replace && std::filesystem::file_size(metrics_path_, ec) > 0 && !ec)
    throw ConfigError(fmt::format(
        "run.dir: '{}' already holds an earlier run's metrics.jsonl: choose another run.dir, "
        "resume it with --run.resume=auto, or set run.overwrite=true to replace it",
        path_));
  std::filesystem::create_directories(path_, ec);
  if (ec) throw ConfigError(fmt::format("run.dir: cannot create '{}': {}", path_, ec.message()));
  metrics_fd_ = ::open(metrics_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (metrics_fd_ < 0)
    throw ConfigError(
        fmt::format("run.dir: cannot write '{}': {}", metrics_path_, std::strerror(errno)));
}

RunDir::~RunDir() {
  if (metrics_fd_ >= 0) ::close(metrics_fd_);
}

RunDir& RunDir::operator=(RunDir&& other) noexcept {
  if (this == &other) return *this;
  if (metrics_fd_ >= 0) ::close(metrics_fd_);
  path_ = std::move(other.path_);
  enabled_ = other.enabled_;
  metrics_path_ = std::move(other.metrics_path_);
  metrics_fd_ = std::exchange(other.metrics_fd_, -1);
  metrics_bytes_ = other.metrics_bytes_;
  history_ = std::move(other.history_);
  tensorboard_ = other.tensorboard_;
  config_text_ = std::move(other.config_text_);
  start_step_ = other.start_step_;
  events_ = std::move(other.events_);
  return *this;
}

void RunDir::write_config(const std::string& ini_text) {
  if (!enabled_) return;
  const std::string file = path_ + "/config.ini";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const bool ok = fd >= 0 && write_all(fd, ini_text);
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) throw IoError(fmt::format("cannot write '{}': {}", file, std::strerror(err)));
  config_text_ = ini_text;
}

tensorboard::EventWriter* RunDir::events() {
  if (!enabled_ || !tensorboard_) return nullptr;
#if TANDEM_WITH_TENSORBOARD
  if (!events_) {
    events_ = std::make_unique<tensorboard::EventWriter>(path_ + "/tb", start_step_);
    if (!config_text_.empty())  // Markdown: a code block keeps the INI as it is
      events_->text("config", "```\n" + config_text_ + "```", start_step_);
  }
  return events_.get();
#else
  static bool said = false;
  if (!std::exchange(said, true))
    log::info(
        "log.tensorboard: this Tandem was built without Protocol Buffers; no TensorBoard files");
  return nullptr;
#endif
}

void RunDir::scalar(const std::string& tag, double value, int64_t step) {
  if (tensorboard::EventWriter* w = events()) w->scalar(tag, value, step);
}

void RunDir::histogram(const std::string& tag, const at::Tensor& values, int64_t step) {
  tensorboard::EventWriter* w = events();
  if (!w) return;
  // Finite values only, in 30 equal buckets between their minimum and maximum (one
  // bucket when all are equal).
  const at::Tensor all = values.detach().to(at::kCPU, at::kDouble).reshape(-1);
  const at::Tensor v = all.masked_select(at::isfinite(all));
  tensorboard::Histogram h;
  h.num = static_cast<double>(v.numel());
  if (v.numel() > 0) {
    h.min = v.min().item<double>();
    h.max = v.max().item<double>();
    h.sum = v.sum().item<double>();
    h.sum_squares = v.square().sum().item<double>();
    const int k = h.max > h.min ? 30 : 1;
    const at::Tensor counts =
        k > 1 ? at::histc(v, k, h.min, h.max) : at::full({1}, h.num, at::kDouble);
    const double* c = counts.data_ptr<double>();
    for (int b = 0; b < k; ++b) {
      h.limits.push_back(b + 1 == k ? h.max : h.min + (h.max - h.min) * (b + 1) / k);
      h.counts.push_back(c[b]);
    }
  }
  w->histogram(tag, h, step);
}

void RunDir::append(const std::string& text) {
  if (write_all(metrics_fd_, text)) {
    metrics_bytes_ += static_cast<int64_t>(text.size());
    return;
  }
  const int err = errno;
  // No half line stays behind: cut the file back to its whole lines.
  if (::ftruncate(metrics_fd_, metrics_bytes_) == 0) ::lseek(metrics_fd_, metrics_bytes_, SEEK_SET);
  throw IoError(fmt::format("cannot write '{}': {}", metrics_path_, std::strerror(err)));
}

void RunDir::append_metrics(const nlohmann::json& event) {
  const std::string line = event.dump() + "\n";
  history_ += line;
  if (enabled_) append(line);
  if (tensorboard::EventWriter* w = events()) {
    // The x-axis: a training step, or a meta-training iteration.
    const char* x = event.contains("step") ? "step" : "iteration";
    const std::string kind = event.value("event", "metrics");
    const int64_t step = event.value(x, int64_t{0});
    for (const auto& [key, value] : event.items())
      if (value.is_number() && key != x) w->scalar(kind + "/" + key, value.get<double>(), step);
    w->flush();
  }
}

void RunDir::restore_history(const std::string& history, int64_t step) {
  history_ = history;
  start_step_ = step;
  if (!enabled_) return;
  if (::ftruncate(metrics_fd_, 0) != 0 || ::lseek(metrics_fd_, 0, SEEK_SET) != 0)
    throw IoError(fmt::format("cannot write '{}': {}", metrics_path_, std::strerror(errno)));
  metrics_bytes_ = 0;
  append(history);
}

}  // namespace tandem::train
