// Opening handshake (RFC 6455 §4): the client's request and the server's response, as pure
// functions of bytes. A small strict HTTP/1.1 head parser lives here too (Debian has no
// well-kept one: http-parser is unmaintained and llhttp is not packaged for Debian 12).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tether/extension.hpp"
#include "tether/protocol.hpp"

namespace tether {

/// One HTTP header field as received or to send.
struct HttpHeader {
  std::string name;
  std::string value;
};

/// Header fields in arrival order, looked up case-insensitively (RFC 9110 §5.1).
class HttpHeaders {
 public:
  void add(std::string name, std::string value) {
    fields_.push_back({std::move(name), std::move(value)});
  }
  /// First value of `name`, or nullptr.
  const std::string* find(std::string_view name) const noexcept;
  /// All values of `name` joined with ", " (RFC 9110 §5.3), empty when absent.
  std::string joined(std::string_view name) const;
  /// Whether the comma-separated list in every `name` field holds `token` (case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const;
  const std::vector<HttpHeader>& fields() const noexcept { return fields_; }
  std::size_t size() const noexcept { return fields_.size(); }

 private:
  std::vector<HttpHeader> fields_;
};

/// Parsed request line and headers.
struct HttpRequestHead {
  std::string method;
  std::string target;  ///< path and query as sent, e.g. "/chat?room=1"
  int version_minor = 1;
  HttpHeaders headers;
};

/// Parsed status line and headers.
struct HttpResponseHead {
  int status = 0;
  std::string reason;
  int version_minor = 1;
  HttpHeaders headers;
};

/// Result of parsing an HTTP head from the bytes received so far.
enum class HeadParse : std::uint8_t { incomplete, complete, error };

/// Parses a request head if `data` holds one (up to and including the blank line).
/// On `complete`, `head_size` is its length; on `error`, `http_status` (400, 431, 505, ...) and
/// `error` say why. More than `max_bytes` without the blank line is an error (431).
HeadParse parse_request_head(std::string_view data, std::size_t max_bytes, HttpRequestHead& out,
                             std::size_t& head_size, int& http_status, std::string& error);
/// Same for a response head. Errors carry no status (the client just fails).
HeadParse parse_response_head(std::string_view data, std::size_t max_bytes, HttpResponseHead& out,
                              std::size_t& head_size, std::string& error);

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2).
std::string websocket_accept_key(std::string_view key);
/// A fresh Sec-WebSocket-Key: base64 of 16 bytes from OpenSSL's CSPRNG.
std::string make_websocket_key();
/// Whether `key` is the base64 encoding of exactly 16 bytes (RFC 6455 §4.2.1 item 5).
bool is_valid_websocket_key(std::string_view key);

/// What a client asks for in its opening handshake.
struct ClientHandshakeConfig {
  std::string host;                         ///< Host header value, with ":port" when not default
  std::string target = "/";                 ///< path and query
  std::vector<std::string> subprotocols{};  ///< offered in order of preference
  std::vector<HttpHeader> headers{};        ///< extra headers (auth, cookies, origin...)
  std::vector<std::shared_ptr<const Extension>> extensions{};  ///< offered in this order
  std::string key{};                    ///< empty: a fresh random key (tests set one)
  std::size_t max_header_bytes = 8192;  ///< limit on the response head
};

/// Client side of the opening handshake: builds the request, validates the response.
class ClientHandshake {
 public:
  enum class Status : std::uint8_t { incomplete, accepted, failed };

  explicit ClientHandshake(ClientHandshakeConfig config);

  /// The request bytes to send.
  const std::string& request() const noexcept { return request_; }
  const std::string& key() const noexcept { return config_.key; }

  /// Feeds response bytes. `consumed` is how many of `data` belonged to the handshake; the
  /// rest are already WebSocket frames. After `failed`, error() says why in one line.
  Status receive(ByteView data, std::size_t& consumed);
  /// The server closed the connection: fails unless the response was complete.
  Status receive_eof();

  Status status() const noexcept { return status_; }
  const std::string& error() const noexcept { return error_; }
  /// HTTP status of the response (0 until its status line arrived).
  int http_status() const noexcept { return response_.status; }
  /// Body of a non-101 response (at most 1 KiB kept), for error reports.
  const std::string& body() const noexcept { return body_; }
  const HttpResponseHead& response() const noexcept { return response_; }
  /// The subprotocol the server chose (empty when none).
  const std::string& subprotocol() const noexcept { return subprotocol_; }
  /// The negotiated extension's transform (nullptr when none); call once after `accepted`.
  std::unique_ptr<MessageTransform> take_transform() noexcept { return std::move(transform_); }

 private:
  Status fail(std::string message);
  Status validate();

  ClientHandshakeConfig config_;
  std::string request_;
  std::string buffer_;
  std::string error_;
  std::string body_;
  std::string subprotocol_;
  HttpResponseHead response_;
  std::size_t body_expected_ = 0;
  std::unique_ptr<MessageTransform> transform_;
  Status status_ = Status::incomplete;
  bool head_done_ = false;
};

/// What a server accepts in opening handshakes.
struct ServerHandshakeConfig {
  std::size_t max_header_bytes = 8192;                       ///< request head limit; beyond it 431
  std::vector<std::shared_ptr<const Extension>> extensions;  ///< supported, in preference order
};

/// Server side of the opening handshake: validates the request, builds the response.
class ServerHandshake {
 public:
  enum class Status : std::uint8_t { incomplete, request, failed };

  explicit ServerHandshake(ServerHandshakeConfig config = {});

  /// Feeds request bytes. On `request`, the request is valid and the application decides with
  /// accept() or answers with http_error_response(); `consumed` bytes belonged to it and the rest
  /// are frames. On `failed`, response() holds the HTTP error to send (400, 405, 426, 431, 505) and
  /// error() says why.
  Status receive(ByteView data, std::size_t& consumed);

  Status status() const noexcept { return status_; }
  const HttpRequestHead& request() const noexcept { return request_; }
  /// Subprotocols the client offered, in its order.
  std::vector<std::string> offered_subprotocols() const;
  /// The 101 response choosing `subprotocol` (empty for none; must be one offered) and
  /// negotiating extensions; `extra` headers are appended.
  std::string accept(std::string_view subprotocol, const std::vector<HttpHeader>& extra = {});
  /// The negotiated extension's transform (nullptr when none), after accept().
  std::unique_ptr<MessageTransform> take_transform() noexcept { return std::move(transform_); }

  /// HTTP error response when the handshake failed.
  const std::string& response() const noexcept { return response_; }
  int http_status() const noexcept { return http_status_; }
  const std::string& error() const noexcept { return error_; }

 private:
  Status fail(int http_status, std::string message);

  ServerHandshakeConfig config_;
  std::string buffer_;
  HttpRequestHead request_;
  std::string response_;
  std::string error_;
  std::unique_ptr<MessageTransform> transform_;
  int http_status_ = 0;
  Status status_ = Status::incomplete;
};

/// An HTTP error response with `Connection: close` and a text body.
std::string http_error_response(int status, std::string_view body,
                                const std::vector<HttpHeader>& extra = {});
/// Standard reason phrase for `status` ("Bad Request", ...).
std::string_view http_reason_phrase(int status) noexcept;

}  // namespace tether
