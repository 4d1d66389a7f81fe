// End-to-end tests of the `tether` command, run as a user runs it: subprocesses on loopback
// with ephemeral ports, synchronised on their output and exit, never on sleeps.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <regex>
#include <thread>

#include "cli/subprocess.hpp"
#include "tether/server.hpp"

#ifndef TETHER_BIN
#error "TETHER_BIN must name the tether binary under test"
#endif

namespace tether::cli_test {
namespace {

std::vector<std::string> tether_args(std::initializer_list<std::string> args) {
  std::vector<std::string> argv{TETHER_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::unique_ptr<Child> run_tether(std::initializer_list<std::string> args, bool pipe_stdin = true) {
  return std::make_unique<Child>(tether_args(args), pipe_stdin);
}

/// `tether serve --port 0 ...`, started and listening.
struct Served {
  std::unique_ptr<Child> child;
  std::uint16_t port = 0;
  std::string url(std::string_view path = "/") const {
    return "ws://127.0.0.1:" + std::to_string(port) + std::string(path);
  }
};

Served serve(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = tether_args({"serve", "--port", "0"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  Served s;
  s.child = std::make_unique<Child>(argv);
  static const std::regex listening(R"(^listening on ws://127\.0\.0\.1:(\d+)$)");
  auto line = s.child->wait_line(Stream::err, [](std::string_view l) {
    return std::regex_match(l.begin(), l.end(), listening);
  });
  if (!line) {
    ADD_FAILURE() << "no listening line; stderr:\n" << s.child->err();
    return s;
  }
  std::smatch m;
  std::regex_match(*line, m, listening);
  s.port = static_cast<std::uint16_t>(std::stoi(m[1]));
  return s;
}

/// A loopback TCP socket on an ephemeral port: listening, or only bound (so that connecting
/// to it is refused while no one else can take the port).
struct RawSocket {
  int fd = -1;
  std::uint16_t port = 0;
  explicit RawSocket(bool listening) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    if (listening) {
      EXPECT_EQ(::listen(fd, 8), 0);
    }
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~RawSocket() { ::close(fd); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;
};

bool wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

/// An in-process tether server on its own loop thread, for what `tether serve` cannot do:
/// send binary messages, close with other codes, show the request headers.
class InProcessServer {
 public:
  explicit InProcessServer(ServerBehavior behavior) {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.session.ping_interval = Duration(0);
    server_ = std::make_unique<Server>(loop_, o);
    server_->route("*", std::move(behavior));
    std::string error;
    EXPECT_TRUE(server_->listen(&error)) << error;
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~InProcessServer() {
    loop_.stop();
    thread_.join();
    server_.reset();
  }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(server_->port()) + "/"; }

 private:
  EventLoop loop_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

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
  for (const char* text : {"serve", "connect", "Exit codes:", "64"})
    EXPECT_NE(top->out().find(text), std::string::npos) << text << "\n" << top->out();

  auto serve_help = run_tether({"serve", "--help"});
  EXPECT_EQ(serve_help->wait_exit(), 0);
  for (const char* text :
       {"--host", "--port", "--ping-interval", "--pong-timeout", "--max-message", "--subprotocol",
        "--trace", "--verbose", "listening on ws://", "Exit codes:"})
    EXPECT_NE(serve_help->out().find(text), std::string::npos) << text;

  auto connect_help = run_tether({"connect", "--help"});
  EXPECT_EQ(connect_help->wait_exit(), 0);
  for (const char* text : {"--header", "--subprotocol", "--ping-interval", "--pong-timeout",
                           "--trace", "--verbose", "closed by server", "Exit codes:"})
    EXPECT_NE(connect_help->out().find(text), std::string::npos) << text;
}

}  // namespace
}  // namespace tether::cli_test
