// POSIX socket helpers: listen/accept/connect, getaddrinfo, the Resolver worker, IoOps.
#include "runtime/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <unordered_map>
#include <utility>

namespace tether::net {

namespace {

// getaddrinfo does not accept the bracketed form used in URLs and "[::1]:port" strings.
std::string strip_brackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

std::string gai_message(int rc, int saved_errno) {
  return rc == EAI_SYSTEM ? std::strerror(saved_errno) : gai_strerror(rc);
}

std::string host_port(const std::string& host, std::uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void set_nodelay(int fd) noexcept {
  int one = 1;
  // Fails only on non-TCP sockets, where there is nothing to disable anyway.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct AddrInfoList {
  addrinfo* head = nullptr;
  ~AddrInfoList() {
    if (head != nullptr) ::freeaddrinfo(head);
  }
};

ssize_t default_read(int fd, void* buf, size_t n) {
  return ::read(fd, buf, n);
}

ssize_t default_writev(int fd, const struct iovec* iov, int iovcnt) {
  msghdr msg{};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  if (n < 0 && errno == ENOTSOCK) return ::writev(fd, iov, iovcnt);
  return n;
}

IoOps g_io_ops{&default_read, &default_writev};

}  // namespace

void Fd::reset(int fd) noexcept {
  // Linux releases the descriptor even when close() reports EINTR, so it is never retried.
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

std::string format_address(const sockaddr* addr, socklen_t len) {
  char text[INET6_ADDRSTRLEN];
  if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) == nullptr) return "?";
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    if (::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text) == nullptr) return "?";
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

Fd listen_tcp(const std::string& host_in, std::uint16_t port, int backlog, std::string& error) {
  std::string host = strip_brackets(host_in);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  AddrInfoList list;
  std::string service = std::to_string(port);
  int rc =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list.head);
  if (rc != 0) {
    error = "listen " + host_port(host, port) + ": " + gai_message(rc, errno);
    return {};
  }

  std::vector<const addrinfo*> candidates;
  for (const addrinfo* ai = list.head; ai != nullptr; ai = ai->ai_next) candidates.push_back(ai);
  if (host.empty()) {
    // A dual-stack "::" socket serves IPv4 too; whichever family getaddrinfo lists first,
    // prefer it and keep 0.0.0.0 as the fallback for hosts without IPv6.
    std::stable_partition(candidates.begin(), candidates.end(),
                          [](const addrinfo* ai) { return ai->ai_family == AF_INET6; });
  }

  error = "listen " + host_port(host, port) + ": no address";
  for (const addrinfo* ai : candidates) {
    std::string where = format_address(ai->ai_addr, ai->ai_addrlen);
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      error = "listen " + where + ": socket: " + std::strerror(errno);
      continue;
    }
    int one = 1;
    // Lets a restarted server bind while connections of its previous run sit in TIME_WAIT.
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (host.empty() && ai->ai_family == AF_INET6) {
      int zero = 0;
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      error = "listen " + where + ": bind: " + std::strerror(errno);
      continue;
    }
    if (::listen(fd.get(), backlog > 0 ? backlog : SOMAXCONN) != 0) {
      error = "listen " + where + ": listen: " + std::strerror(errno);
      continue;
    }
    error.clear();
    return fd;
  }
  return {};
}

std::uint16_t local_port(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  }
  return 0;
}

Fd accept_nonblocking(int listen_fd, std::string& peer_address, int& err) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  Fd fd(::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!fd) {
    err = errno;
    return fd;
  }
  set_nodelay(fd.get());
  peer_address = format_address(reinterpret_cast<const sockaddr*>(&ss), len);
  err = 0;
  return fd;
}

Fd connect_nonblocking(const sockaddr_storage& addr, socklen_t len, int& err) {
  Fd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    err = errno;
    return fd;
  }
  set_nodelay(fd.get());
  // EINTR does not abort a connect: like EINPROGRESS it completes in the background.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0 &&
      errno != EINPROGRESS && errno != EINTR) {
    err = errno;
    return {};
  }
  err = 0;
  return fd;
}

int socket_error(int fd) noexcept {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len) != 0) return errno;
  return value;
}

void set_buffer_sizes(int fd, int sndbuf, int rcvbuf) noexcept {
  if (sndbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

std::vector<ResolvedAddress> resolve(const std::string& host_in, std::uint16_t port,
                                     std::string& error) {
  std::string host = strip_brackets(host_in);
  if (host.empty()) {
    error = "resolve: empty host name";
    return {};
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No AI_ADDRCONFIG: it hides ::1 for "localhost" on hosts whose only IPv6 address is the
  // loopback one, which is exactly where tests and local proxies run.
  hints.ai_flags = AI_NUMERICSERV;
  AddrInfoList list;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list.head);
  if (rc != 0) {
    error = "resolve " + host + ": " + gai_message(rc, errno);
    return {};
  }
  std::vector<ResolvedAddress> out;
  for (const addrinfo* ai = list.head; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    ResolvedAddress r{};
    std::memcpy(&r.addr, ai->ai_addr, ai->ai_addrlen);
    r.len = ai->ai_addrlen;
    out.push_back(r);
  }
  if (out.empty()) error = "resolve " + host + ": no address";
  return out;
}

std::vector<ResolvedAddress> resolve_numeric(const std::string& host_in, std::uint16_t port) {
  std::string host = strip_brackets(host_in);
  ResolvedAddress r{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&r.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&r.addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    r.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    r.len = sizeof(sockaddr_in6);
  } else {
    return {};
  }
  return {r};
}

struct Resolver::Pending {
  std::unordered_map<RequestId, Callback> callbacks;  // loop thread only
};

Resolver::Resolver(EventLoop& loop)
    : loop_(loop), pending_(std::make_shared<Pending>()), worker_([this] { worker_main(); }) {}

Resolver::~Resolver() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  worker_.join();
  pending_->callbacks.clear();
}

Resolver::RequestId Resolver::resolve(std::string host, std::uint16_t port, Callback cb) {
  RequestId id = next_id_++;
  pending_->callbacks.emplace(id, std::move(cb));
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({id, std::move(host), port});
  }
  wake_.notify_one();
  return id;
}

void Resolver::cancel(RequestId id) noexcept {
  if (pending_->callbacks.erase(id) == 0) return;
  std::lock_guard lock(mutex_);
  std::erase_if(queue_, [id](const Request& r) { return r.id == id; });
}

void Resolver::worker_main() {
  for (;;) {
    Request request;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      request = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string error;
    std::vector<ResolvedAddress> addresses;
    try {
      addresses = net::resolve(request.host, request.port, error);
    } catch (const std::exception& e) {
      error = "resolve " + request.host + ": " + e.what();
    }
    // The answer holds the Pending block, not `this`: it may run after the Resolver is gone.
    loop_.post([pending = pending_, id = request.id, addresses = std::move(addresses),
                error = std::move(error)]() mutable {
      auto it = pending->callbacks.find(id);
      if (it == pending->callbacks.end()) return;
      Callback cb = std::move(it->second);
      pending->callbacks.erase(it);
      cb(std::move(addresses), std::move(error));
    });
  }
}

IoOps& io_ops() noexcept {
  return g_io_ops;
}

IoOps default_io_ops() noexcept {
  return {&default_read, &default_writev};
}

}  // namespace tether::net
