// FaultInjector: seeded random faults behind the io_ops() function pointers.
#include "runtime/fault_injection.hpp"

#include <cerrno>
#include <stdexcept>
#include <vector>

namespace tether::net {

namespace {

// io_ops() holds plain function pointers, so the injected functions find their injector here.
std::atomic<FaultInjector*> g_active{nullptr};

}  // namespace

FaultInjector::FaultInjector(const FaultConfig& config)
    : config_(config), previous_(io_ops()), rng_(config.seed) {
  FaultInjector* expected = nullptr;
  if (!g_active.compare_exchange_strong(expected, this)) {
    throw std::logic_error("FaultInjector: another injector is already active");
  }
  if (config_.reads) io_ops().read = &injected_read;
  if (config_.writes) io_ops().writev = &injected_writev;
  if (config_.reads || config_.writes) io_ops().truthful = false;
}

FaultInjector::~FaultInjector() {
  io_ops() = previous_;
  g_active.store(nullptr);
}

FaultInjector::Stats FaultInjector::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

FaultInjector::Fault FaultInjector::draw(std::size_t size, std::size_t& short_size) {
  std::lock_guard lock(mutex_);
  ++stats_.calls;
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  Fault fault = Fault::none;
  double edge = config_.eintr;
  if (u < edge) {
    fault = Fault::eintr;
  } else if (u < (edge += config_.eagain)) {
    fault = Fault::eagain;
  } else if (u < (edge += config_.econnreset)) {
    fault = Fault::econnreset;
  } else if (u < (edge += config_.short_io) && size > 1) {
    fault = Fault::short_io;
    short_size = std::uniform_int_distribution<std::size_t>(1, size - 1)(rng_);
  }
  switch (fault) {
    case Fault::none:
      break;
    case Fault::eintr:
      ++stats_.eintr;
      break;
    case Fault::eagain:
      ++stats_.eagain;
      break;
    case Fault::econnreset:
      ++stats_.econnreset;
      break;
    case Fault::short_io:
      ++stats_.short_io;
      break;
  }
  return fault;
}

ssize_t FaultInjector::injected_read(int fd, void* buf, size_t n) {
  FaultInjector* self = g_active.load();
  if (self == nullptr) return default_io_ops().read(fd, buf, n);
  if (!self->enabled_.load()) return self->previous_.read(fd, buf, n);
  std::size_t short_size = n;
  switch (self->draw(n, short_size)) {
    case Fault::eintr:
      errno = EINTR;
      return -1;
    case Fault::eagain:
      errno = EAGAIN;
      return -1;
    case Fault::econnreset:
      errno = ECONNRESET;
      return -1;
    case Fault::short_io:
    case Fault::none:
      break;
  }
  // Asking the kernel for fewer bytes loses nothing: the rest stays queued for the next read.
  return self->previous_.read(fd, buf, short_size);
}

ssize_t FaultInjector::injected_writev(int fd, const struct iovec* iov, int iovcnt) {
  FaultInjector* self = g_active.load();
  if (self == nullptr) return default_io_ops().writev(fd, iov, iovcnt);
  if (!self->enabled_.load()) return self->previous_.writev(fd, iov, iovcnt);
  std::size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
  std::size_t short_size = total;
  switch (self->draw(total, short_size)) {
    case Fault::eintr:
      errno = EINTR;
      return -1;
    case Fault::eagain:
      errno = EAGAIN;
      return -1;
    case Fault::econnreset:
      errno = ECONNRESET;
      return -1;
    case Fault::none:
      return self->previous_.writev(fd, iov, iovcnt);
    case Fault::short_io:
      break;
  }
  // Hand the kernel a truncated copy of the vector so that it really writes only a prefix,
  // as a full socket buffer would; the caller must then resume mid-buffer.
  std::vector<struct iovec> prefix;
  for (int i = 0; i < iovcnt && short_size > 0; ++i) {
    struct iovec part = iov[i];
    if (part.iov_len > short_size) part.iov_len = short_size;
    short_size -= part.iov_len;
    prefix.push_back(part);
  }
  return self->previous_.writev(fd, prefix.data(), static_cast<int>(prefix.size()));
}

}  // namespace tether::net
