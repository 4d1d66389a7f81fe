// Shared pieces of the `tether` command tests: running the binary, a `tether serve` child, raw
// sockets, an in-process tether server for behaviour `tether serve` does not have, and
// reading the --json report line.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/subprocess.hpp"
#include "tether/server.hpp"

#ifndef TETHER_BIN
#error "TETHER_BIN must name the tether binary under test"
#endif

namespace tether::cli_test {

inline std::vector<std::string> tether_args(std::vector<std::string> args) {
  std::vector<std::string> argv{TETHER_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

inline std::unique_ptr<Child> run_tether(std::vector<std::string> args, bool pipe_stdin = true) {
  return std::make_unique<Child>(tether_args(std::move(args)), pipe_stdin);
}

/// `tether serve --port 0 ...`, started and listening.
struct Served {
  std::unique_ptr<Child> child;
  std::uint16_t port = 0;
  bool secure = false;
  std::string url(std::string_view path = "/") const {
    return std::string(secure ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port) +
           std::string(path);
  }
};

inline Served serve(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = tether_args({"serve", "--port", "0"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  Served s;
  s.child = std::make_unique<Child>(argv);
  static const std::regex listening(R"(^listening on (wss?)://127\.0\.0\.1:(\d+)$)");
  auto line = s.child->wait_line(Stream::err, [](std::string_view l) {
    return std::regex_match(l.begin(), l.end(), listening);
  });
  if (!line) {
    ADD_FAILURE() << "no listening line; stderr:\n" << s.child->err();
    return s;
  }
  std::smatch m;
  std::regex_match(*line, m, listening);
  s.secure = m[1] == "wss";
  s.port = static_cast<std::uint16_t>(std::stoi(m[2]));
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

inline bool wait_readable(int fd, Clock::time_point deadline) {
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
/// send binary messages, close with other codes, show the request headers, corrupt echoes.
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

/// An echo server that alters one message in `every`: one byte in the middle of it gets its
/// lowest bit flipped, which keeps text printable ASCII (so still valid UTF-8).
inline ServerBehavior corrupting_echo(int every) {
  ServerBehavior b;
  auto count = std::make_shared<int>(0);  // loop thread only
  b.on_message = [count, every](const ConnectionPtr& c, MessageType type, ByteView payload) {
    if (++*count % every != 0 || payload.empty()) return void(c->send(type, payload));
    std::vector<std::byte> altered(payload.begin(), payload.end());
    altered[altered.size() / 2] ^= std::byte{0x01};
    c->send(type, ByteView(altered));
  };
  return b;
}

inline std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

/// The last line of `out`, parsed as JSON (a discarded value when it is not JSON).
inline nlohmann::json last_json_line(const std::string& out) {
  std::string text = out;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const std::size_t nl = text.rfind('\n');
  const std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
  return nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
}

/// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tether-cli-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The lines of `text` matching `pattern` (a whole-line regex).
inline std::vector<std::string> matching_lines(const std::string& text, const std::regex& pattern) {
  std::vector<std::string> found;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (std::regex_match(line, pattern)) found.push_back(line);
  return found;
}

}  // namespace tether::cli_test
