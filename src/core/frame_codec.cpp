#include "tether/frame_codec.hpp"

#include <algorithm>
#include <cstring>

#include "tether/utf8.hpp"

namespace tether {
namespace {

constexpr std::byte k_fin{0x80};
constexpr std::byte k_rsv1{0x40};
constexpr std::byte k_rsv2{0x20};
constexpr std::byte k_rsv3{0x10};
constexpr std::byte k_mask_bit{0x80};

constexpr bool has(std::byte b, std::byte bit) noexcept {
  return (b & bit) != std::byte{0};
}

// Header size announced by its first two bytes.
std::size_t wire_header_size(const std::byte* p) noexcept {
  const unsigned len7 = static_cast<unsigned>(p[1] & std::byte{0x7F});
  return 2 + (len7 < 126 ? 0 : len7 == 126 ? 2 : 8) + (has(p[1], k_mask_bit) ? 4 : 0);
}

// Decodes a complete header. Returns the violated length-encoding rule, or empty: these are
// the only rules that need the raw bytes rather than the decoded FrameHeader.
std::string_view decode_header(const std::byte* p, FrameHeader& h) noexcept {
  h.fin = has(p[0], k_fin);
  h.rsv1 = has(p[0], k_rsv1);
  h.rsv2 = has(p[0], k_rsv2);
  h.rsv3 = has(p[0], k_rsv3);
  // Reserved values are kept as-is so validation and traces can name them.
  h.opcode = static_cast<Opcode>(p[0] & std::byte{0x0F});
  h.masked = has(p[1], k_mask_bit);
  const unsigned len7 = static_cast<unsigned>(p[1] & std::byte{0x7F});
  std::string_view violation;
  std::size_t pos = 2;
  if (len7 < 126) {
    h.length = len7;
  } else {
    const std::size_t n = len7 == 126 ? 2 : 8;
    std::uint64_t len = 0;
    for (std::size_t i = 0; i < n; ++i) len = (len << 8) | static_cast<std::uint64_t>(p[pos + i]);
    pos += n;
    h.length = len;
    if (n == 2 && len < 126) violation = "16-bit length used for a length below 126";
    if (n == 8 && (len >> 63) != 0)
      violation = "64-bit length with the most significant bit set";
    else if (n == 8 && len <= 0xFFFF)
      violation = "64-bit length used for a length below 65536";
  }
  if (h.masked)
    std::memcpy(h.mask.data(), p + pos, 4);
  else
    h.mask = {};
  return violation;
}

// One static message per reserved opcode, so the error names the value it saw.
// clang-format off
constexpr std::string_view k_reserved_opcode[16] = {
    "", "", "",
    "reserved opcode 0x3", "reserved opcode 0x4", "reserved opcode 0x5", "reserved opcode 0x6",
    "reserved opcode 0x7",
    "", "", "",
    "reserved opcode 0xB", "reserved opcode 0xC", "reserved opcode 0xD", "reserved opcode 0xE",
    "reserved opcode 0xF",
};
// clang-format on

// The RFC 6455 §5 rules that close with 1002, in the order they are checked; empty when the
// header breaks none. The size limit (1009) is checked separately, after these.
std::string_view framing_violation(const FrameHeader& h, Role local, bool rsv1_allowed,
                                   bool message_open) noexcept {
  const unsigned op = static_cast<unsigned>(h.opcode);
  if (h.rsv2) return "RSV2 set";
  if (h.rsv3) return "RSV3 set";
  if (!is_known_opcode(op)) return k_reserved_opcode[op];
  const bool starts_message = h.opcode == Opcode::text || h.opcode == Opcode::binary;
  // An extension such as permessage-deflate marks a whole message on its first frame only.
  if (h.rsv1 && !rsv1_allowed) return "RSV1 set without a negotiated extension";
  if (h.rsv1 && !starts_message) return "RSV1 set on a frame that does not start a message";
  if (is_control(h.opcode)) {
    if (!h.fin) return "fragmented control frame";
    if (h.length > max_control_payload) return "control frame payload over 125 bytes";
  }
  // RFC 6455 §5.1: a server closes on an unmasked frame, a client on a masked one.
  if (local == Role::server && !h.masked) return "unmasked frame from a client";
  if (local == Role::client && h.masked) return "masked frame from a server";
  if (h.opcode == Opcode::continuation && !message_open)
    return "continuation frame without a message";
  if (starts_message && message_open) return "new data frame inside a fragmented message";
  return {};
}

}  // namespace

std::size_t encode_frame_header(const FrameHeader& h, std::byte* out) noexcept {
  std::byte b0 = static_cast<std::byte>(static_cast<unsigned>(h.opcode) & 0x0F);
  if (h.fin) b0 |= k_fin;
  if (h.rsv1) b0 |= k_rsv1;
  if (h.rsv2) b0 |= k_rsv2;
  if (h.rsv3) b0 |= k_rsv3;
  out[0] = b0;
  const std::byte mask_bit = h.masked ? k_mask_bit : std::byte{0};
  std::size_t pos = 2;
  if (h.length < 126) {
    out[1] = mask_bit | static_cast<std::byte>(h.length);
  } else {
    const std::size_t n = h.length <= 0xFFFF ? 2 : 8;
    out[1] = mask_bit | static_cast<std::byte>(n == 2 ? 126 : 127);
    for (std::size_t i = 0; i < n; ++i)
      out[pos + i] = static_cast<std::byte>(h.length >> (8 * (n - 1 - i)));
    pos += n;
  }
  if (h.masked) {
    std::memcpy(out + pos, h.mask.data(), 4);
    pos += 4;
  }
  return pos;
}

std::size_t apply_mask(const std::byte* src, std::byte* dst, std::size_t n,
                       std::array<std::byte, 4> key, std::size_t phase) noexcept {
  phase &= 3;
  std::size_t i = 0;
  if (n >= 8) {
    if (n >= 64) {
      // Align the destination so vector stores never straddle a cache line. The head may end
      // at any key phase: the word key below is rotated to whatever phase it reaches.
      const std::size_t misalign = reinterpret_cast<std::uintptr_t>(dst) & 15;
      const std::size_t head = misalign == 0 ? 0 : 16 - misalign;
      for (; i < head; ++i, phase = (phase + 1) & 3) dst[i] = src[i] ^ key[phase];
    }
    std::byte rotated[8];
    for (std::size_t j = 0; j < 8; ++j) rotated[j] = key[(phase + j) & 3];
    std::uint64_t k64;
    std::memcpy(&k64, rotated, 8);
    // Every step below is a multiple of 4 bytes, so the phase is unchanged after it.
#if defined(__GNUC__)
    // 16-byte vectors held in registers (SSE2 on x86-64, NEON on ARM). The plain word loop
    // runs at half this speed: GCC 12 vectorises it but also keeps dead stores of the word
    // temporaries to the stack, doubling the stores per byte (measured in bench/RESULTS.md).
    using Block = std::uint64_t __attribute__((vector_size(16)));
    const Block kv = {k64, k64};
    for (; n - i >= 64; i += 64) {
      Block a, b, c, d;
      std::memcpy(&a, src + i, 16);
      std::memcpy(&b, src + i + 16, 16);
      std::memcpy(&c, src + i + 32, 16);
      std::memcpy(&d, src + i + 48, 16);
      a ^= kv;
      b ^= kv;
      c ^= kv;
      d ^= kv;
      std::memcpy(dst + i, &a, 16);
      std::memcpy(dst + i + 16, &b, 16);
      std::memcpy(dst + i + 32, &c, 16);
      std::memcpy(dst + i + 48, &d, 16);
    }
#endif
    for (; n - i >= 8; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, src + i, 8);
      w ^= k64;
      std::memcpy(dst + i, &w, 8);
    }
  }
  for (; i < n; ++i, phase = (phase + 1) & 3) dst[i] = src[i] ^ key[phase];
  return phase;
}

FrameDecoder::Result FrameDecoder::fail(std::uint16_t code, std::string_view message) noexcept {
  error_ = {code, message};
  state_ = State::failed;
  return {Status::error, {}};
}

bool FrameDecoder::validate_header() noexcept {
  const std::string_view rule =
      framing_violation(header_, role_, rsv1_allowed_, message_opcode_ != Opcode::continuation);
  if (!rule.empty()) {
    fail(close_code::protocol_error, rule);
    return false;
  }
  if (is_control(header_.opcode)) return true;
  if (frame_starts_message()) message_size_ = 0;
  // Decided from the declared length alone, so a frame claiming 2^62 bytes is refused before
  // a single payload byte is read or buffered. Written so the sum cannot overflow.
  if (message_size_ > max_message_size_ || header_.length > max_message_size_ - message_size_) {
    fail(close_code::message_too_big, "message exceeds the size limit");
    return false;
  }
  message_size_ += header_.length;
  // Set for unfragmented messages too, so message_opcode() names the payload's type while it
  // is delivered; the frame_end of a FIN data frame closes the message again.
  if (frame_starts_message()) message_opcode_ = header_.opcode;
  return true;
}

FrameDecoder::Result FrameDecoder::next(MutableByteView& input) noexcept {
  switch (state_) {
    case State::failed:
      return {Status::error, {}};

    case State::header: {
      const std::byte* raw;
      if (spill_len_ == 0 && input.size() >= 2 && input.size() >= wire_header_size(input.data())) {
        // Common case: the whole header is in this read; decode it where it lies.
        raw = input.data();
        input = input.subspan(wire_header_size(raw));
      } else {
        // Gather the header in the spill: first the two bytes that give its size, then the rest.
        for (;;) {
          const std::size_t want = spill_len_ < 2 ? 2 : wire_header_size(spill_.data());
          if (spill_len_ >= want) break;
          const std::size_t take = std::min(want - spill_len_, input.size());
          if (take == 0) return {Status::need_more, {}};
          std::memcpy(spill_.data() + spill_len_, input.data(), take);
          spill_len_ = static_cast<std::uint8_t>(spill_len_ + take);
          input = input.subspan(take);
        }
        raw = spill_.data();
        spill_len_ = 0;
      }
      const std::string_view violation = decode_header(raw, header_);
      if (!violation.empty()) return fail(close_code::protocol_error, violation);
      if (!validate_header()) return {Status::error, {}};
      remaining_ = header_.length;
      mask_phase_ = 0;
      state_ = remaining_ == 0 ? State::frame_end : State::payload;
      return {Status::header, {}};
    }

    case State::payload: {
      if (input.empty()) return {Status::need_more, {}};
      const std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(input.size())));
      MutableByteView piece = input.first(n);
      if (header_.masked)
        mask_phase_ = static_cast<std::uint8_t>(
            apply_mask(piece.data(), piece.data(), n, header_.mask, mask_phase_));
      input = input.subspan(n);
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::frame_end;
      return {Status::payload, piece};
    }

    case State::frame_end:
      if (!is_control(header_.opcode) && header_.fin) {
        message_opcode_ = Opcode::continuation;
        message_size_ = 0;
      }
      state_ = State::header;
      return {Status::frame_end, {}};
  }
  return {Status::error, {}};  // unreachable: every state returns above
}

void FrameDecoder::reset() noexcept {
  // Configuration (role, size limit, RSV1 permission) survives; only stream state is cleared.
  header_ = {};
  error_ = {};
  remaining_ = 0;
  message_size_ = 0;
  spill_ = {};
  spill_len_ = 0;
  mask_phase_ = 0;
  state_ = State::header;
  message_opcode_ = Opcode::continuation;
}

bool parse_close_payload(ByteView payload, ClosePayload& out, FrameError& error) noexcept {
  if (payload.empty()) {
    out = {};
    return true;
  }
  if (payload.size() == 1) {
    error = {close_code::protocol_error, "close payload of one byte"};
    return false;
  }
  const auto code = static_cast<std::uint16_t>((static_cast<unsigned>(payload[0]) << 8) |
                                               static_cast<unsigned>(payload[1]));
  if (!is_valid_wire_close_code(code)) {
    error = {close_code::protocol_error, "close code not allowed on the wire"};
    return false;
  }
  const ByteView reason = payload.subspan(2);
  if (!is_valid_utf8(reason)) {
    error = {close_code::invalid_payload, "close reason is not valid UTF-8"};
    return false;
  }
  out = {code, as_text(reason)};
  return true;
}

}  // namespace tether
