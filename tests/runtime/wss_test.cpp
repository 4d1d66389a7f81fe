// wss:// end to end on loopback, with certificates made at test time.
#include <gtest/gtest.h>

#include "runtime/connection_impl.hpp"
#include "runtime/loop_harness.hpp"
#include "runtime/tls_test_certs.hpp"
#include "tether/client.hpp"
#include "tether/server.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using test::echo_behavior;
using test::local_server_options;
using test::run_bounded;
const auto& certs() {
  return tls::testing::test_certs();
}

struct Outcome {
  bool opened = false;
  std::string echoed;
  std::string error;
  std::vector<std::string> client_logs;
  std::vector<std::string> server_errors;
};

// One wss connection: server with `so.tls`, client with `tls`; sends one message if it opens.
Outcome run_wss(TlsServerOptions server_tls, TlsClientOptions client_tls,
                std::string host = "127.0.0.1") {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.tls = server_tls;
  Server server(loop, so);
  Outcome out;
  ServerBehavior b = echo_behavior();
  b.on_error = [&](const ConnectionPtr&, int, std::string_view m) {
    out.server_errors.emplace_back(m);
  };
  server.route("*", b);
  std::string listen_error;
  EXPECT_TRUE(server.listen(&listen_error)) << listen_error;
  ClientOptions co;
  co.url = "wss://" + host + ":" + std::to_string(server.port()) + "/secure";
  co.tls = std::move(client_tls);
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr& c) {
    out.opened = true;
    c->send_text("over TLS");
  };
  h.on_message = [&](const ConnectionPtr& c, MessageType, ByteView p) {
    out.echoed = std::string(as_text(p));
    c->close();
  };
  h.on_error = [&](int, std::string_view m) {
    if (out.error.empty()) out.error = m;
  };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, co, h);
  client.on_log([&](LogLevel, std::string_view m) { out.client_logs.emplace_back(m); });
  std::string connect_error;
  EXPECT_TRUE(client.connect(&connect_error)) << connect_error;
  run_bounded(loop, 30s);
  return out;
}

TEST(Wss, EchoWithVerifiedCertificate) {
  auto out = run_wss({certs().server, certs().server_key, {}}, {.ca_file = certs().ca});
  EXPECT_TRUE(out.opened) << out.error;
  EXPECT_EQ(out.echoed, "over TLS");
}

TEST(Wss, TlsBuffersGrownByABurstAreFreedAtTheReleaseInterval) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.tls = {certs().server, certs().server_key, {}};
  so.session.buffer_release_interval = 20ms;
  Server server(loop, so);
  bool grew = false;
  bool released = false;
  std::function<void(ConnectionPtr)> look;
  // Looks every 5 ms until the channel's buffers are freed; the watchdog bounds the wait.
  look = [&](ConnectionPtr c) {
    if (!dynamic_cast<detail::ConnectionImpl&>(*c).tls_holds_burst_buffers()) {
      released = true;
      c->close();
      return;
    }
    loop.call_after(5ms, [&look, c] { look(c); });
  };
  ServerBehavior b;
  b.on_message = [&](const ConnectionPtr& c, MessageType, ByteView p) {
    ASSERT_EQ(p.size(), 256u * 1024);
    grew = dynamic_cast<detail::ConnectionImpl&>(*c).tls_holds_burst_buffers();
    look(c);
  };
  server.route("*", b);
  std::string listen_error;
  ASSERT_TRUE(server.listen(&listen_error)) << listen_error;
  ClientOptions co;
  co.url = "wss://127.0.0.1:" + std::to_string(server.port()) + "/";
  co.tls = {.ca_file = certs().ca};
  ClientHandlers h;
  h.on_open = [](const ConnectionPtr& c) { c->send_binary(std::vector<std::byte>(256 * 1024)); };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, co, h);
  std::string connect_error;
  ASSERT_TRUE(client.connect(&connect_error)) << connect_error;
  run_bounded(loop, 30s);
  EXPECT_TRUE(grew);
  EXPECT_TRUE(released);
}

TEST(Wss, VerifiesHostNamesToo) {
  auto out =
      run_wss({certs().server, certs().server_key, {}}, {.ca_file = certs().ca}, "localhost");
  EXPECT_TRUE(out.opened) << out.error;
  EXPECT_EQ(out.echoed, "over TLS");
}

TEST(Wss, UnknownCaIsRefusedWithAClearReason) {
  auto out = run_wss({certs().server, certs().server_key, {}}, {.ca_file = certs().other_ca});
  EXPECT_FALSE(out.opened);
  EXPECT_NE(out.error.find("certificate verify failed"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("unknown CA"), std::string::npos) << out.error;
}

TEST(Wss, WrongHostIsRefused) {
  auto out = run_wss({certs().server, certs().server_key, {}},
                     {.ca_file = certs().ca, .server_name = "wrong.example"});
  EXPECT_FALSE(out.opened);
  EXPECT_NE(out.error.find("wrong.example"), std::string::npos) << out.error;
}

TEST(Wss, ExpiredCertificateIsRefused) {
  auto out = run_wss({certs().expired, certs().server_key, {}}, {.ca_file = certs().ca});
  EXPECT_FALSE(out.opened);
  EXPECT_NE(out.error.find("expired"), std::string::npos) << out.error;
}

TEST(Wss, InsecureConnectsButWarnsEveryTime) {
  auto out = run_wss({certs().server, certs().server_key, {}},
                     {.verify = false, .ca_file = certs().other_ca});
  EXPECT_TRUE(out.opened) << out.error;
  bool warned = false;
  for (auto& l : out.client_logs) warned |= l.find("verification is OFF") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(Wss, MutualTlsAcceptsAKnownClientCertificate) {
  auto out =
      run_wss({certs().server, certs().server_key, certs().ca},
              {.ca_file = certs().ca, .cert_file = certs().client, .key_file = certs().client_key});
  EXPECT_TRUE(out.opened) << out.error;
  EXPECT_EQ(out.echoed, "over TLS");
}

TEST(Wss, MutualTlsRefusesAClientWithoutCertificate) {
  auto out = run_wss({certs().server, certs().server_key, certs().ca}, {.ca_file = certs().ca});
  EXPECT_FALSE(out.echoed == "over TLS");
  EXPECT_FALSE(out.error.empty());
}

TEST(Wss, MutualTlsRefusesACertificateFromAnotherCa) {
  auto out = run_wss({certs().server, certs().server_key, certs().ca},
                     {.ca_file = certs().ca,
                      .cert_file = certs().other_client,
                      .key_file = certs().other_client_key});
  EXPECT_FALSE(out.echoed == "over TLS");
  EXPECT_FALSE(out.error.empty());
}

TEST(Wss, MissingCertificateFileFailsListenWithItsName) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.tls = TlsServerOptions{"/nonexistent/cert.pem", "/nonexistent/key.pem", {}};
  Server server(loop, so);
  std::string error;
  EXPECT_FALSE(server.listen(&error));
  EXPECT_NE(error.find("/nonexistent/cert.pem"), std::string::npos) << error;
}

TEST(Wss, PlainClientToTlsServerFailsCleanly) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.tls = TlsServerOptions{certs().server, certs().server_key, {}};
  Server server(loop, so);
  server.route("*", echo_behavior());
  ASSERT_TRUE(server.listen());
  std::string error;
  ClientOptions co;
  co.url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/";
  ClientHandlers h;
  h.on_error = [&](int, std::string_view m) { error = m; };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, co, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop, 30s);
  EXPECT_FALSE(error.empty());
}

// What one end saw of each connection, in the order they opened.
struct Opened {
  bool resumed = false;
  std::string echoed;
};

TEST(Wss, ReconnectingClientResumesTheTlsSession) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.tls = TlsServerOptions{certs().server, certs().server_key, {}};
  Server server(loop, so);
  std::vector<bool> server_resumed;
  std::vector<std::uint16_t> client_close_codes;
  ServerBehavior b;
  b.on_open = [&](const ConnectionPtr& c) { server_resumed.push_back(c->tls_session_resumed()); };
  b.on_message = [&](const ConnectionPtr& c, MessageType type, ByteView p) {
    c->send(type, p);
    // The server goes away after the first echo. By then the client has read the TLS 1.3
    // session tickets, which the server sends before any application data.
    if (as_text(p) == "first") c->close(close_code::going_away, "restarting");
  };
  server.route("*", b);
  std::string listen_error;
  ASSERT_TRUE(server.listen(&listen_error)) << listen_error;

  ClientOptions co;
  co.url = "wss://127.0.0.1:" + std::to_string(server.port()) + "/resume";
  co.tls.ca_file = certs().ca;
  co.reconnect.enabled = true;
  co.reconnect.initial_delay = 0ms;  // the backoff is not under test
  co.reconnect.max_attempts = 3;     // a server that keeps failing ends the test instead
  std::vector<Opened> client_seen;
  std::string error;
  unsigned reconnects_scheduled = 0;
  Client* client = nullptr;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr& c) {
    client_seen.push_back({c->tls_session_resumed(), {}});
    c->send_text(client_seen.size() == 1 ? "first" : "second");
  };
  h.on_message = [&](const ConnectionPtr&, MessageType, ByteView p) {
    client_seen.back().echoed = std::string(as_text(p));
    // Client::close, not Connection::close: the client would reconnect after the latter.
    if (client_seen.size() == 2) client->close();
  };
  h.on_close = [&](const ConnectionPtr&, std::uint16_t code, std::string_view) {
    client_close_codes.push_back(code);
  };
  h.on_error = [&](int, std::string_view m) {
    if (error.empty()) error = m;
  };
  h.on_reconnect = [&](unsigned, Duration) { ++reconnects_scheduled; };
  h.on_finished = [&] { loop.stop(); };
  Client c(loop, co, h);
  client = &c;
  std::string connect_error;
  ASSERT_TRUE(c.connect(&connect_error)) << connect_error;
  run_bounded(loop, 30s);

  ASSERT_EQ(client_seen.size(), 2u) << error;
  EXPECT_FALSE(client_seen[0].resumed);
  EXPECT_EQ(client_seen[0].echoed, "first");
  EXPECT_TRUE(client_seen[1].resumed);
  EXPECT_EQ(client_seen[1].echoed, "second");
  ASSERT_EQ(server_resumed.size(), 2u);
  EXPECT_FALSE(server_resumed[0]);
  EXPECT_TRUE(server_resumed[1]);
  ASSERT_EQ(client_close_codes.size(), 2u);
  EXPECT_EQ(client_close_codes[0], close_code::going_away);
  EXPECT_EQ(client_close_codes[1], close_code::normal);
  EXPECT_EQ(reconnects_scheduled, 1u);
  EXPECT_EQ(c.reconnects(), 1u);
}

// Each Client has its own session cache: a new Client to the same server starts afresh. This
// is also how the handshake_rate benchmark forces full handshakes.
TEST(Wss, AnotherClientDoesNotResume) {
  EventLoop loop;
  ServerOptions so = local_server_options();
  so.tls = TlsServerOptions{certs().server, certs().server_key, {}};
  Server server(loop, so);
  std::vector<bool> server_resumed;
  ServerBehavior b = echo_behavior();
  b.on_open = [&](const ConnectionPtr& c) { server_resumed.push_back(c->tls_session_resumed()); };
  server.route("*", b);
  ASSERT_TRUE(server.listen());
  std::vector<Opened> client_seen;
  for (int i = 0; i < 2; ++i) {
    ClientOptions co;
    co.url = "wss://127.0.0.1:" + std::to_string(server.port()) + "/";
    co.tls.ca_file = certs().ca;
    ClientHandlers h;
    h.on_open = [&](const ConnectionPtr& c) {
      client_seen.push_back({c->tls_session_resumed(), {}});
      c->send_text("hello");
    };
    h.on_message = [&](const ConnectionPtr& c, MessageType, ByteView p) {
      client_seen.back().echoed = std::string(as_text(p));
      c->close();
    };
    h.on_finished = [&] { loop.stop(); };
    Client client(loop, co, h);
    ASSERT_TRUE(client.connect());
    run_bounded(loop, 30s);
  }
  ASSERT_EQ(client_seen.size(), 2u);
  ASSERT_EQ(server_resumed.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(client_seen[i].resumed) << "client " << i;
    EXPECT_FALSE(server_resumed[i]) << "client " << i;
    EXPECT_EQ(client_seen[i].echoed, "hello");
  }
}

TEST(Wss, PlainWsNeverReportsResumption) {
  EventLoop loop;
  Server server(loop, local_server_options());
  bool server_resumed = true;
  ServerBehavior b = echo_behavior();
  b.on_open = [&](const ConnectionPtr& c) { server_resumed = c->tls_session_resumed(); };
  server.route("*", b);
  ASSERT_TRUE(server.listen());
  ClientOptions co;
  co.url = test::url_for(server);
  bool opened = false, client_resumed = true;
  ClientHandlers h;
  h.on_open = [&](const ConnectionPtr& c) {
    opened = true;
    client_resumed = c->tls_session_resumed();
    c->close();
  };
  h.on_finished = [&] { loop.stop(); };
  Client client(loop, co, h);
  ASSERT_TRUE(client.connect());
  run_bounded(loop, 30s);
  ASSERT_TRUE(opened);
  EXPECT_FALSE(client_resumed);
  EXPECT_FALSE(server_resumed);
}

}  // namespace
}  // namespace tether
