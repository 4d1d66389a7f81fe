// Vocabulary of RFC 6455 shared by every layer: roles, opcodes, close codes, byte views.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace tether {

/// Read-only bytes. Every payload crossing the public API is a view or an owned copy; the
/// library never hands the application a buffer it must keep alive or pad.
using ByteView = std::span<const std::byte>;
/// Writable bytes, used where the core unmasks in place (the transport's receive buffer).
using MutableByteView = std::span<std::byte>;

/// Monotonic time given to the sans-I/O core. The core never reads a clock; the transport
/// passes `std::chrono::steady_clock::now()` and tests pass whatever they like.
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::milliseconds;

/// Views text as bytes without copying.
inline ByteView as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
/// Views bytes as text without copying (no validation).
inline std::string_view as_text(ByteView b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Which end of the connection this endpoint is (RFC 6455 §1.3): clients mask, servers don't.
enum class Role : std::uint8_t { client, server };

/// Frame opcodes (RFC 6455 §5.2). Values 3-7 and 0xB-0xF are reserved and rejected.
enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// Control frames (CLOSE, PING, PONG) have the high opcode bit set (RFC 6455 §5.5).
constexpr bool is_control(Opcode op) noexcept {
  return (static_cast<unsigned>(op) & 0x8) != 0;
}
/// True for the six opcodes RFC 6455 defines.
constexpr bool is_known_opcode(unsigned op) noexcept {
  return op <= 2 || (op >= 8 && op <= 0xA);
}
/// Upper-case name as used in traces: TEXT, BINARY, CONT, PING, PONG, CLOSE.
std::string_view opcode_name(Opcode op) noexcept;

/// Kind of a whole message delivered to the application.
enum class MessageType : std::uint8_t { text = 0x1, binary = 0x2 };

/// Status codes of a CLOSE frame (RFC 6455 §7.4.1 and the IANA registry).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
/// Never on the wire: "the CLOSE frame carried no code".
inline constexpr std::uint16_t no_status = 1005;
/// Never on the wire: "the connection ended without a CLOSE frame" (EOF, keepalive timeout).
inline constexpr std::uint16_t abnormal = 1006;
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t bad_gateway = 1014;
/// Never on the wire: TLS handshake failure.
inline constexpr std::uint16_t tls_handshake = 1015;
}  // namespace close_code

/// Whether `code` may appear in a CLOSE frame (RFC 6455 §7.4): 1000-1003, 1007-1014 and
/// 3000-4999. 1004-1006, 1015, 1016-2999 and everything else are invalid on the wire.
constexpr bool is_valid_wire_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace tether
