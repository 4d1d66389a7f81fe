// Per-message extensions (RFC 6455 §9): negotiation in the handshake, then a transform of
// whole message payloads flagged by RSV1. permessage-deflate (RFC 7692) is one of these.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/protocol.hpp"

namespace tether {

/// One element of a Sec-WebSocket-Extensions header: `name; key; key=value`.
struct ExtensionParam {
  std::string name;
  std::optional<std::string> value;  ///< absent for a value-less parameter
};
struct ExtensionOffer {
  std::string name;
  std::vector<ExtensionParam> params;
};
/// Parses a Sec-WebSocket-Extensions header value (RFC 6455 §9.1 grammar, quoted values
/// allowed). Returns nullopt when the value is malformed.
std::optional<std::vector<ExtensionOffer>> parse_extension_header(std::string_view value);

/// The outcome of transforming one incoming fragment.
struct TransformStatus {
  std::uint16_t close_code = 0;  ///< 0 when fine; otherwise 1007/1009/1002 to close with
  std::string_view message;      ///< static text when close_code != 0
};

/// Per-connection state of a negotiated extension: transforms payloads of data messages.
/// Used by the session only; one instance per connection, never shared between threads.
class MessageTransform {
 public:
  virtual ~MessageTransform() = default;

  /// Transforms an outgoing message payload into `out` (cleared first). Returns true when the
  /// result must be sent with RSV1 set; false to send `payload` untransformed (for instance
  /// below a size threshold).
  virtual bool encode(MessageType type, ByteView payload, std::vector<std::byte>& out) = 0;

  /// Transforms one incoming fragment of a message that had RSV1 on its first frame, appending
  /// to `out`. `last` is true for the final fragment. Must refuse with 1009 as soon as `out`
  /// would exceed `max_size`, while transforming, never after.
  virtual TransformStatus decode(ByteView fragment, bool last, std::vector<std::byte>& out,
                                 std::uint64_t max_size) = 0;

  /// Bytes of memory this transform holds (for reporting; 0 when not tracked).
  virtual std::size_t memory_used() const { return 0; }

  /// The most wire bytes a message of `decoded_limit` bytes can take once encoded, so that the
  /// frame decoder does not refuse a message that is within the limit after decoding (stored
  /// DEFLATE blocks are a few bytes longer than their content). The decoded size is still
  /// held to the limit by decode().
  virtual std::uint64_t max_encoded_size(std::uint64_t decoded_limit) const {
    return decoded_limit;
  }
};

/// Configuration of one extension on an endpoint; creates per-connection transforms.
class Extension {
 public:
  virtual ~Extension() = default;
  /// Registered name, e.g. "permessage-deflate".
  virtual std::string_view name() const = 0;
  /// Client: the offer to put in Sec-WebSocket-Extensions (without the name), e.g.
  /// "client_max_window_bits". Several offers may be separated by ", name; ...".
  virtual std::string client_offer() const = 0;
  /// Client: checks the server's response parameters. Returns the transform, or nullptr
  /// and fills `error` when the response is not acceptable (the client then fails the
  /// connection, RFC 6455 §9.1).
  virtual std::unique_ptr<MessageTransform> client_accept(const ExtensionOffer& response,
                                                          std::string& error) const = 0;
  /// Server: considers one offer. Returns the transform and fills `response_params` (the
  /// text after the name in the response header) when accepted; nullptr to decline it.
  virtual std::unique_ptr<MessageTransform> server_accept(const ExtensionOffer& offer,
                                                          std::string& response_params) const = 0;
};

}  // namespace tether
