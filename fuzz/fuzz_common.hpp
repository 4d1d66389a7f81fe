// Shared by the fuzz targets: checks that abort (so libFuzzer records the input), input
// slicing, and a strict parser for what a session writes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "tether/frame_codec.hpp"
#include "tether/protocol.hpp"
#include "tether/utf8.hpp"

// assert() vanishes under NDEBUG, which CMake's release build types define; these never do.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace tether::fuzz {

/// Reads the fuzzer's input front to back; past the end it yields zeros, so a short input is
/// still a valid (if dull) test case rather than one the target rejects.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::size_t left() const { return size_ - pos_; }
  std::string_view take(std::size_t n) {
    n = std::min(n, left());
    std::string_view s(reinterpret_cast<const char*>(data_) + pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view rest() { return take(left()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

/// Chunk sizes for feeding bytes, from one input byte: the low 3 bits choose the largest
/// chunk (everything at once, 1 byte, or up to 4..128 bytes), the rest seed a small LCG.
/// Seeding from the input keeps every run reproducible while letting the fuzzer steer the
/// split points that incremental parsers get wrong (a header cut after 1, 2 or 9 bytes...).
class Chunker {
 public:
  explicit Chunker(std::uint8_t spec) : state_(spec >> 3) {
    const unsigned mode = spec & 7;
    max_ = mode == 0   ? std::numeric_limits<std::size_t>::max()
           : mode == 1 ? 1
                       : std::size_t{1} << mode;
  }
  std::size_t next() {
    if (max_ == std::numeric_limits<std::size_t>::max() || max_ == 1) return max_;
    state_ = state_ * 1103515245u + 12345u;
    return 1 + (state_ >> 16) % max_;
  }

 private:
  std::uint32_t state_;
  std::size_t max_;
};

inline std::vector<std::byte> to_bytes(std::string_view s) {
  auto b = as_bytes(s);
  return {b.begin(), b.end()};
}

/// One frame of a session's output, payload unmasked.
struct WireFrame {
  Opcode opcode;
  bool fin;
  bool rsv1;
  std::vector<std::byte> payload;
};

/// Parses everything a session wrote, written independently of FrameDecoder, and checks every
/// rule RFC 6455 puts on a sender: whole frames only, masking by role, shortest length
/// encoding, control frames short and unfragmented, fragments in order, RSV1 only on the first
/// frame of a message and only with an extension, a valid CLOSE payload, nothing after CLOSE.
inline std::vector<WireFrame> parse_output(const std::vector<std::byte>& wire, Role sender,
                                           bool rsv1_allowed) {
  std::vector<WireFrame> frames;
  std::size_t i = 0;
  bool message_open = false;
  bool closed = false;
  auto at = [&](std::size_t k) { return static_cast<unsigned>(wire[k]); };
  while (i < wire.size()) {
    FUZZ_CHECK(!closed);  // RFC 6455 §5.5.1: nothing after our CLOSE
    FUZZ_CHECK(wire.size() - i >= 2);
    WireFrame f{};
    const unsigned b0 = at(i), b1 = at(i + 1);
    i += 2;
    f.fin = b0 & 0x80;
    f.rsv1 = b0 & 0x40;
    FUZZ_CHECK((b0 & 0x30) == 0);
    const unsigned op = b0 & 0x0F;
    FUZZ_CHECK(is_known_opcode(op));
    f.opcode = static_cast<Opcode>(op);
    const bool masked = b1 & 0x80;
    FUZZ_CHECK(masked == (sender == Role::client));
    std::uint64_t len = b1 & 0x7F;
    if (len >= 126) {
      const std::size_t n = len == 126 ? 2 : 8;
      FUZZ_CHECK(wire.size() - i >= n);
      len = 0;
      for (std::size_t k = 0; k < n; ++k) len = (len << 8) | at(i++);
      FUZZ_CHECK(n == 2 ? len >= 126 : len > 0xFFFF && (len >> 63) == 0);
    }
    unsigned key[4] = {0, 0, 0, 0};
    if (masked) {
      FUZZ_CHECK(wire.size() - i >= 4);
      for (unsigned& k : key) k = at(i++);
    }
    FUZZ_CHECK(wire.size() - i >= len);
    f.payload.assign(wire.begin() + static_cast<std::ptrdiff_t>(i),
                     wire.begin() + static_cast<std::ptrdiff_t>(i + len));
    if (masked)
      for (std::size_t k = 0; k < len; ++k) f.payload[k] ^= static_cast<std::byte>(key[k % 4]);
    i += static_cast<std::size_t>(len);

    const bool starts = f.opcode == Opcode::text || f.opcode == Opcode::binary;
    if (is_control(f.opcode)) {
      FUZZ_CHECK(f.fin && !f.rsv1 && len <= max_control_payload);
    } else {
      FUZZ_CHECK(starts ? !message_open : message_open);
      FUZZ_CHECK(!f.rsv1 || (starts && rsv1_allowed));
      message_open = !f.fin;
    }
    if (f.opcode == Opcode::close) {
      ClosePayload cp;
      FrameError err;
      FUZZ_CHECK(parse_close_payload(f.payload, cp, err));
      closed = true;
    }
    frames.push_back(std::move(f));
  }
  return frames;
}

/// The close code a CLOSE frame carries, 1005 for an empty payload.
inline std::uint16_t close_code_of(const WireFrame& f) {
  if (f.payload.size() < 2) return close_code::no_status;
  return static_cast<std::uint16_t>((static_cast<unsigned>(f.payload[0]) << 8) |
                                    static_cast<unsigned>(f.payload[1]));
}

/// Encodes one frame the plain way, for targets that build their input stream.
inline void append_frame(std::vector<std::byte>& out, unsigned opcode, bool fin, bool rsv1,
                         std::string_view payload, bool masked, std::uint32_t key) {
  auto push = [&](std::uint64_t v) { out.push_back(static_cast<std::byte>(v & 0xFF)); };
  push((fin ? 0x80u : 0u) | (rsv1 ? 0x40u : 0u) | (opcode & 0x0F));
  const std::uint64_t len = payload.size();
  const unsigned m = masked ? 0x80 : 0;
  if (len < 126) {
    push(m | len);
  } else if (len <= 0xFFFF) {
    push(m | 126);
    push(len >> 8);
    push(len);
  } else {
    push(m | 127);
    for (int s = 56; s >= 0; s -= 8) push(len >> s);
  }
  const unsigned k[4] = {key >> 24 & 0xFF, key >> 16 & 0xFF, key >> 8 & 0xFF, key & 0xFF};
  if (masked)
    for (unsigned b : k) push(b);
  const std::size_t start = out.size();
  const ByteView bytes = as_bytes(payload);
  out.insert(out.end(), bytes.begin(), bytes.end());
  if (masked)
    for (std::size_t i = 0; i < payload.size(); ++i)
      out[start + i] ^= static_cast<std::byte>(k[i % 4]);
}

}  // namespace tether::fuzz
