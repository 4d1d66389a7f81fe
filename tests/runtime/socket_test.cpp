// Socket helpers over loopback, the Resolver, the IoOps table and the FaultInjector.
#include "runtime/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/fault_injection.hpp"

namespace tether::net {
namespace {

using namespace std::chrono_literals;

[[nodiscard]] bool run_bounded(EventLoop& loop) {
  bool timed_out = false;
  auto id = loop.call_after(10s, [&] {
    timed_out = true;
    loop.stop();
  });
  loop.run();
  loop.cancel(id);
  return !timed_out;
}

class FnHandler : public IoHandler {
 public:
  std::function<void(std::uint32_t)> fn;
  void on_io(std::uint32_t events) override { fn(events); }
};

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

std::uint16_t port_of(const ResolvedAddress& a) {
  if (a.addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&a.addr)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&a.addr)->sin6_port);
}

TEST(Fd, ClosesOnDestructionAndMovesOwnership) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  {
    Fd a(fds[0]);
    Fd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), fds[0]);
    Fd c;
    c = std::move(b);
    EXPECT_TRUE(c);
    EXPECT_TRUE(is_open(fds[0]));
  }
  EXPECT_FALSE(is_open(fds[0]));

  Fd w(fds[1]);
  int raw = w.release();
  EXPECT_FALSE(w.valid());
  EXPECT_TRUE(is_open(raw));
  w.reset(raw);
  w.reset();
  EXPECT_FALSE(is_open(raw));
}

// Connects through connect_nonblocking(), accepts through the loop, sends a message in two
// iovecs from the client and echoes it back, all driven by readable/writable events.
void echo_round_trip(const std::string& host, const std::string& peer_host) {
  EventLoop loop;
  std::string error;
  Fd listener = listen_tcp(host, 0, 16, error);
  ASSERT_TRUE(listener) << error;
  EXPECT_TRUE(error.empty());
  std::uint16_t port = local_port(listener.get());
  ASSERT_NE(port, 0);

  auto addresses = resolve(host, port, error);
  ASSERT_FALSE(addresses.empty()) << error;
  int err = -1;
  Fd client = connect_nonblocking(addresses[0].addr, addresses[0].len, err);
  ASSERT_TRUE(client) << std::strerror(err);
  EXPECT_EQ(err, 0);

  const std::string head = "hello ";
  const std::string tail = "over the loop";
  const std::string message = head + tail;
  Fd server;
  std::string peer;
  std::string server_got;
  std::string client_got;
  bool client_sent = false;
  FnHandler on_listener, on_server, on_client;

  on_listener.fn = [&](std::uint32_t) {
    int e = -1;
    server = accept_nonblocking(listener.get(), peer, e);
    ASSERT_TRUE(server) << std::strerror(e);
    EXPECT_EQ(e, 0);
    loop.remove_fd(listener.get());
    loop.add_fd(server.get(), EventLoop::readable, &on_server);
  };
  on_server.fn = [&](std::uint32_t) {
    char buf[256];
    ssize_t n = io_ops().read(server.get(), buf, sizeof buf);
    ASSERT_GT(n, 0);
    server_got.append(buf, static_cast<std::size_t>(n));
    if (server_got.size() < message.size()) return;
    iovec iov{server_got.data(), server_got.size()};
    ASSERT_EQ(io_ops().writev(server.get(), &iov, 1), static_cast<ssize_t>(server_got.size()));
  };
  on_client.fn = [&](std::uint32_t events) {
    if (!client_sent) {
      ASSERT_TRUE(events & EventLoop::writable);
      ASSERT_EQ(socket_error(client.get()), 0);
      std::string h = head, t = tail;
      iovec iov[2] = {{h.data(), h.size()}, {t.data(), t.size()}};
      ASSERT_EQ(io_ops().writev(client.get(), iov, 2), static_cast<ssize_t>(message.size()));
      client_sent = true;
      loop.modify_fd(client.get(), EventLoop::readable, &on_client);
      return;
    }
    char buf[256];
    ssize_t n = io_ops().read(client.get(), buf, sizeof buf);
    ASSERT_GT(n, 0);
    client_got.append(buf, static_cast<std::size_t>(n));
    if (client_got.size() == message.size()) loop.stop();
  };

  loop.add_fd(listener.get(), EventLoop::readable, &on_listener);
  loop.add_fd(client.get(), EventLoop::writable, &on_client);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(server_got, message);
  EXPECT_EQ(client_got, message);
  EXPECT_EQ(peer, peer_host + ":" + std::to_string(local_port(client.get())));
  loop.remove_fd(client.get());
  loop.remove_fd(server.get());
}

TEST(Socket, LoopbackIPv4RoundTripThroughTheLoop) {
  echo_round_trip("127.0.0.1", "127.0.0.1");
}

TEST(Socket, LoopbackIPv6RoundTripThroughTheLoop) {
  // Skipping is only legitimate when the machine has no IPv6 loopback at all.
  {
    Fd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) GTEST_SKIP() << "no IPv6 sockets: " << std::strerror(errno);
    sockaddr_in6 any{};
    any.sin6_family = AF_INET6;
    any.sin6_addr = in6addr_loopback;
    if (::bind(probe.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) {
      GTEST_SKIP() << "cannot bind ::1: " << std::strerror(errno);
    }
  }
  echo_round_trip("::1", "[::1]");

  std::string error;
  Fd bracketed = listen_tcp("[::1]", 0, 4, error);
  EXPECT_TRUE(bracketed) << error;
}

TEST(Socket, ListenOnAPortInUseFailsWithAMessage) {
  std::string error;
  Fd first = listen_tcp("127.0.0.1", 0, 4, error);
  ASSERT_TRUE(first) << error;
  Fd second = listen_tcp("127.0.0.1", local_port(first.get()), 4, error);
  EXPECT_FALSE(second);
  EXPECT_NE(error.find("bind"), std::string::npos) << error;
}

TEST(Socket, ConnectToAPortWithoutListenerReportsRefused) {
  // A bound but not listening socket holds the port: connecting is refused, and the kernel
  // cannot pick this port as the client's own (which would make a self-connection).
  Fd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(holder);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  addr.sin_port = htons(local_port(holder.get()));
  sockaddr_storage ss{};
  std::memcpy(&ss, &addr, sizeof addr);

  int err = -1;
  Fd client = connect_nonblocking(ss, sizeof addr, err);
  if (!client) {
    EXPECT_EQ(err, ECONNREFUSED);
    return;
  }
  EventLoop loop;
  std::uint32_t seen = 0;
  int so_error = -1;
  FnHandler h;
  h.fn = [&](std::uint32_t events) {
    seen = events;
    so_error = socket_error(client.get());
    loop.remove_fd(client.get());
    loop.stop();
  };
  loop.add_fd(client.get(), EventLoop::writable, &h);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(so_error, ECONNREFUSED);
  EXPECT_TRUE(seen & (EventLoop::error | EventLoop::hangup));
}

TEST(Socket, SetBufferSizes) {
  std::string error;
  Fd s = listen_tcp("127.0.0.1", 0, 4, error);
  ASSERT_TRUE(s) << error;
  set_buffer_sizes(s.get(), 64 * 1024, 32 * 1024);
  int snd = 0, rcv = 0;
  socklen_t len = sizeof snd;
  ASSERT_EQ(::getsockopt(s.get(), SOL_SOCKET, SO_SNDBUF, &snd, &len), 0);
  ASSERT_EQ(::getsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &rcv, &len), 0);
  // Linux doubles the request for bookkeeping.
  EXPECT_GE(snd, 64 * 1024);
  EXPECT_GE(rcv, 32 * 1024);
}

TEST(Socket, FormatAddress) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(8080);
  ASSERT_EQ(::inet_pton(AF_INET, "1.2.3.4", &v4.sin_addr), 1);
  EXPECT_EQ(format_address(reinterpret_cast<sockaddr*>(&v4), sizeof v4), "1.2.3.4:8080");
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(443);
  v6.sin6_addr = in6addr_loopback;
  EXPECT_EQ(format_address(reinterpret_cast<sockaddr*>(&v6), sizeof v6), "[::1]:443");
}

TEST(Resolve, LocalhostReturnsAddressesWithThePort) {
  std::string error;
  auto addresses = resolve("localhost", 8443, error);
  ASSERT_FALSE(addresses.empty()) << error;
  EXPECT_TRUE(error.empty());
  for (const auto& a : addresses) {
    EXPECT_TRUE(a.addr.ss_family == AF_INET || a.addr.ss_family == AF_INET6);
    EXPECT_EQ(port_of(a), 8443);
  }
}

TEST(Resolve, LiteralsIncludingBracketedIPv6) {
  std::string error;
  auto v4 = resolve("127.0.0.1", 80, error);
  ASSERT_EQ(v4.size(), 1u) << error;
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&v4[0].addr), v4[0].len),
            "127.0.0.1:80");
  auto v6 = resolve("[::1]", 81, error);
  ASSERT_EQ(v6.size(), 1u) << error;
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&v6[0].addr), v6[0].len), "[::1]:81");
}

TEST(Resolve, EmptyHostIsAnError) {
  std::string error;
  EXPECT_TRUE(resolve("", 80, error).empty());
  EXPECT_FALSE(error.empty());
}

TEST(Resolver, DeliversAnswersOnTheLoopThreadInRequestOrder) {
  EventLoop loop;
  Resolver resolver(loop);
  const auto loop_thread = std::this_thread::get_id();
  std::vector<std::string> answered;
  bool off_loop = false;
  auto expect = [&](std::string name, bool ok) {
    return [&, name, ok](std::vector<ResolvedAddress> addresses, std::string error) {
      if (std::this_thread::get_id() != loop_thread || !loop.is_loop_thread()) off_loop = true;
      EXPECT_EQ(addresses.empty(), !ok) << name << ": " << error;
      EXPECT_EQ(error.empty(), ok) << name;
      answered.push_back(name);
      if (answered.size() == 3) loop.stop();
    };
  };
  loop.post([&] {
    resolver.resolve("localhost", 80, expect("localhost", true));
    resolver.resolve("", 80, expect("empty", false));
    resolver.resolve("::1", 80, expect("::1", true));
    EXPECT_TRUE(answered.empty()) << "a callback ran inside resolve()";
  });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_FALSE(off_loop);
  EXPECT_EQ(answered, (std::vector<std::string>{"localhost", "empty", "::1"}));
}

TEST(Resolver, CancelledRequestIsNeverAnswered) {
  EventLoop loop;
  Resolver resolver(loop);
  bool cancelled_called = false;
  auto id = resolver.resolve("localhost", 80, [&](auto, auto) { cancelled_called = true; });
  resolver.cancel(id);
  resolver.cancel(id);
  resolver.resolve("127.0.0.1", 80, [&](auto, auto) { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_FALSE(cancelled_called);
}

TEST(Resolver, DestroyedBeforeTheAnswerArrivesNeverCallsBack) {
  EventLoop loop;
  bool called = false;
  {
    Resolver resolver(loop);
    resolver.resolve("localhost", 80, [&](auto, auto) { called = true; });
    resolver.resolve("127.0.0.1", 80, [&](auto, auto) { called = true; });
  }
  // The destructor joined the worker, so any answer it posted is queued ahead of this.
  loop.post([&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_FALSE(called);
}

struct SocketPair {
  Fd a, b;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

TEST(IoOps, DefaultWritevReportsEpipeInsteadOfRaisingSigpipe) {
  SocketPair p;
  p.b.reset();
  char c = 'x';
  iovec iov{&c, 1};
  errno = 0;
  EXPECT_EQ(io_ops().writev(p.a.get(), &iov, 1), -1);
  EXPECT_EQ(errno, EPIPE);
}

TEST(IoOps, DefaultWritevWorksOnNonSockets) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd r(fds[0]), w(fds[1]);
  std::string one = "ab", two = "cd";
  iovec iov[2] = {{one.data(), 2}, {two.data(), 2}};
  ASSERT_EQ(io_ops().writev(w.get(), iov, 2), 4);
  char buf[4];
  ASSERT_EQ(io_ops().read(r.get(), buf, 4), 4);
  EXPECT_EQ(std::string(buf, 4), "abcd");
}

TEST(FaultInjector, WritevGetsShortCountsEagainAndEintrThenDefaultsReturn) {
  SocketPair p;
  const std::string data = pattern(64);
  int eintr = 0, eagain = 0, shorts = 0, full = 0;
  {
    FaultConfig config;
    config.seed = 42;
    config.eintr = 0.2;
    config.eagain = 0.2;
    config.short_io = 0.3;
    FaultInjector injector(config);
    EXPECT_NE(io_ops().writev, default_io_ops().writev);
    for (int i = 0; i < 2000; ++i) {
      // Three pieces, so a short write has to cut the vector in the middle.
      iovec iov[3] = {{const_cast<char*>(data.data()), 10},
                      {const_cast<char*>(data.data()) + 10, 30},
                      {const_cast<char*>(data.data()) + 40, 24}};
      errno = 0;
      ssize_t n = io_ops().writev(p.a.get(), iov, 3);
      if (n < 0) {
        if (errno == EINTR) {
          ++eintr;
        } else if (errno == EAGAIN) {
          ++eagain;
        } else {
          ADD_FAILURE() << "unexpected errno " << errno;
        }
        continue;
      }
      ASSERT_GE(n, 1);
      ASSERT_LE(n, 64);
      (n < 64 ? shorts : full)++;
      // What arrived is exactly the prefix that was reported, so the caller can resume.
      char got[64];
      ASSERT_EQ(::read(p.b.get(), got, sizeof got), n);
      ASSERT_EQ(std::string(got, static_cast<std::size_t>(n)),
                data.substr(0, static_cast<std::size_t>(n)));
    }
    auto stats = injector.stats();
    EXPECT_EQ(stats.calls, 2000u);
    EXPECT_EQ(stats.eintr, static_cast<std::uint64_t>(eintr));
    EXPECT_EQ(stats.eagain, static_cast<std::uint64_t>(eagain));
    EXPECT_EQ(stats.short_io, static_cast<std::uint64_t>(shorts));
  }
  EXPECT_GT(eintr, 0);
  EXPECT_GT(eagain, 0);
  EXPECT_GT(shorts, 0);
  EXPECT_GT(full, 0);

  EXPECT_EQ(io_ops().read, default_io_ops().read);
  EXPECT_EQ(io_ops().writev, default_io_ops().writev);
  for (int i = 0; i < 200; ++i) {
    iovec iov{const_cast<char*>(data.data()), data.size()};
    ASSERT_EQ(io_ops().writev(p.a.get(), &iov, 1), 64);
    char got[64];
    ASSERT_EQ(::read(p.b.get(), got, sizeof got), 64);
  }
}

TEST(FaultInjector, ShortWritesGoDownToOneByte) {
  SocketPair p;
  const std::string data = pattern(2);
  FaultConfig config;
  config.short_io = 1.0;
  FaultInjector injector(config);
  for (int i = 0; i < 10; ++i) {
    iovec iov{const_cast<char*>(data.data()), 2};
    EXPECT_EQ(io_ops().writev(p.a.get(), &iov, 1), 1);
  }
  // One byte cannot be shortened further and goes through whole.
  iovec iov{const_cast<char*>(data.data()), 1};
  EXPECT_EQ(io_ops().writev(p.a.get(), &iov, 1), 1);
}

TEST(FaultInjector, ReadsAreShortenedOrFailWithoutLosingData) {
  SocketPair p;
  const std::string data = pattern(4096);
  ASSERT_EQ(::write(p.a.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  FaultConfig config;
  config.seed = 7;
  config.eintr = 0.1;
  config.eagain = 0.1;
  config.short_io = 0.5;
  config.writes = false;
  FaultInjector injector(config);
  EXPECT_EQ(io_ops().writev, default_io_ops().writev);
  std::string got;
  int failures = 0, shorts = 0;
  while (got.size() < data.size()) {
    char buf[512];
    errno = 0;
    ssize_t n = io_ops().read(p.b.get(), buf, sizeof buf);
    if (n < 0) {
      ASSERT_TRUE(errno == EINTR || errno == EAGAIN) << errno;
      ++failures;
      continue;
    }
    ASSERT_GT(n, 0);
    if (n < 512 && got.size() + static_cast<std::size_t>(n) < data.size()) ++shorts;
    got.append(buf, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(got, data);
  EXPECT_GT(failures, 0);
  EXPECT_GT(shorts, 0);
}

TEST(FaultInjector, ConnectionResetWhenAsked) {
  SocketPair p;
  FaultConfig config;
  config.econnreset = 1.0;
  FaultInjector injector(config);
  char c = 'x';
  iovec iov{&c, 1};
  errno = 0;
  EXPECT_EQ(io_ops().writev(p.a.get(), &iov, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
  errno = 0;
  EXPECT_EQ(io_ops().read(p.b.get(), &c, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(injector.stats().econnreset, 2u);
}

TEST(FaultInjector, SameSeedReplaysTheSameFaults) {
  auto outcomes = [](std::uint64_t seed) {
    SocketPair p;
    const std::string data = pattern(100);
    FaultConfig config;
    config.seed = seed;
    config.eintr = 0.25;
    config.eagain = 0.25;
    config.short_io = 0.25;
    FaultInjector injector(config);
    std::vector<long> out;
    for (int i = 0; i < 300; ++i) {
      iovec iov{const_cast<char*>(data.data()), data.size()};
      errno = 0;
      ssize_t n = io_ops().writev(p.a.get(), &iov, 1);
      out.push_back(n < 0 ? -errno : n);
      char sink[100];
      if (n > 0) {
        EXPECT_EQ(::read(p.b.get(), sink, sizeof sink), n);
      }
    }
    return out;
  };
  EXPECT_EQ(outcomes(3), outcomes(3));
  EXPECT_NE(outcomes(3), outcomes(4));
}

TEST(FaultInjector, DisabledPassesThroughAndOnlyOneMayBeActive) {
  SocketPair p;
  FaultConfig config;
  config.eagain = 1.0;
  FaultInjector injector(config);
  EXPECT_THROW(FaultInjector second(config), std::logic_error);
  // The failed second one must not have restored anything.
  EXPECT_NE(io_ops().writev, default_io_ops().writev);

  char c = 'x';
  iovec iov{&c, 1};
  EXPECT_EQ(io_ops().writev(p.a.get(), &iov, 1), -1);
  injector.set_enabled(false);
  EXPECT_EQ(io_ops().writev(p.a.get(), &iov, 1), 1);
  injector.set_enabled(true);
  EXPECT_EQ(io_ops().writev(p.a.get(), &iov, 1), -1);
  EXPECT_EQ(injector.stats().calls, 2u);
}

}  // namespace
}  // namespace tether::net

namespace tether::net {
namespace {

TEST(ResolveNumeric, LiteralsNeedNoLookupAndNamesAreLeftToTheResolver) {
  auto v4 = resolve_numeric("127.0.0.1", 80);
  ASSERT_EQ(v4.size(), 1u);
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&v4[0].addr), v4[0].len),
            "127.0.0.1:80");
  auto v6 = resolve_numeric("[::1]", 443);
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&v6[0].addr), v6[0].len), "[::1]:443");
  EXPECT_TRUE(resolve_numeric("localhost", 80).empty());
  EXPECT_TRUE(resolve_numeric("256.1.1.1", 80).empty());
}

}  // namespace
}  // namespace tether::net
