// wss:// end to end on loopback, with certificates made at test time.
#include <gtest/gtest.h>

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
const auto& certs() { return tls::testing::test_certs(); }

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
  b.on_error = [&](const ConnectionPtr&, int, std::string_view m) { out.server_errors.emplace_back(m); };
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

TEST(Wss, VerifiesHostNamesToo) {
  auto out = run_wss({certs().server, certs().server_key, {}}, {.ca_file = certs().ca}, "localhost");
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
  auto out = run_wss({certs().server, certs().server_key, certs().ca},
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
                     {.ca_file = certs().ca, .cert_file = certs().other_client,
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

}  // namespace
}  // namespace tether
