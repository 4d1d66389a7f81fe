// Thin POSIX socket helpers for the runtime: owned fds, TCP listen/accept/connect, name
// resolution off the loop thread, and a swappable read/writev table for fault injection.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tether/event_loop.hpp"

namespace tether::net {

/// Owns a file descriptor and closes it on destruction. Move-only. Not thread-safe.
class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  /// Gives up ownership without closing.
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  /// Closes the current fd (if any) and takes ownership of `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// Opens a non-blocking, close-on-exec TCP listening socket with SO_REUSEADDR.
/// `host` is an IPv4 or IPv6 literal (brackets allowed: "[::1]") or a name resolved with
/// getaddrinfo(AI_PASSIVE); empty means every local address. `port` 0 picks an ephemeral
/// port (see local_port()). On failure returns an invalid Fd and sets `error` to a message
/// naming the failing step and the address; blocking if `host` needs a DNS lookup.
Fd listen_tcp(const std::string& host, std::uint16_t port, int backlog, std::string& error);

/// Local port of a bound socket, in host order; 0 on failure.
std::uint16_t local_port(int fd) noexcept;

/// "1.2.3.4:port" or "[::1]:port"; "?" for an address family it does not know.
std::string format_address(const sockaddr* addr, socklen_t len);

/// Accepts one connection as non-blocking, close-on-exec, with TCP_NODELAY, and writes the
/// peer as format_address() does into `peer_address`. On failure (EAGAIN included: no
/// connection is pending) returns an invalid Fd with `err` = errno; `err` = 0 on success.
Fd accept_nonblocking(int listen_fd, std::string& peer_address, int& err);

/// Starts a non-blocking TCP connect with TCP_NODELAY. EINPROGRESS counts as success
/// (`err` = 0): wait for writable, then read socket_error(). On failure returns an invalid Fd
/// with `err` = errno.
Fd connect_nonblocking(const sockaddr_storage& addr, socklen_t len, int& err);

/// Pending socket error (SO_ERROR, which also clears it); 0 when none.
int socket_error(int fd) noexcept;

/// Sets SO_SNDBUF / SO_RCVBUF; a value <= 0 leaves that buffer alone. Best effort (the kernel
/// doubles and clamps what it is given).
void set_buffer_sizes(int fd, int sndbuf, int rcvbuf) noexcept;

struct ResolvedAddress {
  sockaddr_storage addr;
  socklen_t len;
};

/// Blocking getaddrinfo for TCP (IPv4 and IPv6, in the resolver's preferred order), with
/// `port` filled in. Meant to run off the loop thread (see Resolver). Literal addresses
/// (brackets allowed) never touch DNS. On failure returns {} and sets `error`.
std::vector<ResolvedAddress> resolve(const std::string& host, std::uint16_t port,
                                     std::string& error);

/// `host` as an address when it is an IPv4 or IPv6 literal (brackets allowed), without any
/// lookup; empty otherwise.
std::vector<ResolvedAddress> resolve_numeric(const std::string& host, std::uint16_t port);

/// Runs resolve() on one worker thread owned by this object and delivers each answer on the
/// loop thread through loop.post(), in request order.
///
/// Construct, use and destroy it on the loop thread (or while the loop is not running). After
/// cancel(id) or destruction, the callback of a pending request is never called and is
/// destroyed on the loop thread. The destructor joins the worker, so it waits for a lookup
/// in progress (bounded by the system resolver's timeouts): keep one Resolver per loop or
/// per client, not one per connection attempt. The EventLoop must outlive the Resolver and
/// keep running (or be destroyed) while answers are in flight.
class Resolver {
 public:
  using RequestId = std::uint64_t;
  /// `addresses` is empty exactly when `error` is not.
  using Callback = std::function<void(std::vector<ResolvedAddress> addresses, std::string error)>;

  explicit Resolver(EventLoop& loop);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  /// Queues a lookup; `cb` runs later on the loop thread, never inside this call.
  RequestId resolve(std::string host, std::uint16_t port, Callback cb);
  /// Drops a pending request's callback; an unknown or finished id is ignored.
  void cancel(RequestId id) noexcept;

 private:
  struct Request {
    RequestId id;
    std::string host;
    std::uint16_t port;
  };
  // Loop-thread side, shared with answers in flight so they can tell that this object (or
  // the request) is gone.
  struct Pending;

  void worker_main();

  EventLoop& loop_;
  std::shared_ptr<Pending> pending_;
  RequestId next_id_ = 1;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Request> queue_;  // guarded by mutex_
  bool stopping_ = false;      // guarded by mutex_
  std::thread worker_;         // last: starts once everything above exists
};

/// The process-wide I/O entry points every connection uses, so tests can inject faults.
/// Both have the POSIX contract (return count or -1 with errno). Swap them only while no other
/// thread does I/O through them.
struct IoOps {
  ssize_t (*read)(int fd, void* buf, size_t n);
  ssize_t (*writev)(int fd, const struct iovec* iov, int iovcnt);
  /// Whether a short transfer or EAGAIN means the socket had no more data or room, so that a
  /// later change will wake epoll (true of kernel sockets). Connections then use edge-triggered
  /// readiness; a fault injector, whose faults say nothing of the socket, clears it.
  bool truthful = true;
};

/// The live table (defaults: ::read, and sendmsg with MSG_NOSIGNAL, so a write to a reset
/// peer fails with EPIPE instead of raising SIGPIPE and the library never touches the process
/// signal state; non-sockets fall back to ::writev).
IoOps& io_ops() noexcept;
/// The default table, to restore or compare against.
IoOps default_io_ops() noexcept;

}  // namespace tether::net
