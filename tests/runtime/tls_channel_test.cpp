// TlsContext and TlsChannel, two channels joined in memory: ciphertext moves between them in
// random pieces (down to one byte), so every record and handshake message arrives split.
#include "runtime/tls_channel.hpp"

#include <openssl/ssl.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/tls_test_certs.hpp"

namespace tether::tls {
namespace {

using testing::test_certs;

std::shared_ptr<TlsContext> client_context(TlsClientOptions options = {}) {
  if (options.ca_file.empty() && options.verify) options.ca_file = test_certs().ca;
  std::string error;
  auto ctx = TlsContext::client(options, error);
  EXPECT_TRUE(ctx) << error;
  return ctx;
}

std::shared_ptr<TlsContext> server_context(TlsServerOptions options = {}) {
  if (options.cert_file.empty()) {
    options.cert_file = test_certs().server;
    options.key_file = test_certs().server_key;
  }
  std::string error;
  auto ctx = TlsContext::server(options, error);
  EXPECT_TRUE(ctx) << error;
  return ctx;
}

std::vector<std::byte> random_bytes(std::size_t n, std::mt19937& rng) {
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

// Joins a client and a server channel. Each step moves one random piece of ciphertext one
// way and drains the receiver's plaintext in random-sized reads.
class Link {
 public:
  Link(TlsChannel& client, TlsChannel& server, std::size_t max_piece = 20000, unsigned seed = 6455)
      : client_(client), server_(server), max_piece_(max_piece), rng_(seed) {}

  std::vector<std::byte> to_client;  // plaintext the client read
  std::vector<std::byte> to_server;  // plaintext the server read

  bool step() {
    bool a = step(client_, server_, to_server);
    bool b = step(server_, client_, to_client);
    return a || b;
  }
  // Until nothing moves. False if it never settles.
  bool pump() {
    for (int i = 0; i < 1000000; ++i)
      if (!step()) return true;
    return false;
  }
  // Moves at most `limit` bytes of the client's ciphertext to the server.
  void deliver_to_server(std::size_t limit) {
    ByteView out = client_.pending_ciphertext();
    std::size_t n = std::min(out.size(), limit);
    server_.feed_ciphertext(out.first(n));
    client_.consume_ciphertext(n);
  }

 private:
  std::size_t piece() {
    switch (rng_() % 4) {
      case 0:
        return 1;
      case 1:
        return 1 + rng_() % std::min<std::size_t>(16, max_piece_);
      case 2:
        return 1 + rng_() % std::min<std::size_t>(1500, max_piece_);
      default:
        return 1 + rng_() % max_piece_;
    }
  }

  bool step(TlsChannel& from, TlsChannel& to, std::vector<std::byte>& received) {
    bool moved = false;
    ByteView out = from.pending_ciphertext();
    if (!out.empty()) {
      std::size_t n = std::min(out.size(), piece());
      to.feed_ciphertext(out.first(n));
      from.consume_ciphertext(n);
      moved = true;
    }
    // Read even without new input: the handshake or a session ticket may be waiting.
    std::byte buf[20000];
    for (;;) {
      std::size_t want = 1 + rng_() % sizeof buf;
      std::size_t n = to.read_plaintext({buf, want});
      if (n == 0) break;
      received.insert(received.end(), buf, buf + n);
      moved = true;
    }
    return moved;
  }

  TlsChannel& client_;
  TlsChannel& server_;
  std::size_t max_piece_;
  std::mt19937 rng_;
};

// A fresh client and server joined by a Link; pump() the link to handshake.
struct Pair {
  Pair(std::shared_ptr<TlsContext> cctx, std::shared_ptr<TlsContext> sctx,
       std::string_view host = "localhost", std::uint16_t port = 443)
      : client(std::move(cctx), Role::client, host, port),
        server(std::move(sctx), Role::server),
        link(client, server) {}
  TlsChannel client;
  TlsChannel server;
  Link link;
};

void expect_connected(Pair& p) {
  ASSERT_TRUE(p.link.pump());
  EXPECT_FALSE(p.client.failed()) << p.client.error();
  EXPECT_FALSE(p.server.failed()) << p.server.error();
  EXPECT_TRUE(p.client.handshake_done());
  EXPECT_TRUE(p.server.handshake_done());
}

TEST(TlsContext, MinimumIsTls12) {
  auto cctx = client_context();
  auto sctx = server_context();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(cctx->native_handle()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(sctx->native_handle()), TLS1_2_VERSION);
  EXPECT_EQ(cctx->role(), Role::client);
  EXPECT_EQ(sctx->role(), Role::server);
  EXPECT_TRUE(cctx->verifies());
  EXPECT_FALSE(sctx->verifies());
}

TEST(TlsContext, MissingFilesAreNamedWithTheReason) {
  std::string error;
  std::string missing = test_certs().dir + "/missing.pem";
  EXPECT_FALSE(TlsContext::server({missing, test_certs().server_key, {}}, error));
  EXPECT_NE(error.find("certificate '" + missing + "'"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;

  EXPECT_FALSE(TlsContext::server({test_certs().server, missing, {}}, error));
  EXPECT_NE(error.find("private key '" + missing + "'"), std::string::npos) << error;

  TlsClientOptions keyless;
  keyless.key_file = test_certs().client_key;
  EXPECT_FALSE(TlsContext::client(keyless, error));
  EXPECT_NE(error.find("without cert_file"), std::string::npos) << error;

  TlsClientOptions client;
  client.ca_file = missing;
  EXPECT_FALSE(TlsContext::client(client, error));
  EXPECT_NE(error.find("CA file '" + missing + "'"), std::string::npos) << error;

  EXPECT_FALSE(TlsContext::server({test_certs().server, test_certs().server_key, missing}, error));
  EXPECT_NE(error.find("client CA file '" + missing + "'"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(TlsContext, KeyThatDoesNotMatchTheCertificateIsRefused) {
  std::string error;
  EXPECT_FALSE(TlsContext::server({test_certs().server, test_certs().client_key, {}}, error));
  EXPECT_NE(error.find("does not match certificate"), std::string::npos) << error;
  EXPECT_NE(error.find(test_certs().client_key), std::string::npos) << error;

  EXPECT_FALSE(TlsContext::server({}, error));
  EXPECT_NE(error.find("cert_file"), std::string::npos) << error;
}

TEST(TlsContext, FilesSwappedAreReportedAsTheWrongKindOfPem) {
  std::string error;
  EXPECT_FALSE(TlsContext::server({test_certs().server_key, test_certs().server, {}}, error));
  EXPECT_EQ(error, "TLS: cannot load certificate '" + test_certs().server_key +
                       "': no PEM block of the expected kind (no start line)");
  EXPECT_FALSE(TlsContext::server({test_certs().server, test_certs().server, {}}, error));
  EXPECT_NE(error.find("cannot load private key '" + test_certs().server + "': no PEM block"),
            std::string::npos)
      << error;
}

TEST(TlsContext, KeyMayLiveInTheCertificateFile) {
  std::string both = test_certs().dir + "/server_and_key.pem";
  {
    std::ifstream cert(test_certs().server), key(test_certs().server_key);
    std::ofstream out(both);
    out << cert.rdbuf() << key.rdbuf();
  }
  std::string error;
  auto sctx = TlsContext::server({both, {}, {}}, error);
  ASSERT_TRUE(sctx) << error;
  Pair p(client_context(), sctx);
  expect_connected(p);
}

TEST(TlsChannel, ClientHelloIsPendingRightAway) {
  TlsChannel client(client_context(), Role::client, "localhost", 443);
  EXPECT_FALSE(client.failed()) << client.error();
  EXPECT_FALSE(client.pending_ciphertext().empty());
  EXPECT_FALSE(client.handshake_done());
  EXPECT_EQ(client.write_plaintext(as_bytes("too early")), 0u);
}

TEST(TlsChannel, HandshakeOneByteAtATime) {
  auto cctx = client_context();
  auto sctx = server_context();
  TlsChannel client(cctx, Role::client, "localhost", 443);
  TlsChannel server(sctx, Role::server);
  Link link(client, server, /*max_piece=*/1);
  ASSERT_TRUE(link.pump());
  EXPECT_TRUE(client.handshake_done()) << client.error();
  EXPECT_TRUE(server.handshake_done()) << server.error();
  EXPECT_EQ(client.protocol(), "TLSv1.3");
  EXPECT_EQ(client.alpn(), "http/1.1");
  EXPECT_EQ(server.alpn(), "http/1.1");
  EXPECT_EQ(client.peer_name(), "localhost");
  EXPECT_EQ(server.sni(), "localhost");
}

TEST(TlsChannel, DataBothWaysInSmallPieces) {
  Pair p(client_context(), server_context());
  expect_connected(p);
  std::string up = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n";
  std::string down = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  EXPECT_EQ(p.client.write_plaintext(as_bytes(up)), up.size());
  EXPECT_EQ(p.server.write_plaintext(as_bytes(down)), down.size());
  ASSERT_TRUE(p.link.pump());
  EXPECT_EQ(as_text(p.link.to_server), up);
  EXPECT_EQ(as_text(p.link.to_client), down);
}

TEST(TlsChannel, OneMebibyteEachWayThroughPartialWrites) {
  Pair p(client_context(), server_context());
  expect_connected(p);
  std::mt19937 rng(1015);
  const std::size_t total = 1024 * 1024;
  std::vector<std::byte> up = random_bytes(total, rng);
  std::vector<std::byte> down = random_bytes(total, rng);
  std::size_t up_sent = 0, down_sent = 0;
  bool saw_partial = false;
  while (up_sent < total || down_sent < total) {
    auto offer = [&](TlsChannel& ch, const std::vector<std::byte>& data, std::size_t& sent) {
      if (sent == total) return;
      std::size_t want = std::min(total - sent, std::size_t{1} + rng() % 100000);
      std::size_t n = ch.write_plaintext(ByteView(data).subspan(sent, want));
      if (n < want) saw_partial = true;
      sent += n;
    };
    offer(p.client, up, up_sent);
    offer(p.server, down, down_sent);
    for (int i = 0; i < 8; ++i) p.link.step();
    ASSERT_FALSE(p.client.failed()) << p.client.error();
    ASSERT_FALSE(p.server.failed()) << p.server.error();
  }
  ASSERT_TRUE(p.link.pump());
  EXPECT_TRUE(saw_partial);
  EXPECT_TRUE(p.link.to_server == up);
  EXPECT_TRUE(p.link.to_client == down);
}

TEST(TlsChannel, CiphertextBacklogIsBounded) {
  Pair p(client_context(), server_context());
  expect_connected(p);
  std::mt19937 rng(7);
  std::vector<std::byte> data = random_bytes(1024 * 1024, rng);
  std::size_t sent = p.client.write_plaintext(data);
  EXPECT_GT(sent, 0u);
  EXPECT_LE(sent, TlsChannel::max_ciphertext_backlog);
  // The peer is not draining: nothing more is taken, and the backlog stays near the bound.
  EXPECT_EQ(p.client.write_plaintext(ByteView(data).subspan(sent)), 0u);
  std::size_t backlog = p.client.pending_ciphertext().size();
  EXPECT_GE(backlog, sent);
  EXPECT_LE(backlog, TlsChannel::max_ciphertext_backlog + 1024);
  EXPECT_LE(p.client.memory_used(), 3 * TlsChannel::max_ciphertext_backlog);

  // A partial drain makes room for about as much again.
  p.link.deliver_to_server(20000);
  std::size_t more = p.client.write_plaintext(ByteView(data).subspan(sent));
  EXPECT_GT(more, 15000u);
  EXPECT_LT(more, 20000u);
  sent += more;
  EXPECT_LE(p.client.pending_ciphertext().size(), TlsChannel::max_ciphertext_backlog + 1024);

  while (sent < data.size()) {
    sent += p.client.write_plaintext(ByteView(data).subspan(sent));
    p.link.step();
  }
  ASSERT_TRUE(p.link.pump());
  EXPECT_TRUE(p.link.to_server == data);
}

// A 60 KiB burst from the client, delivered to the server in one piece and read there.
void burst_client_to_server(Pair& p, std::mt19937& rng) {
  std::vector<std::byte> data = random_bytes(60 * 1024, rng);
  ASSERT_EQ(p.client.write_plaintext(data), data.size());
  p.link.deliver_to_server(SIZE_MAX);
  std::vector<std::byte> got(data.size());
  std::size_t n = 0;
  while (std::size_t m = p.server.read_plaintext(MutableByteView(got).subspan(n))) n += m;
  ASSERT_EQ(n, data.size());
  EXPECT_TRUE(got == data);
}

TEST(TlsChannel, BuffersGrownByABurstAreFreedAfterAnIntervalThatDidNotNeedThem) {
  Pair p(client_context(), server_context());
  expect_connected(p);
  p.client.release_burst_buffers();  // the handshake's flights are not the point here
  p.server.release_burst_buffers();
  p.client.release_burst_buffers();
  p.server.release_burst_buffers();
  const std::size_t client_idle = p.client.memory_used();
  const std::size_t server_idle = p.server.memory_used();
  std::mt19937 rng(99);
  burst_client_to_server(p, rng);
  EXPECT_GE(p.client.memory_used(), client_idle + 60 * 1024);  // out: the burst's ciphertext
  EXPECT_GE(p.server.memory_used(), server_idle + 60 * 1024);  // in: all of it at once
  EXPECT_TRUE(p.client.holds_burst_buffers());
  EXPECT_TRUE(p.server.holds_burst_buffers());
  // The interval that had the burst needed the buffers: kept.
  EXPECT_EQ(p.client.release_burst_buffers(), 0u);
  EXPECT_EQ(p.server.release_burst_buffers(), 0u);
  // The next one did not: freed, back to the idle footprint.
  EXPECT_GE(p.client.release_burst_buffers(), 60 * 1024u);
  EXPECT_GE(p.server.release_burst_buffers(), 60 * 1024u);
  EXPECT_FALSE(p.client.holds_burst_buffers());
  EXPECT_FALSE(p.server.holds_burst_buffers());
  EXPECT_LE(p.client.memory_used(), client_idle);
  EXPECT_LE(p.server.memory_used(), server_idle);
  // The connection works as before.
  burst_client_to_server(p, rng);
}

TEST(TlsChannel, SteadyBurstsKeepTheirBuffersAcrossReleaseIntervals) {
  Pair p(client_context(), server_context());
  expect_connected(p);
  std::mt19937 rng(98);
  for (int i = 0; i < 5; ++i) {
    burst_client_to_server(p, rng);
    p.client.release_burst_buffers();
    p.server.release_burst_buffers();
  }
  // Each interval needed them: no free and malloc (or unmap and map) per burst.
  for (int i = 0; i < 3; ++i) {
    burst_client_to_server(p, rng);
    EXPECT_EQ(p.client.release_burst_buffers(), 0u);
    EXPECT_EQ(p.server.release_burst_buffers(), 0u);
  }
}

void expect_client_refuses(TlsClientOptions options, TlsServerOptions server_options,
                           std::string_view host, const std::string& message) {
  Pair p(client_context(std::move(options)), server_context(std::move(server_options)), host);
  ASSERT_TRUE(p.link.pump());
  EXPECT_TRUE(p.client.failed());
  EXPECT_FALSE(p.client.handshake_done());
  EXPECT_EQ(p.client.error(), message);
  // The client's alert reached the server, which fails too rather than waiting.
  EXPECT_TRUE(p.server.failed());
  EXPECT_NE(p.server.error().find("alert"), std::string::npos) << p.server.error();
  EXPECT_EQ(p.client.write_plaintext(as_bytes("x")), 0u);
  std::byte buf[16];
  EXPECT_EQ(p.client.read_plaintext(buf), 0u);
}

TEST(TlsChannel, UnknownCaIsRefused) {
  TlsClientOptions options;
  options.ca_file = test_certs().other_ca;
  expect_client_refuses(
      options, {}, "localhost",
      "TLS: certificate verify failed: unable to get local issuer certificate (unknown CA)");
}

TEST(TlsChannel, SystemTrustStoreDoesNotKnowTheTestCa) {
  TlsClientOptions options;
  options.ca_file.clear();
  std::string error;
  auto ctx = TlsContext::client(options, error);
  ASSERT_TRUE(ctx) << error;
  Pair p(ctx, server_context());
  ASSERT_TRUE(p.link.pump());
  EXPECT_TRUE(p.client.failed());
  EXPECT_NE(p.client.error().find("(unknown CA)"), std::string::npos) << p.client.error();
}

TEST(TlsChannel, WrongHostIsRefused) {
  expect_client_refuses({}, {}, "wrong.example",
                        "TLS: certificate verify failed: hostname mismatch (certificate is not "
                        "valid for 'wrong.example')");
}

TEST(TlsChannel, ServerNameOptionReplacesTheHost) {
  TlsClientOptions options;
  options.server_name = "wrong.example";
  expect_client_refuses(options, {}, "localhost",
                        "TLS: certificate verify failed: hostname mismatch (certificate is not "
                        "valid for 'wrong.example')");

  options.server_name = "localhost";
  Pair p(client_context(options), server_context(), "127.0.0.2");
  expect_connected(p);
  EXPECT_EQ(p.client.peer_name(), "localhost");
}

TEST(TlsChannel, ExpiredCertificateIsRefused) {
  TlsServerOptions server;
  server.cert_file = test_certs().expired;
  server.key_file = test_certs().server_key;
  expect_client_refuses({}, server, "localhost",
                        "TLS: certificate verify failed: certificate has expired");
}

TEST(TlsChannel, IpAddressSanVerifies) {
  Pair p(client_context(), server_context(), "127.0.0.1");
  expect_connected(p);
  EXPECT_EQ(p.client.peer_name(), "127.0.0.1");
  // An IP literal is not a host name: no SNI goes out (RFC 6066 §3).
  EXPECT_EQ(p.server.sni(), "");

  expect_client_refuses({}, {}, "127.0.0.2",
                        "TLS: certificate verify failed: IP address mismatch (certificate is "
                        "not valid for '127.0.0.2')");
  expect_client_refuses({}, {}, "[::1]",
                        "TLS: certificate verify failed: IP address mismatch (certificate is "
                        "not valid for '::1')");
}

TEST(TlsChannel, VerifyOffConnectsToAnUnknownCa) {
  TlsClientOptions options;
  options.verify = false;
  options.ca_file = test_certs().other_ca;
  auto ctx = client_context(options);
  EXPECT_FALSE(ctx->verifies());
  TlsServerOptions expired;
  expired.cert_file = test_certs().expired;
  expired.key_file = test_certs().server_key;
  Pair p(ctx, server_context(expired), "wrong.example");
  expect_connected(p);
}

TEST(TlsChannel, MutualTlsAcceptsAClientCertificateFromTheCa) {
  TlsClientOptions options;
  options.cert_file = test_certs().client;
  options.key_file = test_certs().client_key;
  TlsServerOptions server;
  server.client_ca_file = test_certs().ca;
  auto sctx = server_context(server);
  EXPECT_TRUE(sctx->verifies());
  Pair p(client_context(options), sctx);
  expect_connected(p);
  EXPECT_EQ(p.client.write_plaintext(as_bytes("hello")), 5u);
  ASSERT_TRUE(p.link.pump());
  EXPECT_EQ(as_text(p.link.to_server), "hello");
}

TEST(TlsChannel, MutualTlsRefusesAClientWithoutCertificate) {
  TlsServerOptions server;
  server.client_ca_file = test_certs().ca;
  Pair p(client_context(), server_context(server));
  ASSERT_TRUE(p.link.pump());
  EXPECT_TRUE(p.server.failed());
  EXPECT_NE(p.server.error().find("peer did not return a certificate (a client certificate is "
                                  "required)"),
            std::string::npos)
      << p.server.error();
  // TLS 1.3 clients finish before the server has judged them; the alert fails them next read.
  EXPECT_TRUE(p.client.failed());
  EXPECT_NE(p.client.error().find("certificate required"), std::string::npos) << p.client.error();
}

TEST(TlsChannel, MutualTlsRefusesAClientCertificateFromAnotherCa) {
  TlsClientOptions options;
  options.cert_file = test_certs().other_client;
  options.key_file = test_certs().other_client_key;
  TlsServerOptions server;
  server.client_ca_file = test_certs().ca;
  Pair p(client_context(options), server_context(server));
  ASSERT_TRUE(p.link.pump());
  EXPECT_TRUE(p.server.failed());
  EXPECT_EQ(p.server.error(),
            "TLS: certificate verify failed: unable to get local issuer certificate (unknown CA)");
  EXPECT_TRUE(p.client.failed());
}

TEST(TlsChannel, CloseNotifyReachesThePeer) {
  Pair p(client_context(), server_context());
  expect_connected(p);
  EXPECT_EQ(p.client.write_plaintext(as_bytes("last words")), 10u);
  p.client.close();
  EXPECT_TRUE(p.client.close_sent());
  EXPECT_EQ(p.client.write_plaintext(as_bytes("more")), 0u);
  ASSERT_TRUE(p.link.pump());
  EXPECT_EQ(as_text(p.link.to_server), "last words");
  EXPECT_TRUE(p.server.peer_closed());
  EXPECT_FALSE(p.server.failed()) << p.server.error();
  EXPECT_FALSE(p.client.peer_closed());

  // The server answers with its own close_notify.
  EXPECT_EQ(p.server.write_plaintext(as_bytes("bye")), 3u);
  p.server.close();
  ASSERT_TRUE(p.link.pump());
  EXPECT_EQ(as_text(p.link.to_client), "bye");
  EXPECT_TRUE(p.client.peer_closed());
  EXPECT_FALSE(p.client.failed()) << p.client.error();
}

TEST(TlsChannel, CloseBeforeTheHandshakeOnlyRefusesWrites) {
  TlsChannel client(client_context(), Role::client, "localhost", 443);
  std::size_t hello = client.pending_ciphertext().size();
  client.close();
  EXPECT_TRUE(client.close_sent());
  EXPECT_FALSE(client.failed());
  EXPECT_EQ(client.pending_ciphertext().size(), hello);
}

void expect_resumption(const std::shared_ptr<TlsContext>& cctx,
                       const std::shared_ptr<TlsContext>& sctx, std::string_view version) {
  {
    Pair first(cctx, sctx);
    expect_connected(first);
    EXPECT_EQ(first.client.protocol(), version);
    EXPECT_FALSE(first.client.session_reused());
  }
  EXPECT_EQ(cctx->cached_sessions(), 1u);
  for (int i = 0; i < 2; ++i) {
    Pair again(cctx, sctx);
    expect_connected(again);
    EXPECT_EQ(again.client.protocol(), version);
    EXPECT_TRUE(again.client.session_reused()) << "connection " << i + 2;
    EXPECT_TRUE(again.server.session_reused()) << "connection " << i + 2;
    EXPECT_EQ(again.client.alpn(), "http/1.1");
  }
  // Another port is another server as far as the cache knows.
  Pair other(cctx, sctx, "localhost", 8443);
  expect_connected(other);
  EXPECT_FALSE(other.client.session_reused());
  EXPECT_EQ(cctx->cached_sessions(), 2u);
}

TEST(TlsChannel, SessionResumptionTls13) {
  expect_resumption(client_context(), server_context(), "TLSv1.3");
}

TEST(TlsChannel, SessionResumptionTls12) {
  auto cctx = client_context();
  SSL_CTX_set_max_proto_version(cctx->native_handle(), TLS1_2_VERSION);
  expect_resumption(cctx, server_context(), "TLSv1.2");
}

TEST(TlsChannel, SessionResumptionTls12WithMutualTls) {
  TlsClientOptions options;
  options.cert_file = test_certs().client;
  options.key_file = test_certs().client_key;
  auto cctx = client_context(options);
  SSL_CTX_set_max_proto_version(cctx->native_handle(), TLS1_2_VERSION);
  TlsServerOptions server;
  server.client_ca_file = test_certs().ca;
  expect_resumption(cctx, server_context(server), "TLSv1.2");
}

TEST(TlsChannel, NoResumptionUnderAnotherServerName) {
  auto cctx = client_context();
  auto sctx = server_context();
  {
    Pair first(cctx, sctx, "localhost");
    expect_connected(first);
  }
  Pair by_ip(cctx, sctx, "127.0.0.1");
  expect_connected(by_ip);
  EXPECT_FALSE(by_ip.client.session_reused());
}

TEST(TlsChannel, ServerAcceptsAClientWithoutAlpn) {
  auto cctx = client_context();
  // An empty list turns ALPN off for this context.
  ASSERT_EQ(SSL_CTX_set_alpn_protos(cctx->native_handle(), nullptr, 0), 0);
  Pair p(cctx, server_context());
  expect_connected(p);
  EXPECT_EQ(p.client.alpn(), "");
  EXPECT_EQ(p.server.alpn(), "");
}

TEST(TlsChannel, ServerRefusesAClientOfferingOnlyOtherProtocols) {
  auto cctx = client_context();
  static const unsigned char h2[] = {2, 'h', '2'};
  ASSERT_EQ(SSL_CTX_set_alpn_protos(cctx->native_handle(), h2, sizeof h2), 0);
  Pair p(cctx, server_context());
  ASSERT_TRUE(p.link.pump());
  EXPECT_TRUE(p.server.failed());
  EXPECT_NE(p.server.error().find("no application protocol"), std::string::npos)
      << p.server.error();
  EXPECT_TRUE(p.client.failed());
}

TEST(TlsChannel, PlainHttpToTheServerFailsClearly) {
  TlsChannel server(server_context(), Role::server);
  server.feed_ciphertext(as_bytes("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  EXPECT_TRUE(server.failed());
  EXPECT_NE(server.error().find("http request (plain HTTP sent to a TLS port)"), std::string::npos)
      << server.error();
  EXPECT_EQ(server.error().find('\n'), std::string::npos);
  // Later input is ignored rather than parsed.
  server.feed_ciphertext(as_bytes("more"));
  std::byte buf[16];
  EXPECT_EQ(server.read_plaintext(buf), 0u);
}

TEST(TlsChannel, RoleMustMatchTheContext) {
  TlsChannel wrong(server_context(), Role::client, "localhost", 443);
  EXPECT_TRUE(wrong.failed());
  EXPECT_EQ(wrong.error(), "TLS: client channel on a server context");
  EXPECT_TRUE(wrong.pending_ciphertext().empty());

  TlsChannel nameless(client_context(), Role::client, "", 443);
  EXPECT_TRUE(nameless.failed());
  EXPECT_EQ(nameless.error(), "TLS: no server name to connect to");
}

TEST(TlsChannel, ErrorsOfOneChannelDoNotLeakIntoAnother) {
  auto cctx = client_context();
  auto sctx = server_context();
  TlsChannel broken(sctx, Role::server);
  Pair p(cctx, sctx);
  // Interleave a failing channel with a healthy handshake on the same thread.
  broken.feed_ciphertext(as_bytes("\x16\x03\x01\xff\xff garbage"));
  EXPECT_TRUE(broken.failed());
  expect_connected(p);
}

TEST(TlsChannel, ContextsAreSharedAcrossThreads) {
  auto cctx = client_context();
  auto sctx = server_context();
  std::atomic<int> connected{0}, resumed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        TlsChannel client(cctx, Role::client, "localhost", static_cast<std::uint16_t>(400 + t % 2));
        TlsChannel server(sctx, Role::server);
        Link link(client, server, 20000, static_cast<unsigned>(t * 100 + i));
        if (link.pump() && client.handshake_done() && server.handshake_done() && !client.failed() &&
            !server.failed())
          ++connected;
        if (client.session_reused()) ++resumed;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(connected.load(), 24);
  EXPECT_GT(resumed.load(), 0);
  EXPECT_LE(cctx->cached_sessions(), 2u);
}

}  // namespace
}  // namespace tether::tls
