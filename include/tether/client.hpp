// The WebSocket client of the runtime: connects, reconnects with backoff, sends from any thread.
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

/// A parsed ws:// or wss:// URL.
struct WebSocketUrl {
  bool secure = false;
  std::string host;  ///< without brackets for IPv6
  std::uint16_t port = 80;
  std::string target = "/";  ///< path and query
  /// Host header value: host, bracketed for IPv6, with ":port" when not the default.
  std::string host_header() const;
};
/// Parses `ws://host[:port][/path][?query]` (and wss://). nullopt with `error` when invalid.
std::optional<WebSocketUrl> parse_websocket_url(std::string_view url, std::string* error = nullptr);

/// Reconnection after a lost connection: exponential backoff with full jitter
/// (delay = random(0, min(max_delay, initial_delay * 2^attempt))).
struct ReconnectPolicy {
  bool enabled = false;
  Duration initial_delay = std::chrono::milliseconds(500);
  Duration max_delay = std::chrono::seconds(30);
  unsigned max_attempts = 0;  ///< consecutive failed attempts before giving up; 0 = no limit
  /// A connection that stayed open this long resets the backoff to initial_delay.
  Duration stable_after = std::chrono::seconds(10);
};

/// Client settings.
struct ClientOptions {
  std::string url;                        ///< ws://host:port/path?query
  std::vector<HttpHeader> headers;        ///< extra request headers (auth, cookies, origin...)
  std::vector<std::string> subprotocols;  ///< offered in preference order
  /// When subprotocols are offered and the server picks none, fail the handshake.
  bool require_subprotocol = false;
  SessionOptions session{};
  Duration connect_timeout = std::chrono::seconds(10);  ///< DNS + TCP + handshake
  ReconnectPolicy reconnect{};
  /// Bytes of messages kept while disconnected, sent in order on (re)connection. 0: sends
  /// while disconnected return SendResult::closed.
  std::size_t offline_queue_limit = 0;
  BackpressureOptions backpressure{};
  std::vector<std::shared_ptr<const Extension>> extensions;
  /// TLS for wss:// URLs: verification is on by default, against the system trust store.
  TlsClientOptions tls{};
  int socket_send_buffer = 0;     ///< SO_SNDBUF; 0 keeps the OS default
  int socket_receive_buffer = 0;  ///< SO_RCVBUF; 0 keeps the OS default
};

/// Callbacks of a client; all run on the loop thread; each is optional.
struct ClientHandlers {
  std::function<void(const ConnectionPtr&)> on_open{};
  std::function<void(const ConnectionPtr&, MessageType type, ByteView payload)> on_message{};
  /// Once per opened connection.
  std::function<void(const ConnectionPtr&, std::uint16_t code, std::string_view reason)> on_close{};
  /// Connection failures (refused, DNS, timeout, handshake: `code` is the HTTP status or 0)
  /// and protocol errors (`code` is the close code).
  std::function<void(int code, std::string_view message)> on_error{};
  std::function<void(const ConnectionPtr&)> on_drain{};
  std::function<void(const ConnectionPtr&, ByteView payload)> on_ping{};
  std::function<void(const ConnectionPtr&, ByteView payload)> on_pong{};
  /// A reconnection attempt is scheduled after `delay` (attempt counts from 1).
  std::function<void(unsigned attempt, Duration delay)> on_reconnect{};
  /// The client gave up (closed by the application, or reconnection attempts exhausted).
  std::function<void()> on_finished{};
};

/// A WebSocket client on one EventLoop. connect() once; the loop does the rest.
class Client {
 public:
  Client(EventLoop& loop, ClientOptions options, ClientHandlers handlers = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Client& on_log(LogCallback log);
  Client& on_trace(TraceCallback trace);

  /// Starts connecting. Returns false (with `error`) only for an invalid URL. Any thread.
  bool connect(std::string* error = nullptr);
  /// Sends on the current connection, or queues while disconnected within
  /// offline_queue_limit. Any thread.
  SendResult send(MessageType type, ByteView payload);
  SendResult send_text(std::string_view text) { return send(MessageType::text, as_bytes(text)); }
  /// Closes the connection (CLOSE handshake) and stops reconnecting. Any thread.
  void close(std::uint16_t code = 1000, std::string_view reason = {});
  /// The current connection, or nullptr while disconnected. Any thread.
  ConnectionPtr connection() const;
  /// Successful connections after the first one.
  unsigned reconnects() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tether
