// Test support for the runtime: a watchdog that bounds every loop run, and an echo server.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "tether/client.hpp"
#include "tether/event_loop.hpp"
#include "tether/server.hpp"

namespace tether::test {

using namespace std::chrono_literals;

/// Runs `loop` until something calls loop.stop(); fails the test if that takes longer than
/// `limit` (a hang bound, not a timing assertion).
inline void run_bounded(EventLoop& loop, Duration limit = std::chrono::seconds(60)) {
  bool expired = false;
  auto id = loop.call_after(limit, [&] {
    expired = true;
    loop.stop();
  });
  loop.run();
  loop.cancel(id);
  EXPECT_FALSE(expired) << "watchdog: the loop did not finish within " << limit.count() << " ms";
}

/// Options for a server on an ephemeral loopback port with keepalive off unless asked.
inline ServerOptions local_server_options() {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.session.ping_interval = Duration(0);
  return o;
}

/// Echoes every message back with its type.
inline ServerBehavior echo_behavior() {
  ServerBehavior b;
  b.on_message = [](const ConnectionPtr& c, MessageType type, ByteView payload) {
    c->send(type, payload);
  };
  return b;
}

inline std::string url_for(const Server& s, std::string_view path = "/") {
  return "ws://127.0.0.1:" + std::to_string(s.port()) + std::string(path);
}

/// A plain blocking TCP socket connected to 127.0.0.1:port, for speaking raw bytes to a
/// server (half handshakes, garbage, silent peers). The caller closes it.
inline int connect_raw(std::uint16_t port, std::string_view bytes = {}) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (!bytes.empty()) {
    EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  return fd;
}

}  // namespace tether::test
