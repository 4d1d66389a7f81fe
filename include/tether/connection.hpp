// A handle on one live (or finished) WebSocket connection of the runtime.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tether/protocol.hpp"

namespace tether {

/// What became of a send. No send ever blocks, and none fails silently.
enum class SendResult : std::uint8_t {
  ok,            ///< accepted; it will go out in order
  closed,        ///< the connection is closing or closed (or not yet open)
  backpressure,  ///< refused: buffered bytes would exceed the limit (policy `refuse`)
  dropped,       ///< discarded: over the limit with policy `drop`
  invalid,       ///< control payload over 125 bytes, or an invalid close code/reason
};
std::string_view send_result_name(SendResult r) noexcept;

/// What happens when a send would push buffered_amount() past the limit.
enum class BackpressurePolicy : std::uint8_t {
  refuse,  ///< the send returns SendResult::backpressure, nothing is queued
  close,   ///< the connection is closed with 1008 (a slow consumer), the send returns closed
  drop,    ///< the message is discarded and the send returns SendResult::dropped
};

/// Bounded outgoing memory per connection.
struct BackpressureOptions {
  /// Most bytes buffered for one connection (encoded frames plus queued messages).
  std::size_t limit = 16u << 20;
  BackpressurePolicy policy = BackpressurePolicy::refuse;
  /// on_drain fires when buffered bytes fall to this after having been above it.
  std::size_t low_water = 64u << 10;
};

/// One connection. Held as std::shared_ptr; a handle kept after the connection closed stays
/// valid and every send on it returns SendResult::closed, never undefined behaviour.
///
/// Thread-safety: every member may be called from any thread. On the connection's loop thread
/// a send goes straight into the session; from other threads it is queued and the loop is woken,
/// and messages from one thread keep their order. The payload is always copied (or moved from
/// the rvalue overloads) before the call returns; the caller's memory is never written.
class Connection {
 public:
  virtual ~Connection() = default;

  virtual SendResult send(MessageType type, ByteView payload) = 0;
  virtual SendResult send(MessageType type, std::string&& payload) = 0;
  virtual SendResult send(MessageType type, std::vector<std::byte>&& payload) = 0;
  SendResult send_text(std::string_view text) { return send(MessageType::text, as_bytes(text)); }
  SendResult send_text(std::string&& text) { return send(MessageType::text, std::move(text)); }
  SendResult send_text(const char* text) { return send_text(std::string_view(text)); }
  SendResult send_binary(ByteView data) { return send(MessageType::binary, data); }
  SendResult send_binary(std::vector<std::byte>&& data) {
    return send(MessageType::binary, std::move(data));
  }
  /// A PING (at most 125 bytes of payload); keepalive PINGs are automatic.
  virtual SendResult ping(ByteView payload = {}) = 0;
  /// Starts the closing handshake (RFC 6455 §7); code must be valid on the wire.
  virtual SendResult close(std::uint16_t code = 1000, std::string_view reason = {}) = 0;

  /// Bytes accepted but not yet written to the socket. Any thread.
  virtual std::size_t buffered_amount() const noexcept = 0;
  /// Open: the handshake is done and no CLOSE was sent or received. Any thread.
  virtual bool is_open() const noexcept = 0;

  /// Process-unique id (also used in traces).
  virtual std::uint64_t id() const noexcept = 0;
  /// "1.2.3.4:5678" or "[::1]:5678".
  virtual const std::string& remote_address() const noexcept = 0;
  /// Request path and query of the upgrade ("/chat?room=1").
  virtual const std::string& target() const noexcept = 0;
  /// Subprotocol agreed in the handshake, empty when none.
  virtual const std::string& subprotocol() const noexcept = 0;
  /// wss:// only: the TLS handshake resumed an earlier session (an abbreviated handshake,
  /// RFC 8446 §2.2 / RFC 5246 §7.3) instead of a full one with certificates. Always false for
  /// ws://. Set before on_open is called (the TLS handshake ends before the WebSocket one) and
  /// never changes afterwards; false before. A Client resumes when it reconnects to the same
  /// host and port (see TlsClientOptions); a Server when it accepts the client's session.
  /// Any thread.
  virtual bool tls_session_resumed() const noexcept = 0;

  /// Application data attached to the connection (set it in on_open). Any thread.
  void set_user_data(std::shared_ptr<void> data) {
    std::lock_guard lock(user_data_mutex_);
    user_data_ = std::move(data);
  }
  template <class T>
  std::shared_ptr<T> user_data() const {
    std::lock_guard lock(user_data_mutex_);
    return std::static_pointer_cast<T>(user_data_);
  }

 private:
  mutable std::mutex user_data_mutex_;
  std::shared_ptr<void> user_data_;
};

using ConnectionPtr = std::shared_ptr<Connection>;

}  // namespace tether
