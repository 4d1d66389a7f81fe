// End-to-end tests of the `tether` command, run as a user runs it: subprocesses on loopback
// with ephemeral ports, synchronised on their output and exit, never on sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <thread>

#include "cli/cli_support.hpp"
#include "runtime/tls_test_certs.hpp"

namespace tether::cli_test {
namespace {

// ---- serve ----------------------------------------------------------------------------

TEST(CliServe, PrintsListeningLineWithTheChosenPortAndExitsZeroOnSigterm) {
  Served s = serve();
  ASSERT_NE(s.port, 0);
  EXPECT_EQ(s.child->lines(Stream::err).size(), 1u);
  s.child->signal(SIGTERM);
  EXPECT_EQ(s.child->wait_exit(), 0);
  EXPECT_EQ(s.child->err(), "listening on ws://127.0.0.1:" + std::to_string(s.port) + "\n");
}

TEST(CliServe, PortInUseIsOneErrorLineAndExitOne) {
  RawSocket taken(/*listening=*/true);
  auto child = run_tether({"serve", "--port", std::to_string(taken.port)});
  EXPECT_EQ(child->wait_exit(), 1);
  EXPECT_EQ(count_lines(child->err()), 1u) << child->err();
  EXPECT_NE(child->err().find("error:"), std::string::npos) << child->err();
  EXPECT_NE(child->err().find(std::to_string(taken.port)), std::string::npos) << child->err();
}

// A server stopped by SIGTERM closes its clients with 1001, which they take as a clean end.
TEST(CliServe, SigtermClosesClientsWith1001AndBothExitZero) {
  Served s = serve();
  auto client = run_tether({"connect", s.url()});
  client->write_stdin("are you there\n");
  ASSERT_TRUE(client->wait_line_containing(Stream::out, "are you there")) << client->err();
  s.child->signal(SIGTERM);
  EXPECT_EQ(s.child->wait_exit(), 0) << s.child->err();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->err(), "");
}

// Past --max-connections, the upgrade is refused with 503 before the WebSocket handshake; the
// open connection is not affected.
TEST(CliServe, MaxConnectionsRefusesTheNextUpgradeWith503) {
  Served s = serve({"--max-connections", "1"});
  auto first = run_tether({"connect", s.url()});
  first->write_stdin("one\n");
  ASSERT_TRUE(first->wait_line_containing(Stream::out, "one")) << first->err();
  auto second = run_tether({"connect", s.url()});
  EXPECT_EQ(second->wait_exit(), 2);
  EXPECT_EQ(count_lines(second->err()), 1u) << second->err();
  EXPECT_NE(second->err().find("503"), std::string::npos) << second->err();
  first->write_stdin("still here\n");
  ASSERT_TRUE(first->wait_line_containing(Stream::out, "still here")) << first->err();
  first->close_stdin();
  EXPECT_EQ(first->wait_exit(), 0) << first->err();
  s.child->signal(SIGTERM);
  EXPECT_EQ(s.child->wait_exit(), 0);
}

// ---- connect --------------------------------------------------------------------------

TEST(CliConnect, SendsStdinLinesAndPrintsTheEchoesInOrderThenExitsZeroAtEof) {
  Served s = serve();
  auto client = run_tether({"connect", s.url()});
  client->write_stdin("first\n\nthird line\nlast without newline");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "first\n\nthird line\nlast without newline\n");
  EXPECT_EQ(client->err(), "");
}

// Echoes of large lines come back fragmented, and a barrier PONG can overtake their frames:
// every echo must still be printed before the close.
TEST(CliConnect, PrintsEveryEchoOfLargeLinesBeforeClosing) {
  Served s = serve();
  auto client = run_tether({"connect", s.url()});
  std::string input, expected;
  for (int i = 0; i < 6; ++i) {
    std::string line = std::string(static_cast<std::size_t>(100000 + i * 70000), char('a' + i));
    input += line + "\n" + "small " + std::to_string(i) + "\n";
  }
  expected = input;
  std::thread writer([&] {
    client->write_stdin(input);  // more than a pipe holds: written while the child reads
    client->close_stdin();
  });
  auto code = client->wait_exit();
  writer.join();
  EXPECT_EQ(code, 0) << client->err();
  EXPECT_TRUE(client->out() == expected)
      << "got " << client->out().size() << " bytes, expected " << expected.size() << "\n"
      << client->err();
}

TEST(CliConnect, EmptyStdinFromDevNullClosesCleanly) {
  Served s = serve();
  auto client = run_tether({"connect", s.url()}, /*pipe_stdin=*/false);
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "");
}

TEST(CliConnect, PrintsBinaryMessagesAsLowercaseHex) {
  ServerBehavior b;
  b.on_open = [](const ConnectionPtr& c) {
    const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0xab, 0xff};
    c->send_binary(ByteView(reinterpret_cast<const std::byte*>(bytes), sizeof bytes));
    c->send_text("after binary");
  };
  InProcessServer server(std::move(b));
  auto client = run_tether({"connect", server.url()});
  ASSERT_TRUE(client->wait_line_containing(Stream::out, "after binary")) << client->err();
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "00017fabff\nafter binary\n");
}

TEST(CliConnect, SendsTheRequestHeadersGiven) {
  ServerBehavior b;
  auto seen = std::make_shared<std::string>();
  b.on_upgrade = [seen](const HttpRequestHead& request, HandshakeDecision&) {
    if (const std::string* v = request.headers.find("X-Token")) *seen = *v;
  };
  b.on_open = [seen](const ConnectionPtr& c) { c->send_text("token=" + *seen); };
  InProcessServer server(std::move(b));
  auto client = run_tether({"connect", server.url(), "--header", "X-Token:  s3cret "});
  ASSERT_TRUE(client->wait_line_containing(Stream::out, "token=")) << client->err();
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "token=s3cret\n");
}

TEST(CliConnect, ServerCloseWithAnotherCodeExitsOneAndSaysWhy) {
  ServerBehavior b;
  b.on_open = [](const ConnectionPtr& c) { c->close(4000, "go away"); };
  InProcessServer server(std::move(b));
  auto client = run_tether({"connect", server.url()});
  EXPECT_EQ(client->wait_exit(), 1);
  EXPECT_EQ(client->err(), "closed by server: 4000 go away\n");
}

TEST(CliConnect, MessageOverTheServersLimitEndsWith1009AndExitOne) {
  Served s = serve({"--max-message", "16"});
  auto client = run_tether({"connect", s.url()});
  client->write_stdin("short\n" + std::string(40, 'x') + "\n");
  EXPECT_EQ(client->wait_exit(), 1);
  EXPECT_EQ(client->out(), "short\n");
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_EQ(client->err().rfind("closed by server: 1009", 0), 0u) << client->err();
}

TEST(CliConnect, SigintClosesNormallyAndExitsZero) {
  Served s = serve();
  auto client = run_tether({"connect", s.url()});
  client->write_stdin("hello\n");
  ASSERT_TRUE(client->wait_line_containing(Stream::out, "hello")) << client->err();
  client->signal(SIGINT);
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->err(), "");
}

// ---- connection and handshake failures: exit 2 and one line ---------------------------

TEST(CliConnect, RefusedConnectionExitsTwoWithOneLineNamingTheAddress) {
  RawSocket bound(/*listening=*/false);
  auto client = run_tether({"connect", "ws://127.0.0.1:" + std::to_string(bound.port) + "/"});
  EXPECT_EQ(client->wait_exit(), 2);
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_NE(client->err().find("127.0.0.1:" + std::to_string(bound.port)), std::string::npos)
      << client->err();
  EXPECT_NE(client->err().find("refused"), std::string::npos) << client->err();
}

TEST(CliConnect, HttpRefusalExitsTwoAndShowsTheStatus) {
  RawSocket listener(/*listening=*/true);
  auto client = run_tether({"connect", "ws://127.0.0.1:" + std::to_string(listener.port) + "/"});
  const auto deadline = Clock::now() + hang_limit;
  ASSERT_TRUE(wait_readable(listener.fd, deadline));
  int conn = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos && wait_readable(conn, deadline)) {
    char buf[4096];
    ssize_t n = ::read(conn, buf, sizeof buf);
    if (n <= 0) break;
    request.append(buf, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(request.rfind("GET / HTTP/1.1\r\n", 0), 0u) << request;
  const std::string response =
      "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
      "Connection: close\r\n\r\nno access\n";
  ASSERT_EQ(::write(conn, response.data(), response.size()), static_cast<ssize_t>(response.size()));
  ::close(conn);
  EXPECT_EQ(client->wait_exit(), 2);
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_NE(client->err().find("403"), std::string::npos) << client->err();
}

// The kernel completes the TCP handshake for a listening socket nobody accepts from, so the
// WebSocket handshake is what times out.
TEST(CliConnect, HandshakeTimeoutExitsTwoWithOneLine) {
  RawSocket listener(/*listening=*/true);
  auto client = run_tether({"connect", "ws://127.0.0.1:" + std::to_string(listener.port) + "/",
                            "--connect-timeout", "200ms"});
  EXPECT_EQ(client->wait_exit(), 2);
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_NE(client->err().find("timed out"), std::string::npos) << client->err();
}

// Where there is no resolver at all the lookup may time out instead: exit 2 and one line either
// way.
TEST(CliConnect, UnknownHostExitsTwoWithOneLine) {
  auto client = run_tether({"connect", "ws://no-such-host.invalid/", "--connect-timeout", "3s"});
  EXPECT_EQ(client->wait_exit(), 2);
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_EQ(client->err().rfind("error: ", 0), 0u) << client->err();
  EXPECT_NE(client->err().find("no-such-host.invalid"), std::string::npos) << client->err();
}

TEST(CliConnect, SubprotocolTheServerLacksExitsTwo) {
  Served s = serve();
  auto client = run_tether({"connect", s.url(), "--subprotocol", "x"});
  EXPECT_EQ(client->wait_exit(), 2);
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_NE(client->err().find("subprotocol"), std::string::npos) << client->err();
}

TEST(CliConnect, SubprotocolTheServerSpeaksWorks) {
  Served s = serve({"--subprotocol", "other", "--subprotocol", "chat"});
  auto client = run_tether({"connect", s.url(), "--subprotocol", "chat"});
  client->write_stdin("in chat\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "in chat\n");
}

// ---- trace ----------------------------------------------------------------------------

TEST(CliTrace, KeepalivePingAndPongAppearWithTheirHeaders) {
  Served s = serve();
  auto client = run_tether({"connect", s.url(), "--trace", "--ping-interval", "100ms"});
  static const std::regex ping(R"(^\d+\.\d{3} \d+ -> PING fin=1 rsv1=0 masked=1 len=0$)");
  static const std::regex pong(R"(^\d+\.\d{3} \d+ <- PONG fin=1 rsv1=0 masked=0 len=0$)");
  EXPECT_TRUE(client->wait_line(Stream::err, [](std::string_view l) {
    return std::regex_match(l.begin(), l.end(), ping);
  })) << client->err();
  EXPECT_TRUE(client->wait_line(Stream::err, [](std::string_view l) {
    return std::regex_match(l.begin(), l.end(), pong);
  })) << client->err();
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
}

TEST(CliTrace, DataFramesShowLengthAndEscapedPayloadOnBothSides) {
  Served s = serve({"--trace"});
  auto client = run_tether({"connect", s.url(), "--trace"});
  client->write_stdin("tab\there \\ " + std::string(40, 'z') + "\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  // The first 32 bytes: 11 bytes, then 21 of the z's.
  const std::string shown = R"(tab\x09here \x5c )" + std::string(21, 'z');
  static const std::regex out(R"(^\d+\.\d{3} \d+ -> TEXT fin=1 rsv1=0 masked=1 len=51 (.*)$)");
  auto line = client->wait_line(
      Stream::err, [](std::string_view l) { return std::regex_match(l.begin(), l.end(), out); });
  ASSERT_TRUE(line) << client->err();
  std::smatch m;
  std::regex_match(*line, m, out);
  EXPECT_EQ(m[1], shown);
  EXPECT_TRUE(client->wait_line_containing(Stream::err, "-> CLOSE fin=1 rsv1=0 masked=1 len=2"))
      << client->err();
  // The server sees the same frame arrive masked, and sends its echo unmasked.
  EXPECT_TRUE(s.child->wait_line_containing(Stream::err, "<- TEXT fin=1 rsv1=0 masked=1 len=51"))
      << s.child->err();
  EXPECT_TRUE(s.child->wait_line_containing(Stream::err, "-> TEXT fin=1 rsv1=0 masked=0 len=51"))
      << s.child->err();
}

// ---- trace to a file -------------------------------------------------------------------

TEST(CliTrace, TraceFileGetsTheLinesAndStderrStaysQuiet) {
  TempDir dir;
  Served s = serve({"--trace-file", dir.file("server.trace")});
  auto client = run_tether({"connect", s.url(), "--trace-file", dir.file("client.trace")});
  client->write_stdin("to the file\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->err(), "");
  EXPECT_EQ(client->out(), "to the file\n");
  static const std::regex out_text(
      R"(^\d+\.\d{3} \d+ -> TEXT fin=1 rsv1=0 masked=1 len=11 to the file$)");
  static const std::regex in_text(
      R"(^\d+\.\d{3} \d+ <- TEXT fin=1 rsv1=0 masked=0 len=11 to the file$)");
  const std::string client_trace = read_file(dir.file("client.trace"));
  EXPECT_EQ(matching_lines(client_trace, out_text).size(), 1u) << client_trace;
  EXPECT_EQ(matching_lines(client_trace, in_text).size(), 1u) << client_trace;
  // The server's file is written as frames pass, line by line, while it still runs.
  s.child->signal(SIGTERM);
  EXPECT_EQ(s.child->wait_exit(), 0) << s.child->err();
  const std::string server_trace = read_file(dir.file("server.trace"));
  EXPECT_NE(server_trace.find("<- TEXT fin=1 rsv1=0 masked=1 len=11 to the file"),
            std::string::npos)
      << server_trace;
  EXPECT_EQ(s.child->lines(Stream::err).size(), 1u) << s.child->err();  // only "listening"
}

TEST(CliTrace, UnwritableTraceFileIsOneErrorLineAndExitOne) {
  auto child = run_tether({"serve", "--port", "0", "--trace-file", "/nonexistent/dir/t.log"});
  EXPECT_EQ(child->wait_exit(), 1);
  EXPECT_EQ(count_lines(child->err()), 1u) << child->err();
  EXPECT_NE(child->err().find("/nonexistent/dir/t.log"), std::string::npos) << child->err();
}

// ---- wss:// ---------------------------------------------------------------------------

Served serve_tls(std::vector<std::string> extra = {}) {
  const auto& certs = tls::testing::test_certs();
  std::vector<std::string> args{"--tls-cert", certs.server, "--tls-key", certs.server_key};
  args.insert(args.end(), extra.begin(), extra.end());
  return serve(args);
}

TEST(CliTls, ServeWithACertificateListensOnWssAndConnectWithTheCaEchoes) {
  Served s = serve_tls();
  ASSERT_TRUE(s.secure) << s.child->err();
  auto client = run_tether({"connect", s.url(), "--ca", tls::testing::test_certs().ca});
  client->write_stdin("over tls\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "over tls\n");
  EXPECT_EQ(client->err(), "");
}

TEST(CliTls, UnknownCaExitsTwoWithOneVerifyFailedLine) {
  Served s = serve_tls();
  auto client = run_tether({"connect", s.url()});
  EXPECT_EQ(client->wait_exit(), 2);
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_EQ(client->err().rfind("error: ", 0), 0u) << client->err();
  EXPECT_NE(client->err().find("certificate verify failed"), std::string::npos) << client->err();
  EXPECT_EQ(client->out(), "");
}

// A certificate that fails verification fails again on every attempt: no retrying for ever.
TEST(CliTls, UnknownCaIsNotRetriedWithReconnect) {
  Served s = serve_tls();
  auto client = run_tether({"connect", s.url(), "--reconnect"});
  EXPECT_EQ(client->wait_exit(), 2);
  EXPECT_EQ(count_lines(client->err()), 1u) << client->err();
  EXPECT_NE(client->err().find("certificate verify failed"), std::string::npos) << client->err();
}

TEST(CliTls, InsecureConnectsWithoutVerifyingAndWarnsEveryTime) {
  Served s = serve_tls();
  for (int run = 0; run < 2; ++run) {
    auto client = run_tether({"connect", s.url(), "--insecure"});
    client->write_stdin("unverified\n");
    client->close_stdin();
    EXPECT_EQ(client->wait_exit(), 0) << client->err();
    EXPECT_EQ(client->out(), "unverified\n");
    EXPECT_EQ(client->err(),
              "warning: --insecure: TLS certificate verification is OFF; anyone on the path can "
              "read and alter this connection\n");
  }
}

TEST(CliTls, MutualTlsServerTakesTheClientCertificate) {
  const auto& certs = tls::testing::test_certs();
  Served s = serve_tls({"--tls-client-ca", certs.ca});
  auto client = run_tether(
      {"connect", s.url(), "--ca", certs.ca, "--cert", certs.client, "--key", certs.client_key});
  client->write_stdin("mutual\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "mutual\n");
}

// ---- permessage-deflate ---------------------------------------------------------------

// Compressed frames carry RSV1 (RFC 7692 §6); the library compresses from 64 bytes up.
void expect_rsv1_on_both_sides(std::vector<std::string> serve_flags, int rsv1) {
  Served s = serve(std::move(serve_flags));
  auto client = run_tether({"connect", s.url(), "--compress", "--trace"});
  const std::string line(200, 'c');
  client->write_stdin(line + "\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), line + "\n");
  const std::string bit = "rsv1=" + std::to_string(rsv1);
  EXPECT_NE(client->err().find("-> TEXT fin=1 " + bit + " masked=1"), std::string::npos)
      << client->err();
  EXPECT_NE(client->err().find("<- TEXT fin=1 " + bit + " masked=0"), std::string::npos)
      << client->err();
}

TEST(CliCompress, CompressAgainstServeNegotiatesDeflate) {
  expect_rsv1_on_both_sides({}, 1);
}

TEST(CliCompress, ServeWithNoCompressDeclinesIt) {
  expect_rsv1_on_both_sides({"--no-compress"}, 0);
}

TEST(CliCompress, WithoutCompressNothingIsOffered) {
  Served s = serve();
  auto client = run_tether({"connect", s.url(), "--trace"});
  client->write_stdin(std::string(200, 'u') + "\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_NE(client->err().find("<- TEXT fin=1 rsv1=0 masked=0 len=200"), std::string::npos)
      << client->err();
}

// ---- connect --every, --reconnect, --json ----------------------------------------------

TEST(CliConnect, EverySendsTheTemplateWithSeqAndTimeThenClosesAfterCount) {
  Served s = serve();
  auto client =
      run_tether({"connect", s.url(), "--every", "20ms", "--message",
                  "{\"n\":{seq},\"at\":\"{time}\",\"ms\":{unix_ms}} {other}", "--count", "3"});
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->err(), "");
  const auto lines = client->lines(Stream::out);
  ASSERT_EQ(lines.size(), 3u) << client->out();
  static const std::regex shape(
      R"(^\{"n":(\d),"at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","ms":\d{13}\} \{other\}$)");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(lines[i], m, shape)) << lines[i];
    EXPECT_EQ(m[1], std::to_string(i + 1));
  }
}

TEST(CliConnect, JsonLeavesMessagesUnchangedWhenStdoutIsNotATerminal) {
  Served s = serve();
  auto client = run_tether({"connect", s.url(), "--json"});
  client->write_stdin("{\"a\":[1,2],\"b\":{\"c\":null}}\nnot json\n");
  client->close_stdin();
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_EQ(client->out(), "{\"a\":[1,2],\"b\":{\"c\":null}}\nnot json\n");
}

// The server drops the first connection at its first message; --reconnect comes back with
// the library's backoff and the periodic messages go on over the new connection.
TEST(CliConnect, ReconnectComesBackAfterTheServerDropsTheConnection) {
  ServerBehavior b;
  auto connections = std::make_shared<int>(0);  // loop thread only
  b.on_open = [connections](const ConnectionPtr& c) {
    c->set_user_data(std::make_shared<int>(++*connections));
  };
  b.on_message = [](const ConnectionPtr& c, MessageType type, ByteView payload) {
    if (*c->user_data<int>() == 1) return void(c->close(1012, "restarting"));
    c->send(type, payload);
  };
  InProcessServer server(std::move(b));
  auto client = run_tether({"connect", server.url(), "--reconnect", "--every", "100ms", "--message",
                            "m{seq}", "--count", "4"});
  EXPECT_EQ(client->wait_exit(), 0) << client->err();
  EXPECT_NE(client->err().find("connection closed: 1012 restarting"), std::string::npos)
      << client->err();
  EXPECT_NE(client->err().find("reconnecting in "), std::string::npos) << client->err();
  // m1 died with the first connection; m4 went out, and came back, on the second.
  EXPECT_EQ(client->out().find("m1\n"), std::string::npos) << client->out();
  EXPECT_TRUE(client->out().size() >= 3 &&
              client->out().compare(client->out().size() - 3, 3, "m4\n") == 0)
      << client->out();
}

// ---- usage ----------------------------------------------------------------------------

TEST(CliUsage, InvalidValuesAndUnknownFlagsExit64) {
  const std::vector<std::vector<std::string>> cases = {
      {"serve", "--ping-interval", "5"},
      {"serve", "--pong-timeout", "1x"},
      {"serve", "--max-message", "0"},
      {"serve", "--max-message", "12Q"},
      {"serve", "--port", "70000"},
      {"serve", "--bogus"},
      {"connect", "ws://127.0.0.1:9/", "--ping-interval", "-1s"},
      {"connect", "http://127.0.0.1:9/"},
      {"connect", "ws://127.0.0.1:9/", "--header", "no colon here"},
      {"connect"},
      {},
      {"dance"},
      {"serve", "--tls-key", "/etc/hostname"},
      {"serve", "--tls-cert", "/nonexistent.pem"},
      {"connect", "wss://127.0.0.1:9/", "--ca", "/nonexistent.pem"},
      {"connect", "ws://127.0.0.1:9/", "--every", "0", "--message", "x"},
      {"connect", "ws://127.0.0.1:9/", "--every", "1s"},
      {"connect", "ws://127.0.0.1:9/", "--count", "3"},
      {"bench"},
      {"bench", "ws://127.0.0.1:9/", "--payload", "xml"},
      {"bench", "ws://127.0.0.1:9/", "--payload", "json", "--size", "20"},
      {"bench", "ws://127.0.0.1:9/", "--connections", "0"},
      {"bench", "ws://127.0.0.1:9/", "--duration", "0"},
      {"soak", "--payload", "text"},
      {"soak", "--rate", "0"},
      {"soak", "--duration", "10"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv{TETHER_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    Child child(argv);
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    EXPECT_EQ(child.wait_exit(), 64) << "tether " << shown << "\n" << child.err();
    EXPECT_NE(child.err(), "") << "tether " << shown;
  }
}

TEST(CliUsage, ValidDurationsAndSizesAreAccepted) {
  // Each of these must get past parsing: serve then fails to bind a taken port (exit 1).
  RawSocket taken(/*listening=*/true);
  for (std::string value : {"0", "500ms", "1s", "2m", "1h"}) {
    Child child(tether_args({"serve", "--port", std::to_string(taken.port), "--ping-interval",
                             value, "--max-message", "64K"}));
    EXPECT_EQ(child.wait_exit(), 1) << value << ": " << child.err();
  }
}

TEST(CliUsage, HelpDocumentsEveryCommandFlagAndTheExitCodes) {
  auto top = run_tether({"--help"});
  EXPECT_EQ(top->wait_exit(), 0);
  for (const char* text : {"serve", "connect", "bench", "soak", "Exit codes:", "64"})
    EXPECT_NE(top->out().find(text), std::string::npos) << text << "\n" << top->out();

  auto serve_help = run_tether({"serve", "--help"});
  EXPECT_EQ(serve_help->wait_exit(), 0);
  for (const char* text :
       {"--host", "--port", "--ping-interval", "--pong-timeout", "--max-message", "--subprotocol",
        "--trace", "--verbose", "listening on ws://", "Exit codes:", "--tls-cert", "--tls-key",
        "--tls-client-ca", "--no-compress", "--trace-file", "wss://"})
    EXPECT_NE(serve_help->out().find(text), std::string::npos) << text;

  auto connect_help = run_tether({"connect", "--help"});
  EXPECT_EQ(connect_help->wait_exit(), 0);
  for (const char* text : {"--header",
                           "--subprotocol",
                           "--ping-interval",
                           "--pong-timeout",
                           "--trace",
                           "--verbose",
                           "closed by server",
                           "Exit codes:",
                           "--ca",
                           "--insecure",
                           "--cert",
                           "--key",
                           "--compress",
                           "--every",
                           "--message",
                           "--count",
                           "{seq}",
                           "{time}",
                           "--reconnect",
                           "--json",
                           "--trace-file",
                           "certificate verify failed"})
    EXPECT_NE(connect_help->out().find(text), std::string::npos) << text;

  auto bench_help = run_tether({"bench", "--help"});
  EXPECT_EQ(bench_help->wait_exit(), 0);
  for (const char* text : {"--connections", "--size", "--in-flight", "--duration", "--warmup",
                           "--payload", "--compress", "--json", "--trace", "--trace-file",
                           "msg_per_s", "mb_per_s", "p50_us", "p99_us", "errors", "Exit codes:"})
    EXPECT_NE(bench_help->out().find(text), std::string::npos) << text;

  auto soak_help = run_tether({"soak", "--help"});
  EXPECT_EQ(soak_help->wait_exit(), 0);
  for (const char* text :
       {"--duration", "--rate", "--ping-interval", "--connections", "--payload", "--compress",
        "--json", "--trace", "--trace-file", "rss_start_kb", "reconnects", "Exit codes:"})
    EXPECT_NE(soak_help->out().find(text), std::string::npos) << text;
}

}  // namespace
}  // namespace tether::cli_test
