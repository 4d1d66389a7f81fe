// Frame codec (RFC 6455 §5): an incremental, allocation-free decoder and the encoding helpers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tether/protocol.hpp"

namespace tether {

/// The fixed part of a frame as it appears on the wire (RFC 6455 §5.2).
struct FrameHeader {
  Opcode opcode = Opcode::continuation;
  bool fin = true;
  bool rsv1 = false;
  bool rsv2 = false;
  bool rsv3 = false;
  bool masked = false;
  std::array<std::byte, 4> mask{};  ///< meaningful only when `masked`
  std::uint64_t length = 0;         ///< payload length in bytes
};

/// Largest encoded header: 2 bytes + 8-byte extended length + 4-byte mask key.
inline constexpr std::size_t max_frame_header_size = 14;
/// Control frame payloads are limited to 125 bytes (RFC 6455 §5.5).
inline constexpr std::size_t max_control_payload = 125;
/// Default limit on a message's size, whole or assembled from fragments.
inline constexpr std::uint64_t default_max_message_size = 16u << 20;

/// Encoded size of a header for a payload of `length` bytes.
constexpr std::size_t frame_header_size(std::uint64_t length, bool masked) noexcept {
  return 2 + (length < 126 ? 0 : length <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}

/// Writes `h` into `out`, which must hold `max_frame_header_size` bytes; returns the size.
/// Always uses the shortest length encoding, as RFC 6455 §5.2 requires.
std::size_t encode_frame_header(const FrameHeader& h, std::byte* out) noexcept;

/// XORs `n` bytes from `src` into `dst` with `key`, starting at key byte `phase` (0-3).
/// `src == dst` unmasks in place. Works a machine word at a time; it never writes to `src`
/// unless `src == dst`. Returns the phase after the last byte, for the next chunk.
std::size_t apply_mask(const std::byte* src, std::byte* dst, std::size_t n,
                       std::array<std::byte, 4> key, std::size_t phase = 0) noexcept;

/// Why a frame was refused, with the close code the connection must send.
struct FrameError {
  std::uint16_t close_code = 0;  ///< 1002, 1007 or 1009
  std::string_view message;      ///< static text naming the violated rule
};

/// Incremental decoder for one direction of one connection.
///
/// Feed it bytes in chunks of any size (one byte at a time works); it reports a frame's
/// header, then its payload in one or more pieces, then the frame's end. Payload is unmasked
/// in place in the caller's input buffer, so a payload contiguous in the input is never copied.
/// State is a few dozen bytes, including a spill for a header split across reads; it never
/// allocates and never calls the OS.
///
/// It enforces every framing rule of RFC 6455 §5 that needs no knowledge of payload content:
/// reserved bits, reserved opcodes, control frame size and FIN, masking by role, fragment
/// sequencing and the message size limit (decided from the declared length, before any
/// payload arrives). After an error it stays in the error state until reset().
class FrameDecoder {
 public:
  enum class Status : std::uint8_t {
    need_more,  ///< input consumed; call again with more bytes
    header,     ///< a frame header was decoded: see header()
    payload,    ///< a piece of the current frame's payload, unmasked, in Result::payload
    frame_end,  ///< the current frame is complete
    error,      ///< a rule was broken: see error(); the connection must close
  };
  struct Result {
    Status status;
    MutableByteView payload;  ///< for Status::payload: points into the caller's input
  };

  /// `local` is this endpoint's role: a server requires masked frames, a client unmasked ones.
  explicit FrameDecoder(Role local, std::uint64_t max_message_size = default_max_message_size)
      : max_message_size_(max_message_size), role_(local) {}

  /// Allows RSV1 on the first frame of a data message (an extension such as
  /// permessage-deflate was negotiated). RSV2 and RSV3 are always refused.
  void set_rsv1_allowed(bool allowed) noexcept { rsv1_allowed_ = allowed; }
  void set_max_message_size(std::uint64_t n) noexcept { max_message_size_ = n; }

  /// Decodes from the front of `input`, advancing it past what was consumed.
  Result next(MutableByteView& input) noexcept;

  /// Header of the current frame (valid from Status::header until the next header).
  const FrameHeader& header() const noexcept { return header_; }
  /// The error after Status::error.
  const FrameError& error() const noexcept { return error_; }
  /// Opcode of the data message in progress (text/binary), continuation when none is open.
  Opcode message_opcode() const noexcept { return message_opcode_; }
  /// Whether the current data frame starts a message (its opcode is text or binary).
  bool frame_starts_message() const noexcept {
    return !is_control(header_.opcode) && header_.opcode != Opcode::continuation;
  }
  /// Payload bytes of the current frame not yet delivered.
  std::uint64_t remaining() const noexcept { return remaining_; }

  /// Back to the initial state (a new connection).
  void reset() noexcept;

 private:
  enum class State : std::uint8_t { header, payload, frame_end, failed };
  Result fail(std::uint16_t code, std::string_view message) noexcept;
  bool validate_header() noexcept;

  FrameHeader header_{};
  FrameError error_{};
  std::uint64_t remaining_ = 0;
  std::uint64_t message_size_ = 0;
  std::uint64_t max_message_size_;
  std::array<std::byte, max_frame_header_size> spill_{};
  std::uint8_t spill_len_ = 0;
  std::uint8_t mask_phase_ = 0;
  State state_ = State::header;
  Opcode message_opcode_ = Opcode::continuation;
  Role role_;
  bool rsv1_allowed_ = false;
};

/// A CLOSE frame's payload, decoded (RFC 6455 §5.5.1).
struct ClosePayload {
  std::uint16_t code = close_code::no_status;  ///< 1005 when the payload was empty
  std::string_view reason;                     ///< points into the payload
};
/// Decodes and validates a CLOSE payload: empty, or a valid wire code plus a UTF-8 reason.
/// One byte or an invalid code gives 1002; a reason that is not UTF-8 gives 1007.
/// Returns false and fills `error` when invalid.
bool parse_close_payload(ByteView payload, ClosePayload& out, FrameError& error) noexcept;

}  // namespace tether
