// Abuse and limits: each refusal has the right code or status, memory stays bounded, and
// other connections carry on.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>

#include <future>
#include <random>

#include "core/session_harness.hpp"
#include "runtime/fault_injection.hpp"
#include "runtime/loop_harness.hpp"
#include "tether/client.hpp"
#include "tether/server.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using test::echo_behavior;
using test::local_server_options;
using test::run_bounded;

const char* upgrade_request =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// Reads from a blocking raw socket until `want` appears or EOF; bounded by poll timeouts.
std::string read_until(int fd, std::string_view want, int timeout_ms = 10000) {
  std::string got;
  char buf[4096];
  while (got.find(want) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// A server on its own thread, so raw blocking sockets can talk to it from the test thread.
struct ServerThread {
  EventLoop loop;
  std::unique_ptr<Server> server;
  std::thread thread;
  explicit ServerThread(ServerOptions o, ServerBehavior b = echo_behavior()) {
    server = std::make_unique<Server>(loop, o);
    server->route("*", std::move(b));
    EXPECT_TRUE(server->listen());
    thread = std::thread([this] { run_bounded(loop, 120s); });
  }
  ~ServerThread() {
    loop.post([this] { loop.stop(); });
    thread.join();
  }
};

// Slowloris: the request head arrives one byte every 20 ms; the handshake timeout ends it.
TEST(Abuse, SlowHeadersAreClosedByTheHandshakeTimeout) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.session.handshake_timeout = 200ms;
  Server server(loop, so);
  server.route("*", echo_behavior());
  std::vector<std::string> logs;
  server.on_log([&](LogLevel, std::string_view m) { logs.emplace_back(m); });
  ASSERT_TRUE(server.listen());
  int fd = test::connect_raw(server.port());
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  std::string request = upgrade_request;
  std::size_t sent = 0;
  bool closed_by_server = false;
  std::function<void()> drip = [&] {
    char c;
    if (::read(fd, &c, 1) == 0) {  // EOF: the server gave up on us
      closed_by_server = true;
      return loop.stop();
    }
    if (sent < request.size()) ::write(fd, &request[sent++], 1);
    loop.call_after(20ms, drip);
  };
  drip();
  run_bounded(loop, 30s);
  ::close(fd);
  EXPECT_TRUE(closed_by_server);
  EXPECT_LT(sent, request.size());  // it never got to finish the head
  std::string all;
  for (auto& l : logs) all += l;
  EXPECT_NE(all.find("timed out"), std::string::npos) << all;
}

TEST(Abuse, LengthClaimOf2To62IsClosedWith1009AtOnce) {
  ServerOptions so = local_server_options();
  ServerThread st(so);
  int fd = test::connect_raw(st.server->port(), upgrade_request);
  ASSERT_NE(read_until(fd, "\r\n\r\n").find("101"), std::string::npos);
  unsigned char claim[] = {0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  ASSERT_EQ(::write(fd, claim, sizeof claim), static_cast<ssize_t>(sizeof claim));
  std::string reply = read_until(fd, "\x03\xf1");  // CLOSE with 1009 = 0x03F1
  ASSERT_GE(reply.size(), 4u);
  EXPECT_EQ(static_cast<unsigned char>(reply[0]), 0x88);
  EXPECT_EQ(reply.substr(2, 2), "\x03\xf1");
  ::close(fd);
}

// A peer's last message and its FIN reach the server before the server reads either, so one
// edge reports both: the server must deliver the message and also see the end, not stop at
// the short read that drained the message and wait for a keepalive timeout.
TEST(Abuse, MessageAndFinInOneReadinessAreBothHandled) {
  std::promise<void> hold, held;
  std::atomic<int> messages{0}, close_code{0};
  ServerBehavior b = echo_behavior();
  auto echo = b.on_message;
  b.on_message = [&](const ConnectionPtr& c, MessageType t, ByteView p) {
    ++messages;
    echo(c, t, p);
  };
  b.on_close = [&](const ConnectionPtr&, std::uint16_t code, std::string_view) {
    close_code = code;
  };
  ServerThread st(local_server_options(), b);
  int fd = test::connect_raw(st.server->port(), upgrade_request);
  ASSERT_NE(read_until(fd, "\r\n\r\n").find("101"), std::string::npos);
  // Park the loop thread in a task until both the frame and the FIN are queued on its socket.
  auto parked = hold.get_future();
  st.loop.post([&] {
    held.set_value();
    parked.wait();
  });
  held.get_future().wait();
  const unsigned char frame[] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};  // masked "hi"
  ASSERT_EQ(::write(fd, frame, sizeof frame), static_cast<ssize_t>(sizeof frame));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  hold.set_value();
  // The echo, then EOF: the server closed its end once it read ours.
  std::string got;
  bool eof = false;
  char buf[256];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      eof = n == 0;
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(got, std::string("\x81\x02hi", 4));
  EXPECT_TRUE(eof) << "the server did not close after the peer's FIN";
  EXPECT_EQ(messages.load(), 1);
}

// A client that never reads while the server keeps sending: the server's memory for it stays
// under the limit, and the policy decides what happens.
TEST(Abuse, SlowReaderIsBoundedByTheBackpressureLimit) {
  for (BackpressurePolicy policy : {BackpressurePolicy::refuse, BackpressurePolicy::close}) {
    SCOPED_TRACE(policy == BackpressurePolicy::refuse ? "refuse" : "close");
    ServerOptions so = local_server_options();
    so.backpressure.limit = 1 << 20;
    so.backpressure.policy = policy;
    so.socket_send_buffer = 16384;
    std::atomic<int> refused{0}, ok{0};
    std::atomic<std::size_t> peak{0};
    ServerBehavior b;
    b.on_open = [&](const ConnectionPtr& c) {
      std::string chunk(64 * 1024, 'x');
      for (int i = 0; i < 200; ++i) {
        SendResult r = c->send_text(chunk);
        peak = std::max(peak.load(), c->buffered_amount());
        if (r == SendResult::ok)
          ++ok;
        else {
          ++refused;
          break;
        }
      }
    };
    ServerThread st(so, b);
    int fd = test::connect_raw(st.server->port(), upgrade_request);
    std::string head = read_until(fd, "\r\n\r\n");
    ASSERT_NE(head.find("101"), std::string::npos);
    // on_open ran before the 101 was flushed (same loop turn), so its sends are done; this
    // client never reads another byte.
    EXPECT_GT(ok.load(), 0);
    EXPECT_EQ(refused.load(), 1);
    EXPECT_LE(peak.load(), so.backpressure.limit);
    ::close(fd);
  }
}

// Out of file descriptors: accept pauses instead of spinning, and recovers when fds free up.
TEST(Abuse, DescriptorExhaustionPausesAcceptAndRecovers) {
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  EventLoop loop;
  Server server(loop, local_server_options());
  server.route("*", echo_behavior());
  std::vector<std::string> logs;
  server.on_log([&](LogLevel, std::string_view m) { logs.emplace_back(m); });
  ASSERT_TRUE(server.listen());
  // Fill the descriptor table up to a lowered limit, leaving room for the client's socket only.
  std::vector<int> hogs;
  int probe = ::open("/dev/null", O_RDONLY);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(probe + 8);
  ::close(probe);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  for (;;) {
    int fd = ::open("/dev/null", O_RDONLY);
    if (fd < 0) break;
    hogs.push_back(fd);
  }
  ::close(hogs.back());  // one slot: the client's socket; none left for accept()
  hogs.pop_back();
  std::string echoed;
  ClientHandlers h;
  h.on_open = [](const ConnectionPtr& c) { c->send_text("after EMFILE"); };
  h.on_message = [&](const ConnectionPtr&, MessageType, ByteView p) {
    echoed = std::string(as_text(p));
    loop.stop();
  };
  ClientOptions co;
  co.url = test::url_for(server);
  Client client(loop, co, h);
  ASSERT_TRUE(client.connect());
  // Once accept has paused, free the descriptors: the next retry must succeed.
  std::function<void()> watch = [&] {
    bool paused = false;
    for (auto& l : logs) paused |= l.find("accept paused") != std::string::npos;
    if (paused) {
      for (int fd : hogs) ::close(fd);
      hogs.clear();
      return;
    }
    loop.call_after(5ms, watch);
  };
  watch();
  run_bounded(loop, 30s);
  for (int fd : hogs) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  EXPECT_EQ(echoed, "after EMFILE");
}

// Random short reads and writes, EAGAIN, EINTR and ECONNRESET in the middle of frames on many
// connections: nothing crashes or leaks, and every message that is delivered is intact.
TEST(Abuse, FaultInjectionWithResetsNeverDeliversACorruptMessage) {
  net::FaultConfig fc;
  fc.seed = 7;
  fc.short_io = 0.4;
  fc.eagain = 0.1;
  fc.eintr = 0.1;
  fc.econnreset = 0.01;
  EventLoop loop;
  Server server(loop, local_server_options());
  int corrupt = 0, delivered = 0;
  auto check = [&](ByteView p) {
    // "<n>:" followed by n copies of the letter n % 26.
    std::string m(as_text(p));
    auto colon = m.find(':');
    std::size_t n = colon == std::string::npos ? 0 : std::stoul(m.substr(0, colon));
    if (m != std::to_string(n) + ":" + std::string(n, static_cast<char>('a' + n % 26))) ++corrupt;
    ++delivered;
  };
  ServerBehavior b;
  b.on_message = [&](const ConnectionPtr& c, MessageType t, ByteView p) {
    check(p);
    c->send(t, p);
  };
  server.route("*", b);
  ASSERT_TRUE(server.listen());
  constexpr int clients = 20;
  int finished = 0;
  std::vector<std::unique_ptr<Client>> all;
  for (int i = 0; i < clients; ++i) {
    ClientHandlers h;
    h.on_open = [](const ConnectionPtr& c) {
      for (std::size_t n = 1; n < 3000; n += 97)
        c->send_text(std::to_string(n) + ":" + std::string(n, static_cast<char>('a' + n % 26)));
      c->close();
    };
    h.on_message = [&](const ConnectionPtr&, MessageType, ByteView p) { check(p); };
    h.on_finished = [&] {
      if (++finished == clients) loop.stop();
    };
    ClientOptions co;
    co.url = test::url_for(server);
    co.connect_timeout = 5s;
    co.session.close_timeout = 500ms;
    all.push_back(std::make_unique<Client>(loop, co, h));
  }
  net::FaultInjector faults(fc);
  for (auto& c : all) ASSERT_TRUE(c->connect());
  run_bounded(loop, 60s);
  EXPECT_EQ(corrupt, 0);
  EXPECT_GT(delivered, 0);
  EXPECT_GT(faults.stats().econnreset, 0u);
}

}  // namespace
}  // namespace tether
