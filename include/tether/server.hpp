// The WebSocket server of the runtime: listens, upgrades, and drives one Session per client.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tether/connection.hpp"
#include "tether/event_loop.hpp"
#include "tether/extension.hpp"
#include "tether/handshake.hpp"
#include "tether/observe.hpp"
#include "tether/session.hpp"
#include "tether/tls.hpp"

namespace tether {

/// Server settings; the defaults are safe for the internet.
struct ServerOptions {
  std::string host = "127.0.0.1";  ///< address to bind; "0.0.0.0" or "::" for all
  std::uint16_t port = 9000;       ///< 0 picks a free port (see Server::port())
  /// Per-connection protocol settings: message size limit (16 MiB), keepalive (PING every
  /// 30 s, dead after 10 s of silence), close and handshake timeouts (5 s, 10 s), fragments.
  SessionOptions session{};
  std::size_t max_connections = 10000;  ///< beyond it, upgrades get HTTP 503
  std::size_t max_header_bytes = 8192;  ///< request head limit (HTTP 431)
  BackpressureOptions backpressure{};
  /// Subprotocols supported, in preference order: the first of these that the client offers
  /// is chosen, unless the route's on_upgrade chooses.
  std::vector<std::string> subprotocols;
  std::vector<std::shared_ptr<const Extension>> extensions;  ///< e.g. permessage-deflate
  Duration shutdown_timeout = std::chrono::seconds(2);       ///< bound on shutdown()
  /// Serve wss:// (TLS 1.2+) with these certificates; nullopt serves plain ws://.
  std::optional<TlsServerOptions> tls{};
  int socket_send_buffer = 0;     ///< SO_SNDBUF of accepted sockets; 0 keeps the OS default
  int socket_receive_buffer = 0;  ///< SO_RCVBUF of accepted sockets; 0 keeps the OS default
};

/// Callbacks of one route (a request path). All run on the loop thread. Each is optional.
struct ServerBehavior {
  /// Sees the upgrade request before it is accepted; set `decision.accept = false` (with a
  /// status and body) to refuse, e.g. for authentication, or choose the subprotocol.
  std::function<void(const HttpRequestHead& request, HandshakeDecision& decision)> on_upgrade{};
  std::function<void(const ConnectionPtr&)> on_open{};
  /// A whole message; `payload` is valid during the call only (copy what you keep).
  std::function<void(const ConnectionPtr&, MessageType type, ByteView payload)> on_message{};
  /// Exactly once per opened connection.
  std::function<void(const ConnectionPtr&, std::uint16_t code, std::string_view reason)> on_close{};
  /// Buffered bytes fell to the low-water mark after being above it (set only if wanted).
  std::function<void(const ConnectionPtr&)> on_drain{};
  /// A protocol error, timeout or refused handshake on this connection.
  std::function<void(const ConnectionPtr&, int code, std::string_view message)> on_error{};
  std::function<void(const ConnectionPtr&, ByteView payload)> on_ping{};
  std::function<void(const ConnectionPtr&, ByteView payload)> on_pong{};
};

/// A WebSocket server on one EventLoop. Create, route, listen(), then run the loop.
/// Members are for the loop thread (or before run()), except where said otherwise.
class Server {
 public:
  explicit Server(EventLoop& loop, ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Callbacks for requests whose path (without query) is `path`; "*" matches any path that
  /// has no route of its own. A request for an unrouted path gets HTTP 404.
  Server& route(std::string path, ServerBehavior behavior);
  /// Log lines (off by default).
  Server& on_log(LogCallback log);
  /// The frame trace: every frame in and out of every connection.
  Server& on_trace(TraceCallback trace);

  /// Binds and listens. Returns false with a one-line reason in `error` on failure.
  bool listen(std::string* error = nullptr);
  /// The bound port (useful with port 0).
  std::uint16_t port() const noexcept;
  /// Open connections (loop thread).
  std::size_t connection_count() const noexcept;
  /// Handles of the open connections (loop thread), e.g. to broadcast.
  std::vector<ConnectionPtr> connections() const;

  /// Stops accepting, sends CLOSE 1001 to everyone, and closes what remains after
  /// shutdown_timeout; then calls `done` (on the loop thread). Any thread.
  void shutdown(std::function<void()> done = {});

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tether
