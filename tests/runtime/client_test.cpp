#include "tether/client.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "runtime/loop_harness.hpp"
#include "runtime/socket.hpp"
#include "tether/server.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using test::echo_behavior;
using test::local_server_options;
using test::run_bounded;
using test::url_for;

TEST(WebSocketUrl, ParsesWhatUsersWrite) {
  auto u = parse_websocket_url("ws://example.com/chat?room=1");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->secure);
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/chat?room=1");
  EXPECT_EQ(u->host_header(), "example.com");
  u = parse_websocket_url("wss://[::1]:8443");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->secure);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->target, "/");
  EXPECT_EQ(u->host_header(), "[::1]:8443");
  u = parse_websocket_url("ws://h:9000?x=1#frag");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/?x=1");
  std::string err;
  EXPECT_FALSE(parse_websocket_url("http://h/", &err));
  EXPECT_NE(err.find("scheme"), std::string::npos);
  EXPECT_FALSE(parse_websocket_url("ws://h:99999/", &err));
  EXPECT_FALSE(parse_websocket_url("ws://:80/", &err));
  EXPECT_FALSE(parse_websocket_url("ws://h/a b", &err));
}

TEST(Client, ConnectionRefusedIsReportedClearly) {
  // A port that was just free: bind, note it, close.
  std::string e;
  std::uint16_t port;
  {
    net::Fd probe = net::listen_tcp("127.0.0.1", 0, 1, e);
    ASSERT_TRUE(probe) << e;
    port = net::local_port(probe.get());
  }
  EventLoop loop;
  ClientOptions o;
  o.url = "ws://127.0.0.1:" + std::to_string(port) + "/";
  std::string error;
  ClientHandlers h;
  h.on_error = [&](int, std::string_view m) { error = m; };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, o, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_NE(error.find("Connection refused"), std::string::npos) << error;
  EXPECT_NE(error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << error;
}

TEST(Client, InvalidUrlIsRefusedAtConnect) {
  EventLoop loop;
  ClientOptions o;
  o.url = "ftp://x";
  Client client(loop, o);
  std::string err;
  EXPECT_FALSE(client.connect(&err));
  EXPECT_FALSE(err.empty());
}

TEST(Client, HandleUsedAfterCloseIsSafe) {
  EventLoop loop;
  auto server = std::make_unique<Server>(loop, local_server_options());
  server->route("*", echo_behavior());
  ASSERT_TRUE(server->listen());
  ConnectionPtr kept;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr& c) {
    kept = c;
    c->close(1000, "done");
  };
  h.on_finished = [&] { loop.stop(); };
  ClientOptions o;
  o.url = url_for(*server);
  auto client = std::make_unique<Client>(loop, o, h);
  ASSERT_TRUE(client->connect());
  run_bounded(loop);
  client.reset();
  server.reset();
  ASSERT_TRUE(kept);
  EXPECT_FALSE(kept->is_open());
  EXPECT_EQ(kept->send_text("late"), SendResult::closed);
  EXPECT_EQ(kept->ping(), SendResult::closed);
  EXPECT_EQ(kept->close(), SendResult::closed);
  EXPECT_EQ(kept->buffered_amount(), 0u);
  // From another thread too.
  SendResult from_thread = SendResult::ok;
  std::thread([&] { from_thread = kept->send_text("late"); }).join();
  EXPECT_EQ(from_thread, SendResult::closed);
}

// The server goes away and comes back on the same port; the client reconnects with backoff and
// the messages queued while it was offline go out first.
TEST(Client, ReconnectsAfterServerRestartWithBackoff) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  auto server = std::make_unique<Server>(loop, so);
  std::vector<std::string> server_got;
  ServerBehavior b;
  b.on_message = [&](const ConnectionPtr& c, MessageType t, ByteView p) {
    server_got.emplace_back(as_text(p));
    c->send(t, p);
  };
  server->route("*", b);
  ASSERT_TRUE(server->listen());
  std::uint16_t port = server->port();

  ClientOptions o;
  o.url = url_for(*server);
  o.session.ping_interval = 0ms;
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 20ms;
  o.reconnect.max_delay = 200ms;
  o.offline_queue_limit = 1 << 20;
  int opens = 0;
  std::vector<Duration> delays;
  std::unique_ptr<Client> client;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr& c) {
    ++opens;
    if (opens == 1) {
      c->send_text("before restart");
    }
  };
  h.on_message = [&](const ConnectionPtr&, MessageType, ByteView p) {
    if (as_text(p) == "before restart")
      server.reset();  // the server goes away
    else if (as_text(p) == "while offline")
      client->close();
  };
  h.on_close = [&](const ConnectionPtr&, std::uint16_t, std::string_view) {
    if (opens != 1) return;
    // Disconnected: this send is queued, and the server comes back a little later.
    EXPECT_EQ(client->send_text("while offline"), SendResult::ok);
    loop.call_after(100ms, [&] {
      ServerOptions again = so;
      again.port = port;
      server = std::make_unique<Server>(loop, again);
      server->route("*", b);
      ASSERT_TRUE(server->listen());
    });
  };
  h.on_reconnect = [&](unsigned, Duration d) { delays.push_back(d); };
  h.on_finished = [&] { loop.stop(); };
  client = std::make_unique<Client>(loop, o, h);
  ASSERT_TRUE(client->connect());
  run_bounded(loop);
  EXPECT_EQ(opens, 2);
  EXPECT_EQ(client->reconnects(), 1u);
  ASSERT_FALSE(delays.empty());
  for (auto d : delays) EXPECT_LE(d, 200ms);  // capped by max_delay
  EXPECT_EQ(server_got, (std::vector<std::string>{"before restart", "while offline"}));
}

TEST(Client, GivesUpAfterMaxAttempts) {
  std::string e;
  std::uint16_t port;
  {
    net::Fd probe = net::listen_tcp("127.0.0.1", 0, 1, e);
    port = net::local_port(probe.get());
  }
  EventLoop loop;
  ClientOptions o;
  o.url = "ws://127.0.0.1:" + std::to_string(port);
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 1ms;
  o.reconnect.max_attempts = 3;
  int errors = 0, reconnects = 0;
  ClientHandlers h;
  h.on_error = [&](int, std::string_view) { ++errors; };
  h.on_reconnect = [&](unsigned, Duration) { ++reconnects; };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, o, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_EQ(errors, 3);
  EXPECT_EQ(reconnects, 2);
}

TEST(Client, SendWhileDisconnectedIsRefusedWithoutOfflineQueue) {
  EventLoop loop;
  ClientOptions o;
  o.url = "ws://127.0.0.1:9/";
  Client client(loop, o);
  EXPECT_EQ(client.send_text("x"), SendResult::closed);
}

TEST(Client, RequiredSubprotocolNotChosenFailsTheHandshake) {
  EventLoop loop;
  Server server(loop, local_server_options());  // supports no subprotocol
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  ClientOptions o;
  o.url = url_for(server);
  o.subprotocols = {"chat.v2"};
  o.require_subprotocol = true;
  std::string error;
  bool opened = false;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr&) { opened = true; };
  h.on_error = [&](int, std::string_view m) { error = m; };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, o, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_FALSE(opened);
  EXPECT_NE(error.find("subprotocol"), std::string::npos);
}

TEST(Client, BackpressureLimitRefusesAndDrainFires) {
  EventLoop loop;
  Server server(loop, local_server_options());
  ServerBehavior sb;  // reads everything, answers nothing
  server.route("*", sb);
  ASSERT_TRUE(server.listen());
  ClientOptions o;
  o.url = url_for(server);
  o.session.ping_interval = 0ms;
  o.backpressure.limit = 256 * 1024;
  o.backpressure.low_water = 1024;
  o.backpressure.policy = BackpressurePolicy::refuse;
  bool refused = false, drained = false;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr& c) {
    std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 10; ++i) {
      SendResult r = c->send_text(chunk);
      if (r == SendResult::backpressure) {
        refused = true;
        break;
      }
      ASSERT_EQ(r, SendResult::ok);
    }
    EXPECT_LE(c->buffered_amount(), o.backpressure.limit);
  };
  h.on_drain = [&](const ConnectionPtr& c) {
    drained = true;
    EXPECT_LE(c->buffered_amount(), 1024u);
    c->close();
  };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, o, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_TRUE(refused);
  EXPECT_TRUE(drained);
}

TEST(Client, ConnectsByHostNameThroughTheResolver) {
  EventLoop loop;
  Server server(loop, local_server_options());
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  std::string got;
  ClientHandlers h;
  h.on_open = [](const ConnectionPtr& c) { c->send_text("by name"); };
  h.on_message = [&](const ConnectionPtr& c, MessageType, ByteView p) {
    got = std::string(as_text(p));
    c->close();
  };
  h.on_finished = [&] { loop.stop(); };
  ClientOptions o;
  // "localhost" may resolve to ::1 first; the client tries each address in turn.
  o.url = "ws://localhost:" + std::to_string(server.port()) + "/";
  Client client(loop, o, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop);
  EXPECT_EQ(got, "by name");
}

}  // namespace
}  // namespace tether
