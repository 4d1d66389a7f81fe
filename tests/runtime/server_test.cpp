#include "tether/server.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "runtime/fault_injection.hpp"
#include "runtime/loop_harness.hpp"
#include "runtime/socket.hpp"
#include "tether/client.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using test::echo_behavior;
using test::local_server_options;
using test::run_bounded;
using test::url_for;

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

ClientOptions client_for(const Server& s, std::string path = "/") {
  ClientOptions o;
  o.url = url_for(s, path);
  o.session.ping_interval = 0ms;
  return o;
}

// Sends each payload in turn and checks that the echo is identical, text and binary.
TEST(Server, EchoesEverySizeFromEmptyTo16MiB) {
  EventLoop loop;
  Server server(loop, local_server_options());
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  std::vector<std::size_t> sizes = {0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 16u << 20};
  std::size_t next = 0;
  int echoed = 0;
  std::string expected;
  MessageType expected_type = MessageType::text;
  ClientHandlers h;
  auto send_next = [&](const ConnectionPtr& c) {
    std::size_t i = next / 2;
    expected_type = next % 2 ? MessageType::binary : MessageType::text;
    expected = pattern(sizes[i], static_cast<unsigned>(next));
    ASSERT_EQ(c->send(expected_type, as_bytes(expected)), SendResult::ok);
  };
  h.on_open = send_next;
  h.on_message = [&](const ConnectionPtr& c, MessageType type, ByteView payload) {
    EXPECT_EQ(type, expected_type);
    EXPECT_EQ(payload.size(), expected.size());
    EXPECT_TRUE(as_text(payload) == expected) << "echo of message " << next << " differs";
    ++echoed;
    if (++next == sizes.size() * 2) return loop.stop();
    send_next(c);
  };
  h.on_error = [&](int code, std::string_view m) {
    ADD_FAILURE() << code << " " << m;
    loop.stop();
  };
  Client client(loop, client_for(server), h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_EQ(echoed, static_cast<int>(sizes.size() * 2));
}

TEST(Server, TwoHundredConcurrentClients) {
  EventLoop loop;
  Server server(loop, local_server_options());
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  constexpr int n = 200;
  int done = 0;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < n; ++i) {
    ClientHandlers h;
    std::string msg = "client " + std::to_string(i);
    h.on_open = [msg](const ConnectionPtr& c) { c->send_text(msg); };
    h.on_message = [&, msg](const ConnectionPtr& c, MessageType, ByteView p) {
      EXPECT_EQ(as_text(p), msg);
      c->close();
    };
    h.on_close = [&](const ConnectionPtr&, std::uint16_t code, std::string_view) {
      EXPECT_EQ(code, 1000);
      if (++done == n) loop.stop();
    };
    clients.push_back(std::make_unique<Client>(loop, client_for(server), h));
    ASSERT_TRUE(clients.back()->connect());
  }
  run_bounded(loop);
  EXPECT_EQ(done, n);
}

// The integrity scenarios (threads, tiny buffers with PINGs, fault injection) are in
// integrity_test.cpp, run over every transport.

// A raw TCP peer completes the handshake, then never answers anything.
TEST(Server, DeadPeerIsDetectedByKeepalive) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.session.ping_interval = 50ms;
  so.session.pong_timeout = 100ms;
  Server server(loop, so);
  std::optional<std::pair<std::uint16_t, std::string>> closed;
  bool opened = false;
  ServerBehavior b;
  b.on_open = [&](const ConnectionPtr&) { opened = true; };
  b.on_close = [&](const ConnectionPtr&, std::uint16_t code, std::string_view reason) {
    closed = {code, std::string(reason)};
    loop.stop();
  };
  server.route("*", b);
  ASSERT_TRUE(server.listen());
  std::string req =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  int fd = test::connect_raw(server.port(), req);
  run_bounded(loop, 30s);
  ::close(fd);
  EXPECT_TRUE(opened);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->first, close_code::abnormal);
  EXPECT_EQ(closed->second, "keepalive timeout");
}

TEST(Server, RefusalsCarryTheirHttpStatus) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  Server server(loop, so);
  ServerBehavior b = echo_behavior();
  b.on_upgrade = [](const HttpRequestHead& req, HandshakeDecision& d) {
    if (!req.headers.find("Authorization")) {
      d.accept = false;
      d.status = 401;
      d.body = "missing token";
    }
  };
  server.route("/secure", b);
  ASSERT_TRUE(server.listen());
  std::vector<int> statuses;
  int finished = 0;
  auto attempt = [&](std::string path, std::vector<HttpHeader> headers) {
    ClientOptions o = client_for(server, path);
    o.headers = std::move(headers);
    ClientHandlers h;
    h.on_error = [&](int code, std::string_view) { statuses.push_back(code); };
    h.on_open = [&](const ConnectionPtr& c) {
      statuses.push_back(101);
      c->close();
    };
    h.on_finished = [&] {
      if (++finished == 3) loop.stop();
    };
    return std::make_unique<Client>(loop, o, h);
  };
  auto a = attempt("/nowhere", {});
  auto b2 = attempt("/secure", {});
  auto c = attempt("/secure", {{"Authorization", "Bearer x"}});
  ASSERT_TRUE(a->connect());
  ASSERT_TRUE(b2->connect());
  ASSERT_TRUE(c->connect());
  run_bounded(loop);
  std::sort(statuses.begin(), statuses.end());
  EXPECT_EQ(statuses, (std::vector<int>{101, 401, 404}));
}

TEST(Server, ConnectionLimitAnswers503) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.max_connections = 2;
  Server server(loop, so);
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  int opened = 0;
  std::vector<int> errors;
  std::vector<std::unique_ptr<Client>> clients;
  auto make = [&] {
    ClientHandlers h;
    h.on_open = [&](const ConnectionPtr&) {
      if (++opened == 2) {  // both slots taken: the third must be refused
        ClientHandlers h3;
        h3.on_error = [&](int code, std::string_view) {
          errors.push_back(code);
          loop.stop();
        };
        clients.push_back(std::make_unique<Client>(loop, client_for(server), h3));
        clients.back()->connect();
      }
    };
    clients.push_back(std::make_unique<Client>(loop, client_for(server), h));
    clients.back()->connect();
  };
  make();
  make();
  run_bounded(loop);
  EXPECT_EQ(opened, 2);
  EXPECT_EQ(errors, std::vector<int>{503});
  EXPECT_EQ(server.connection_count(), 2u);
}

// Garbage, a silent socket and a half handshake: each is answered or timed out, and a real
// client on the same server is unaffected.
TEST(Server, BadInputIsRefusedAndOthersAreUnaffected) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.session.handshake_timeout = 200ms;
  Server server(loop, so);
  server.route("*", echo_behavior());
  std::vector<std::string> logs;
  server.on_log([&](LogLevel, std::string_view m) { logs.emplace_back(m); });
  ASSERT_TRUE(server.listen());

  auto raw = [&](std::string_view bytes) { return test::connect_raw(server.port(), bytes); };
  int garbage = raw("\x16\x03\x01 this is not HTTP at all\r\n\r\n");
  int silent = raw("");
  int half = raw("GET / HTTP/1.1\r\nHost: x\r\n");
  std::string echoed;
  ClientHandlers h;
  h.on_open = [](const ConnectionPtr& c) { c->send_text("still fine"); };
  h.on_message = [&](const ConnectionPtr&, MessageType, ByteView p) {
    echoed = std::string(as_text(p));
  };
  Client client(loop, client_for(server), h);
  ASSERT_TRUE(client.connect());
  // Stop once the three bad sockets are gone and the echo came back.
  std::function<void()> poll;
  EventLoop::TimerId poll_timer = 0;
  poll = [&] {
    if (server.connection_count() == 1 && !echoed.empty() && logs.size() >= 3) return loop.stop();
    poll_timer = loop.call_after(10ms, poll);
  };
  poll();
  run_bounded(loop, 30s);
  loop.cancel(poll_timer);
  EXPECT_EQ(echoed, "still fine");
  // The garbage got an HTTP error and was closed: reading gives the response then EOF.
  char buf[512];
  ssize_t n = ::read(garbage, buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, 9), "HTTP/1.1 ");
  std::string all_logs;
  for (auto& l : logs) all_logs += l + "\n";
  EXPECT_NE(all_logs.find("timed out"), std::string::npos) << all_logs;
  for (int fd : {garbage, silent, half}) ::close(fd);
}

TEST(Server, GracefulShutdownSends1001) {
  EventLoop loop;
  Server server(loop, local_server_options());
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  std::optional<std::uint16_t> code;
  bool done = false;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr&) { server.shutdown([&] { done = true; }); };
  h.on_close = [&](const ConnectionPtr&, std::uint16_t c, std::string_view) { code = c; };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, client_for(server), h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, close_code::going_away);
  EXPECT_TRUE(done);
}

TEST(Server, TraceSeesEveryFrameInAndOut) {
  EventLoop loop;
  Server server(loop, local_server_options());
  server.route("*", echo_behavior());
  std::vector<std::string> lines;
  server.on_trace([&](const TraceEvent& e) {
    lines.push_back(std::string(e.outgoing ? "out " : "in ") +
                    std::string(opcode_name(e.header.opcode)) + " " +
                    std::string(as_text(e.payload_head)));
  });
  ASSERT_TRUE(server.listen());
  ClientHandlers h;
  h.on_open = [](const ConnectionPtr& c) { c->send_text("traced"); };
  h.on_message = [](const ConnectionPtr& c, MessageType, ByteView) { c->close(); };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, client_for(server), h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_EQ(lines, (std::vector<std::string>{"in TEXT traced", "out TEXT traced",
                                             "in CLOSE \x03\xe8", "out CLOSE \x03\xe8"}));
}

TEST(Server, ServesIpv6Loopback) {
  std::string probe_error;
  if (!net::listen_tcp("::1", 0, 1, probe_error))
    GTEST_SKIP() << "no IPv6 loopback: " << probe_error;
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.host = "::1";
  Server server(loop, so);
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  std::string got, remote;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr& c) {
    remote = c->remote_address();
    c->send_text("over v6");
  };
  h.on_message = [&](const ConnectionPtr& c, MessageType, ByteView p) {
    got = std::string(as_text(p));
    c->close();
  };
  h.on_finished = [&] { loop.stop(); };
  ClientOptions co;
  co.url = "ws://[::1]:" + std::to_string(server.port()) + "/";
  Client client(loop, co, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_EQ(got, "over v6");
  EXPECT_EQ(remote.rfind("[::1]:", 0), 0u) << remote;
}

}  // namespace
}  // namespace tether
