// The sans-I/O WebSocket connection: bytes and time in, events and bytes out.
//
// A Session is one endpoint of one connection, client or server, from the opening handshake
// to the closing one. It never calls the OS: the transport (tether's epoll runtime, a test,
// a fuzzer, or any other I/O front-end) feeds it received bytes with receive(), the current
// time with tick(), and writes what pending_output() holds, in writes of any size, reporting
// each with consume_output(). Events reach a SessionHandler synchronously.
//
// States (RFC 6455 §4, §7):
//   connecting  the opening handshake is in progress;
//   open        "The WebSocket Connection is Established" (§4.1, §4.2.2);
//   closing     "The WebSocket Closing Handshake is Started": we sent a CLOSE and wait for
//               the peer's (§7.1.3); data received meanwhile is discarded, CLOSE still counts;
//   closed      "The WebSocket Connection is Closed" (§7.1.4): the transport may close TCP
//               once pending_output() is empty. EOF without a CLOSE frame is code 1006.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/byte_buffer.hpp"
#include "tether/extension.hpp"
#include "tether/frame_codec.hpp"
#include "tether/handshake.hpp"
#include "tether/protocol.hpp"
#include "tether/utf8.hpp"

namespace tether {

/// Connection state; see the file comment for the RFC's meaning of each.
enum class SessionState : std::uint8_t { connecting, open, closing, closed };

/// Why a send was refused. Sends never block and never fail silently.
enum class SendStatus : std::uint8_t {
  ok,
  not_open,         ///< the connection is not open (still connecting, closing or closed)
  invalid_payload,  ///< control payload over 125 bytes, or an invalid close code/reason
};

/// Tunables of one connection. Defaults suit both roles.
struct SessionOptions {
  /// Largest message accepted, whole or assembled; beyond it the connection closes with 1009.
  std::uint64_t max_message_size = default_max_message_size;
  /// Outgoing data messages larger than this go out as fragments of this size, so a PING or
  /// CLOSE never waits behind a huge message. 0 never fragments.
  std::size_t fragment_size = 64 * 1024;
  /// PING this often once open; 0 disables keepalive.
  Duration ping_interval = std::chrono::seconds(30);
  /// The peer is dead when nothing at all arrives within this long after a PING (→ 1006).
  Duration pong_timeout = std::chrono::seconds(10);
  /// After our CLOSE, how long to wait for the peer's before giving up (→ 1006).
  Duration close_timeout = std::chrono::seconds(5);
  /// How long the opening handshake may take; 0 disables.
  Duration handshake_timeout = std::chrono::seconds(10);
  /// Buffers a burst grew (above 1 KiB) are checked this often and freed once an interval
  /// needed less than half of them, so a connection returns to its size before the burst;
  /// 0 keeps them for the life of the connection. Costs no timer while buffers are small.
  Duration buffer_release_interval = std::chrono::seconds(10);
  /// Deliver data messages piece by piece to on_fragment() instead of assembling them.
  bool stream_fragments = false;
  /// Report every frame in and out to on_frame() (the frame trace).
  bool trace = false;
  /// Skip the opening handshake and start open (for transports that upgraded already, and
  /// for tests of framing). `transform` is then the negotiated extension, if any.
  bool start_open = false;
};

/// A frame as seen by the trace: direction, header and the head of its (unmasked) payload.
struct FrameTrace {
  bool outgoing;
  const FrameHeader& header;
  ByteView payload_head;  ///< at most the first 32 bytes
};

/// The server's answer to an upgrade request, filled by SessionHandler::on_handshake().
struct HandshakeDecision {
  bool accept = true;
  std::string subprotocol;          ///< must be one the client offered, or empty
  std::vector<HttpHeader> headers;  ///< extra response headers
  int status = 403;                 ///< HTTP status when refusing
  std::string body;                 ///< body when refusing
};

/// Receives a session's events. Called synchronously from receive(), tick() and the send
/// functions' caller thread. Handlers may send and close from inside any callback, but must
/// not destroy the session there.
class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  /// Server: a valid upgrade request arrived; fill `decision` to accept or refuse it.
  virtual void on_handshake(const HttpRequestHead& request,
                            const std::vector<std::string>& offered_subprotocols,
                            HandshakeDecision& decision) {
    (void)request, (void)offered_subprotocols, (void)decision;
  }
  /// The connection is open (handshake done).
  virtual void on_open() {}
  /// A whole message. `payload` is valid only during the call.
  virtual void on_message(MessageType type, ByteView payload) = 0;
  /// With SessionOptions::stream_fragments: a piece of a message. Text is UTF-8-checked.
  virtual void on_fragment(MessageType type, ByteView data, bool first, bool last) {
    (void)type, (void)data, (void)first, (void)last;
  }
  /// A PING arrived (the PONG is already queued).
  virtual void on_ping(ByteView payload) { (void)payload; }
  virtual void on_pong(ByteView payload) { (void)payload; }
  /// The connection is closed. Exactly once, and only after on_open(). `code` is the peer's
  /// close code (1005 when its CLOSE had none), ours after a protocol error, or 1006 when it
  /// ended without a CLOSE.
  virtual void on_close(std::uint16_t code, std::string_view reason) { (void)code, (void)reason; }
  /// Something went wrong: a protocol violation by the peer (close code 1002/1007/1009...),
  /// a failed handshake (HTTP status, or 0 on the client), a timeout. Followed by on_close.
  virtual void on_error(int code, std::string_view message) { (void)code, (void)message; }
  /// Every frame in and out, with SessionOptions::trace.
  virtual void on_frame(const FrameTrace& frame) { (void)frame; }
};

/// Bytes held by the calling thread's spare buffers: buffers above 64 KiB that its sessions
/// gave up, kept for the next large message and freed once they sat unused for 10 s (checked
/// at the buffer_release_interval of the thread's sessions).
std::size_t thread_spare_bytes() noexcept;

/// One WebSocket connection, sans I/O. Not thread-safe: one thread drives it (the runtime
/// adds the cross-thread send queue on top).
class Session {
 public:
  /// A client session; its handshake request is queued in pending_output() at once.
  Session(SessionOptions options, ClientHandshakeConfig handshake, SessionHandler& handler);
  /// A server session, waiting for the upgrade request.
  Session(SessionOptions options, ServerHandshakeConfig handshake, SessionHandler& handler);
  /// An already-open session in `role` (SessionOptions::start_open), with an optional
  /// negotiated extension.
  Session(Role role, SessionOptions options, SessionHandler& handler,
          std::unique_ptr<MessageTransform> transform = nullptr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Role role() const noexcept { return role_; }
  SessionState state() const noexcept { return state_; }

  // ---- input --------------------------------------------------------------------------
  /// Feeds received bytes. Masked payload is unmasked in place in `data`, which is why it is
  /// mutable; nothing of it is kept after the call returns.
  void receive(MutableByteView data);
  /// The peer closed its sending side (TCP EOF). Without a CLOSE frame first, code 1006.
  void receive_eof();
  /// Advances time: sends keepalive PINGs, detects a dead peer and expired handshakes and
  /// close handshakes. Call it at next_deadline() or whenever convenient.
  void tick(TimePoint now);
  /// When tick() next has work to do; nullopt when no timer is pending.
  std::optional<TimePoint> next_deadline() const noexcept;

  // ---- output -------------------------------------------------------------------------
  /// Bytes ready to write, always whole frames queued in order. Stable until the next call
  /// to a non-const member.
  ByteView pending_output() const noexcept { return out_.data(); }
  /// `n` bytes of pending_output() were written (any n, 1 byte included).
  void consume_output(std::size_t n);
  /// Bytes accepted for sending but not yet written: encoded frames plus queued messages.
  std::size_t buffered_amount() const noexcept { return out_.size() + queued_bytes_; }
  /// True once closed and everything pending was written: the transport closes the socket.
  bool finished() const noexcept { return state_ == SessionState::closed && out_.empty(); }

  // ---- sending (RFC 6455 §5.6, §5.5) ---------------------------------------------------
  /// Sends a data message. The payload is copied (or moved, for the rvalue overloads); the
  /// caller's memory is never written. Thread: the driving thread only.
  SendStatus send(MessageType type, ByteView payload);
  SendStatus send(MessageType type, std::string&& payload);
  SendStatus send(MessageType type, std::vector<std::byte>&& payload);
  SendStatus send_text(std::string_view text) { return send(MessageType::text, as_bytes(text)); }
  SendStatus send_binary(ByteView data) { return send(MessageType::binary, data); }
  /// Control frames go out at the next frame boundary, ahead of queued message fragments.
  SendStatus ping(ByteView payload = {});
  SendStatus pong(ByteView payload = {});
  /// Starts the closing handshake. `code` must be valid on the wire (or 1005 for a CLOSE
  /// without payload) and the reason at most 123 bytes of UTF-8.
  SendStatus close(std::uint16_t code = close_code::normal, std::string_view reason = {});

  // ---- what happened -------------------------------------------------------------------
  /// Close code/reason reported to on_close (1006 and empty until closed).
  std::uint16_t close_code() const noexcept { return close_code_; }
  const std::string& close_reason() const noexcept { return close_reason_; }
  /// Subprotocol agreed in the handshake (empty when none).
  const std::string& subprotocol() const noexcept { return subprotocol_; }
  /// Client: the handshake (HTTP status and body of a refusal). nullptr once open.
  const ClientHandshake* client_handshake() const noexcept { return client_hs_.get(); }
  /// Counters, e.g. for soak reports.
  std::uint64_t pings_sent() const noexcept { return pings_sent_; }
  std::uint64_t pongs_received() const noexcept { return pongs_received_; }
  /// Approximate heap bytes held by this session (buffers and extension state).
  std::size_t memory_used() const noexcept;
  const SessionOptions& options() const noexcept { return options_; }

 private:
  struct QueuedMessage;

  void receive_frames(MutableByteView data);
  void on_frame_payload(MutableByteView piece);
  void on_frame_complete();
  void deliver_control();
  void open();
  void apply_transform_limits();
  void fail(std::uint16_t code, std::string_view message);
  void finish(std::uint16_t code, std::string_view reason, bool abort = false);
  void write_close(std::uint16_t code, std::string_view reason);
  void trace(bool outgoing, const FrameHeader& h, ByteView payload);
  SendStatus enqueue(MessageType type, ByteView payload, std::string* owned_text,
                     std::vector<std::byte>* owned_bytes);
  void write_frame(Opcode op, bool fin, bool rsv1, ByteView payload);
  void write_control(Opcode op, ByteView payload);
  void refill();
  bool holds_burst_buffers() const noexcept;
  bool release_unarmed() const noexcept {
    return !release_due_ && options_.buffer_release_interval.count() > 0;
  }
  void release_burst_buffers(TimePoint now);
  void handle_server_handshake(MutableByteView& data);
  void handle_client_handshake(MutableByteView& data);

  SessionOptions options_;
  SessionHandler& handler_;
  FrameDecoder decoder_;
  Utf8Validator utf8_;
  ByteBuffer out_;
  std::vector<std::byte> message_;  // assembly buffer, reused across messages
  std::vector<std::byte> control_;  // control payload split across reads (<= 125 bytes)
  std::vector<std::byte> transformed_;
  std::vector<QueuedMessage> queue_;  // messages waiting to be encoded, fragment by fragment
  std::size_t queue_head_ = 0;
  std::size_t queued_bytes_ = 0;
  std::uint64_t streamed_ = 0;  // bytes of the current message already given to on_fragment
  std::uint64_t message_wire_bytes_ = 0;  // an untransformed message under a transform: its size
  std::unique_ptr<MessageTransform> transform_;
  std::unique_ptr<ClientHandshake> client_hs_;
  std::unique_ptr<ServerHandshake> server_hs_;
  std::string subprotocol_;
  std::string close_reason_;
  std::optional<TimePoint> handshake_deadline_;
  std::optional<TimePoint> next_ping_;
  std::optional<TimePoint> pong_deadline_;
  std::optional<TimePoint> close_deadline_;
  std::optional<TimePoint> release_due_;  // next look at buffers grown by a burst
  std::uint64_t pings_sent_ = 0;
  std::uint64_t pongs_received_ = 0;
  std::uint16_t close_code_ = close_code::abnormal;
  Role role_;
  SessionState state_ = SessionState::connecting;
  MessageType message_type_ = MessageType::text;
  bool message_transformed_ = false;  // current incoming message had RSV1
  bool message_first_piece_ = true;
  bool received_since_ping_ = false;
  bool close_sent_ = false;
  bool was_open_ = false;
  bool close_deferred_ = false;  // close() waits for queued messages to be encoded first
  std::uint16_t deferred_code_ = close_code::normal;
  std::string deferred_reason_;
  MutableByteView direct_;    // a whole single-frame message still in the caller's input
  bool timers_dirty_ = true;  // state changed since the last tick: deadlines to (re)arm
  // The most each buffer held since the last release check (release_burst_buffers).
  std::size_t out_high_ = 0;
  std::size_t message_high_ = 0;
  std::size_t transformed_high_ = 0;
  std::size_t queue_high_ = 0;
};

}  // namespace tether
