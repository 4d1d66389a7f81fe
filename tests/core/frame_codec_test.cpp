#include "tether/frame_codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tether/protocol.hpp"

namespace tether {
namespace {

using Bytes = std::vector<std::byte>;
using Status = FrameDecoder::Status;

Bytes bytes(std::initializer_list<int> values) {
  Bytes out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}
Bytes text_bytes(std::string_view s) {
  const ByteView v = as_bytes(s);
  return {v.begin(), v.end()};
}
Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes pattern(std::size_t n) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>(i * 7 + 3);
  return out;
}

constexpr std::array<std::byte, 4> k_rfc_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21},
                                             std::byte{0x3d}};

// Everything the decoder reported, with payload pieces joined, so that feeding the same bytes
// in different chunkings can be compared.
struct DecodedFrame {
  FrameHeader header;
  Opcode message_opcode_at_header = Opcode::continuation;
  Bytes payload;
  bool ended = false;
};
struct Decoded {
  std::vector<DecodedFrame> frames;
  std::optional<FrameError> error;
  std::size_t unconsumed = 0;  // bytes left in the chunk that produced the error
};

bool same_header(const FrameHeader& a, const FrameHeader& b) {
  return a.opcode == b.opcode && a.fin == b.fin && a.rsv1 == b.rsv1 && a.rsv2 == b.rsv2 &&
         a.rsv3 == b.rsv3 && a.masked == b.masked && a.length == b.length &&
         (!a.masked || a.mask == b.mask);
}

bool operator==(const Decoded& a, const Decoded& b) {
  if (a.frames.size() != b.frames.size()) return false;
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    const DecodedFrame& x = a.frames[i];
    const DecodedFrame& y = b.frames[i];
    if (!same_header(x.header, y.header) || x.payload != y.payload || x.ended != y.ended ||
        x.message_opcode_at_header != y.message_opcode_at_header)
      return false;
  }
  if (a.error.has_value() != b.error.has_value()) return false;
  return !a.error ||
         (a.error->close_code == b.error->close_code && a.error->message == b.error->message);
}

std::ostream& operator<<(std::ostream& os, const Decoded& d) {
  for (const DecodedFrame& f : d.frames)
    os << "[" << opcode_name(f.header.opcode) << " fin=" << f.header.fin
       << " len=" << f.header.length << " got=" << f.payload.size() << " end=" << f.ended << "] ";
  if (d.error) os << "error " << d.error->close_code << " " << d.error->message;
  return os;
}

// Feeds `wire` (a copy: payload is unmasked in place) in chunks whose sizes `next_chunk`
// returns, and checks the invariants every run must keep: non-empty payload pieces at the
// front of the caller's input, header/payload/frame_end order, and a sticky error.
template <class NextChunk>
Decoded decode_with(FrameDecoder& dec, Bytes wire, NextChunk next_chunk) {
  Decoded out;
  bool in_frame = false;
  std::size_t off = 0;
  // Each event consumes input or ends a frame, so a correct decoder needs far fewer calls.
  std::size_t budget = 4 * wire.size() + 16;
  do {
    const std::size_t len = std::min(next_chunk(), wire.size() - off);
    MutableByteView in(wire.data() + off, len);
    off += len;
    for (;;) {
      const std::byte* before = in.data();
      const std::size_t before_size = in.size();
      const FrameDecoder::Result r = dec.next(in);
      if (budget-- == 0) {
        ADD_FAILURE() << "decoder makes no progress";
        return out;
      }
      if (r.status == Status::need_more) {
        EXPECT_TRUE(in.empty()) << "need_more with input left";
        break;
      }
      if (r.status == Status::error) {
        out.error = dec.error();
        out.unconsumed = in.size();
        EXPECT_FALSE(dec.error().message.empty());
        // Sticky: further calls, even with a well-formed frame, report the error again.
        Bytes good = bytes({0x82, 0x00});
        for (MutableByteView again : {in, MutableByteView(good), MutableByteView(good)}) {
          const std::size_t size = again.size();
          EXPECT_EQ(dec.next(again).status, Status::error) << "error must be sticky";
          EXPECT_EQ(again.size(), size) << "a failed decoder consumes nothing";
        }
        EXPECT_EQ(dec.error().close_code, out.error->close_code);
        return out;
      }
      if (r.status == Status::header) {
        EXPECT_FALSE(in_frame) << "header inside a frame";
        in_frame = true;
        out.frames.push_back({dec.header(), dec.message_opcode(), {}, false});
        EXPECT_EQ(dec.remaining(), dec.header().length);
      } else if (r.status == Status::payload) {
        EXPECT_TRUE(in_frame);
        EXPECT_FALSE(r.payload.empty()) << "empty payload piece";
        EXPECT_EQ(r.payload.data(), before) << "payload must be the front of the input";
        EXPECT_EQ(in.size(), before_size - r.payload.size());
        out.frames.back().payload.insert(out.frames.back().payload.end(), r.payload.begin(),
                                         r.payload.end());
      } else if (r.status == Status::frame_end) {
        EXPECT_TRUE(in_frame) << "frame_end without header";
        EXPECT_EQ(dec.remaining(), 0u);
        in_frame = false;
        out.frames.back().ended = true;
      }
    }
  } while (off < wire.size());
  return out;
}

Decoded decode(FrameDecoder& dec, Bytes wire, std::size_t chunk = SIZE_MAX) {
  return decode_with(dec, std::move(wire), [chunk] { return chunk; });
}

Decoded decode(Role role, const Bytes& wire, std::size_t chunk = SIZE_MAX,
               std::uint64_t max_size = default_max_message_size, bool rsv1 = false) {
  FrameDecoder dec(role, max_size);
  dec.set_rsv1_allowed(rsv1);
  return decode(dec, wire, chunk);
}

// Decoding whole, one byte at a time and in a few odd chunk sizes must agree exactly.
Decoded decode_every_way(Role role, const Bytes& wire,
                         std::uint64_t max_size = default_max_message_size, bool rsv1 = false) {
  const Decoded whole = decode(role, wire, SIZE_MAX, max_size, rsv1);
  for (std::size_t chunk : {1, 2, 3, 5, 13}) {
    EXPECT_EQ(decode(role, wire, chunk, max_size, rsv1), whole) << "chunk size " << chunk;
  }
  return whole;
}

Bytes encode(const FrameHeader& h, const Bytes& payload) {
  std::array<std::byte, max_frame_header_size> head{};
  const std::size_t n = encode_frame_header(h, head.data());
  EXPECT_EQ(n, frame_header_size(h.length, h.masked));
  Bytes out(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(n));
  const std::size_t start = out.size();
  out.insert(out.end(), payload.begin(), payload.end());
  if (h.masked) apply_mask(out.data() + start, out.data() + start, payload.size(), h.mask);
  return out;
}

FrameHeader make_header(Opcode op, std::uint64_t length, bool fin = true,
                        std::optional<std::array<std::byte, 4>> mask = std::nullopt) {
  FrameHeader h;
  h.opcode = op;
  h.fin = fin;
  h.length = length;
  h.masked = mask.has_value();
  if (mask) h.mask = *mask;
  return h;
}

// ---------------------------------------------------------------------------------------------
// RFC 6455 §5.7 examples, byte-exact in both directions.

struct RfcExample {
  const char* name;
  Role decoder_role;  // the side that receives these bytes
  Bytes wire;
  std::vector<FrameHeader> headers;
  std::vector<Bytes> payloads;
};

std::vector<RfcExample> rfc_examples() {
  const Bytes hello = text_bytes("Hello");
  return {
      {"unmasked text",
       Role::client,
       bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}),
       {make_header(Opcode::text, 5)},
       {hello}},
      {"masked text",
       Role::server,
       bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
       {make_header(Opcode::text, 5, true, k_rfc_key)},
       {hello}},
      {"fragmented unmasked text",
       Role::client,
       bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}),
       {make_header(Opcode::text, 3, false), make_header(Opcode::continuation, 2)},
       {text_bytes("Hel"), text_bytes("lo")}},
      {"unmasked ping",
       Role::client,
       bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}),
       {make_header(Opcode::ping, 5)},
       {hello}},
      {"masked pong",
       Role::server,
       bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
       {make_header(Opcode::pong, 5, true, k_rfc_key)},
       {hello}},
      {"256-byte binary",
       Role::client,
       concat({bytes({0x82, 0x7E, 0x01, 0x00}), pattern(256)}),
       {make_header(Opcode::binary, 256)},
       {pattern(256)}},
      {"64KiB binary",
       Role::client,
       concat(
           {bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}), pattern(65536)}),
       {make_header(Opcode::binary, 65536)},
       {pattern(65536)}},
  };
}

TEST(FrameCodecRfc, DecodesSection57Examples) {
  for (const RfcExample& ex : rfc_examples()) {
    SCOPED_TRACE(ex.name);
    const Decoded d = decode_every_way(ex.decoder_role, ex.wire);
    EXPECT_FALSE(d.error.has_value()) << d;
    ASSERT_EQ(d.frames.size(), ex.headers.size());
    for (std::size_t i = 0; i < d.frames.size(); ++i) {
      EXPECT_TRUE(same_header(d.frames[i].header, ex.headers[i])) << d;
      EXPECT_EQ(d.frames[i].payload, ex.payloads[i]);
      EXPECT_TRUE(d.frames[i].ended);
    }
  }
}

TEST(FrameCodecRfc, EncodesSection57Examples) {
  for (const RfcExample& ex : rfc_examples()) {
    SCOPED_TRACE(ex.name);
    Bytes wire;
    for (std::size_t i = 0; i < ex.headers.size(); ++i) {
      const Bytes frame = encode(ex.headers[i], ex.payloads[i]);
      wire.insert(wire.end(), frame.begin(), frame.end());
    }
    EXPECT_EQ(wire, ex.wire);
  }
}

TEST(FrameCodecEncode, UsesShortestLengthAtBoundaries) {
  struct Case {
    std::uint64_t length;
    Bytes expected_prefix;
  };
  const Case cases[] = {
      {0, bytes({0x82, 0x00})},
      {125, bytes({0x82, 0x7D})},
      {126, bytes({0x82, 0x7E, 0x00, 0x7E})},
      {0xFFFF, bytes({0x82, 0x7E, 0xFF, 0xFF})},
      {0x10000, bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0})},
      {0x7FFFFFFFFFFFFFFFull, bytes({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})},
  };
  for (const Case& c : cases) {
    std::array<std::byte, max_frame_header_size> out{};
    const std::size_t n = encode_frame_header(make_header(Opcode::binary, c.length), out.data());
    ASSERT_EQ(n, c.expected_prefix.size()) << c.length;
    EXPECT_TRUE(std::equal(c.expected_prefix.begin(), c.expected_prefix.end(), out.begin()))
        << c.length;
  }
}

TEST(FrameCodecEncode, WritesFlagBitsAndMaskKey) {
  FrameHeader h = make_header(Opcode::text, 0x1234, false, k_rfc_key);
  h.rsv1 = h.rsv2 = h.rsv3 = true;
  std::array<std::byte, max_frame_header_size> out{};
  ASSERT_EQ(encode_frame_header(h, out.data()), 8u);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 8),
            bytes({0x71, 0xFE, 0x12, 0x34, 0x37, 0xfa, 0x21, 0x3d}));
}

TEST(FrameCodecEncode, RoundTripsEveryLengthClassAndFlag) {
  for (std::uint64_t len : {0ull, 1ull, 125ull, 126ull, 65535ull, 65536ull, 1ull << 40}) {
    for (bool masked : {false, true}) {
      FrameHeader h =
          make_header(Opcode::binary, len, true, masked ? std::optional(k_rfc_key) : std::nullopt);
      std::array<std::byte, max_frame_header_size> out{};
      const std::size_t n = encode_frame_header(h, out.data());
      FrameDecoder dec(masked ? Role::server : Role::client, UINT64_MAX >> 1);
      MutableByteView in(out.data(), n);
      ASSERT_EQ(dec.next(in).status, Status::header) << len;
      EXPECT_TRUE(in.empty());
      EXPECT_TRUE(same_header(dec.header(), h)) << len;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoder behaviour.

TEST(FrameDecoder, EmptyInputNeedsMore) {
  FrameDecoder dec(Role::client);
  MutableByteView in;
  EXPECT_EQ(dec.next(in).status, Status::need_more);
}

TEST(FrameDecoder, EmptyFrameGivesHeaderThenFrameEndWithoutMoreInput) {
  FrameDecoder dec(Role::client);
  Bytes wire = bytes({0x81, 0x00});
  MutableByteView in(wire);
  EXPECT_EQ(dec.next(in).status, Status::header);
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(dec.next(in).status, Status::frame_end);
  EXPECT_EQ(dec.next(in).status, Status::need_more);
}

TEST(FrameDecoder, LastPayloadPieceIsFollowedByFrameEndEvenWithNoInput) {
  FrameDecoder dec(Role::client);
  Bytes wire = bytes({0x82, 0x02, 0xAA, 0xBB});
  MutableByteView in(wire);
  ASSERT_EQ(dec.next(in).status, Status::header);
  const auto r = dec.next(in);
  ASSERT_EQ(r.status, Status::payload);
  EXPECT_EQ(r.payload.size(), 2u);
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(dec.next(in).status, Status::frame_end);
}

TEST(FrameDecoder, UnmasksInPlaceInTheCallersBuffer) {
  FrameDecoder dec(Role::server);
  Bytes wire = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  MutableByteView in(wire);
  ASSERT_EQ(dec.next(in).status, Status::header);
  const auto r = dec.next(in);
  ASSERT_EQ(r.status, Status::payload);
  EXPECT_EQ(r.payload.data(), wire.data() + 6);
  EXPECT_EQ(as_text(ByteView(wire).subspan(6)), "Hello");
}

TEST(FrameDecoder, StopsAtFrameBoundaryLeavingNextFrameInInput) {
  FrameDecoder dec(Role::client);
  Bytes wire = bytes({0x82, 0x01, 0xAA, 0x82, 0x01, 0xBB});
  MutableByteView in(wire);
  ASSERT_EQ(dec.next(in).status, Status::header);
  ASSERT_EQ(dec.next(in).status, Status::payload);
  EXPECT_EQ(in.size(), 3u);  // the payload never swallows the next header
  ASSERT_EQ(dec.next(in).status, Status::frame_end);
  EXPECT_EQ(in.size(), 3u);
  ASSERT_EQ(dec.next(in).status, Status::header);
}

TEST(FrameDecoder, TracksOpenMessageAcrossInterleavedControlFrames) {
  FrameDecoder dec(Role::client);
  // text "a" (FIN=0), ping, continuation "b" (FIN=0), pong, continuation "c" (FIN=1).
  Bytes wire = bytes({0x01, 0x01, 'a', 0x89, 0x00, 0x00, 0x01, 'b', 0x8A, 0x00, 0x80, 0x01, 'c'});
  const Decoded d = decode(dec, wire);
  ASSERT_FALSE(d.error) << d;
  ASSERT_EQ(d.frames.size(), 5u);
  for (const DecodedFrame& f : d.frames) EXPECT_EQ(f.message_opcode_at_header, Opcode::text);
  EXPECT_EQ(dec.message_opcode(), Opcode::continuation);  // closed by the FIN continuation

  FrameDecoder dec2(Role::client);
  Bytes first = bytes({0x02, 0x01, 'x'});
  decode(dec2, first);
  EXPECT_EQ(dec2.message_opcode(), Opcode::binary);  // still open between fragments
}

TEST(FrameDecoder, UnfragmentedMessageLeavesNoMessageOpen) {
  FrameDecoder dec(Role::client);
  const Decoded d = decode(dec, bytes({0x81, 0x01, 'a', 0x82, 0x01, 'b'}));
  ASSERT_FALSE(d.error) << d;
  EXPECT_EQ(d.frames[0].message_opcode_at_header, Opcode::text);
  EXPECT_EQ(d.frames[1].message_opcode_at_header, Opcode::binary);
  EXPECT_EQ(dec.message_opcode(), Opcode::continuation);
}

TEST(FrameDecoder, FrameStartsMessageOnlyForTextAndBinary) {
  FrameDecoder dec(Role::client);
  Bytes wire = bytes({0x01, 0x00, 0x89, 0x00, 0x80, 0x00});
  MutableByteView in(wire);
  std::vector<bool> starts;
  FrameDecoder::Result r;
  while ((r = dec.next(in)).status != Status::need_more && r.status != Status::error)
    if (r.status == Status::header) starts.push_back(dec.frame_starts_message());
  EXPECT_NE(r.status, Status::error) << dec.error().message;
  EXPECT_EQ(starts, (std::vector<bool>{true, false, false}));
}

TEST(FrameDecoder, ResetAfterErrorStartsAFreshStream) {
  FrameDecoder dec(Role::client);
  EXPECT_TRUE(decode(dec, bytes({0x83, 0x00})).error);
  dec.reset();
  const Decoded d = decode(dec, bytes({0x81, 0x01, 'a'}));
  EXPECT_FALSE(d.error) << d;
  EXPECT_EQ(d.frames.size(), 1u);
}

TEST(FrameDecoder, ResetDropsAPartialHeaderAndOpenMessage) {
  FrameDecoder dec(Role::client);
  decode(dec, bytes({0x01, 0x01, 'a', 0x82, 0x7E}));  // open message, then half a header
  dec.reset();
  EXPECT_EQ(dec.message_opcode(), Opcode::continuation);
  const Decoded d = decode(dec, bytes({0x81, 0x01, 'z'}));
  EXPECT_FALSE(d.error) << d;
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.frames[0].payload, bytes({'z'}));
}

TEST(FrameDecoder, MaskPhaseCarriesAcrossPayloadPieces) {
  // A long masked frame cut at every odd offset must unmask to the original.
  const Bytes payload = pattern(1000);
  const Bytes wire = encode(make_header(Opcode::binary, payload.size(), true, k_rfc_key), payload);
  for (std::size_t chunk : {1, 3, 7, 33, 999}) {
    const Decoded d = decode(Role::server, wire, chunk);
    ASSERT_FALSE(d.error) << d;
    EXPECT_EQ(d.frames.at(0).payload, payload) << "chunk " << chunk;
  }
}

// ---------------------------------------------------------------------------------------------
// Every framing rule, with its close code, whole and split.

struct ErrorCase {
  const char* name;
  Role role;
  Bytes wire;
  std::uint16_t code;
  bool rsv1_allowed = false;
  std::uint64_t max_size = default_max_message_size;
};

Bytes masked_header(int b0, int len7, std::initializer_list<int> ext = {}) {
  Bytes out = bytes({b0, 0x80 | len7});
  for (int e : ext) out.push_back(static_cast<std::byte>(e));
  for (std::byte k : k_rfc_key) out.push_back(k);
  return out;
}

std::vector<ErrorCase> error_cases() {
  std::vector<ErrorCase> c = {
      {"RSV1 without extension", Role::client, bytes({0xC1, 0x00}), 1002},
      {"RSV1 on continuation", Role::client, bytes({0x01, 0x00, 0xC0, 0x00}), 1002, true},
      {"RSV1 on ping", Role::client, bytes({0xC9, 0x00}), 1002, true},
      {"RSV1 on close", Role::client, bytes({0xC8, 0x00}), 1002, true},
      {"RSV2", Role::client, bytes({0xA1, 0x00}), 1002, true},
      {"RSV3", Role::client, bytes({0x91, 0x00}), 1002, true},
      {"ping without FIN", Role::client, bytes({0x09, 0x00}), 1002},
      {"close without FIN", Role::client, bytes({0x08, 0x00}), 1002},
      {"pong of 126 bytes", Role::client, concat({bytes({0x8A, 0x7E, 0x00, 0x7E}), pattern(126)}),
       1002},
      {"continuation without message", Role::client, bytes({0x80, 0x00}), 1002},
      {"unfinished continuation without message", Role::client, bytes({0x00, 0x00}), 1002},
      {"text inside fragmented text", Role::client, bytes({0x01, 0x00, 0x81, 0x00}), 1002},
      {"binary inside fragmented text", Role::client, bytes({0x01, 0x00, 0x02, 0x00}), 1002},
      {"text after control inside fragmented binary", Role::client,
       bytes({0x02, 0x00, 0x89, 0x00, 0x81, 0x00}), 1002},
      {"64-bit length with top bit", Role::client,
       bytes({0x82, 0x7F, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}), 1002},
      {"16-bit length for 125", Role::client, bytes({0x82, 0x7E, 0x00, 0x7D}), 1002},
      {"16-bit length for 0", Role::client, bytes({0x82, 0x7E, 0x00, 0x00}), 1002},
      {"64-bit length for 0xFFFF", Role::client,
       bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF}), 1002},
      {"64-bit length for 5", Role::client,
       bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05}), 1002},
      {"server receives unmasked", Role::server, bytes({0x81, 0x00}), 1002},
      {"server receives unmasked ping", Role::server, bytes({0x89, 0x00}), 1002},
      {"client receives masked", Role::client, masked_header(0x81, 0), 1002},
      {"single frame over limit", Role::client, concat({bytes({0x82, 11}), pattern(11)}), 1009,
       false, 10},
      {"fragments over limit", Role::client,
       concat({bytes({0x02, 6}), pattern(6), bytes({0x80, 5}), pattern(5)}), 1009, false, 10},
      {"third fragment over limit", Role::client,
       concat({bytes({0x02, 4}), pattern(4), bytes({0x00, 4}), pattern(4), bytes({0x89, 0x00}),
               bytes({0x80, 3}), pattern(3)}),
       1009, false, 10},
      {"2^62 claim", Role::server, masked_header(0x82, 127, {0x40, 0, 0, 0, 0, 0, 0, 0}), 1009},
  };
  for (int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
    c.push_back({"reserved opcode", Role::client, bytes({0x80 | op, 0x00}), 1002});
  return c;
}

TEST(FrameDecoderErrors, EveryRuleClosesWithItsCode) {
  for (const ErrorCase& c : error_cases()) {
    SCOPED_TRACE(c.name);
    const Decoded d = decode_every_way(c.role, c.wire, c.max_size, c.rsv1_allowed);
    ASSERT_TRUE(d.error.has_value()) << d;
    EXPECT_EQ(d.error->close_code, c.code) << d.error->message;
  }
}

TEST(FrameDecoderErrors, ReservedOpcodeMessageNamesTheOpcode) {
  const Decoded d = decode(Role::client, bytes({0x8B, 0x00}));
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->message, "reserved opcode 0xB");
  EXPECT_EQ(decode(Role::client, bytes({0x83, 0x00})).error->message, "reserved opcode 0x3");
}

TEST(FrameDecoderErrors, NoFrameBeforeTheBadOneIsLost) {
  // Good frames before the violation are reported in full.
  const Decoded d = decode_every_way(Role::client, bytes({0x81, 0x01, 'a', 0x89, 0x00, 0xA1, 0}));
  ASSERT_TRUE(d.error);
  ASSERT_EQ(d.frames.size(), 2u);
  EXPECT_TRUE(d.frames[1].ended);
}

// The boundaries of every rule above, on the accepting side.
TEST(FrameDecoderErrors, AcceptsTheLegalNeighbours) {
  struct Ok {
    const char* name;
    Role role;
    Bytes wire;
    bool rsv1_allowed = false;
    std::uint64_t max_size = default_max_message_size;
  };
  const Ok cases[] = {
      {"RSV1 on text with extension", Role::client, bytes({0xC1, 0x00}), true},
      {"RSV1 on first fragment with extension", Role::client,
       bytes({0x42, 0x01, 'a', 0x80, 0x01, 'b'}), true},
      {"pong of 125 bytes", Role::client, concat({bytes({0x8A, 0x7D}), pattern(125)})},
      {"control between fragments", Role::client,
       bytes({0x01, 0x01, 'a', 0x89, 0x00, 0x88, 0x00, 0x80, 0x01, 'b'})},
      {"16-bit length for 126", Role::client,
       concat({bytes({0x82, 0x7E, 0x00, 0x7E}), pattern(126)})},
      {"64-bit length for 65536", Role::client,
       concat({bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0}), pattern(65536)})},
      {"server receives masked", Role::server, masked_header(0x81, 0)},
      {"message exactly at limit", Role::client,
       concat({bytes({0x02, 6}), pattern(6), bytes({0x80, 4}), pattern(4)}), false, 10},
      {"limit counts per message", Role::client,
       concat({bytes({0x82, 10}), pattern(10), bytes({0x82, 10}), pattern(10)}), false, 10},
      {"control frames do not count toward the limit", Role::client,
       concat({bytes({0x02, 10}), pattern(10), bytes({0x89, 5}), pattern(5), bytes({0x80, 0})}),
       false, 10},
  };
  for (const Ok& c : cases) {
    SCOPED_TRACE(c.name);
    const Decoded d = decode_every_way(c.role, c.wire, c.max_size, c.rsv1_allowed);
    EXPECT_FALSE(d.error.has_value()) << d;
    ASSERT_FALSE(d.frames.empty());
    EXPECT_TRUE(d.frames.back().ended);
  }
}

TEST(FrameDecoderErrors, HugeLengthClaimIsRefusedBeforeAnyPayloadIsTouched) {
  FrameDecoder dec(Role::server);
  const Bytes payload = pattern(64);
  Bytes wire = concat({masked_header(0x82, 127, {0x40, 0, 0, 0, 0, 0, 0, 0}), payload});
  MutableByteView in(wire);
  const auto r = dec.next(in);
  ASSERT_EQ(r.status, Status::error);
  EXPECT_EQ(dec.error().close_code, close_code::message_too_big);
  EXPECT_EQ(in.size(), payload.size()) << "only the header may be consumed";
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), wire.end() - 64)) << "not unmasked";
}

TEST(FrameDecoderErrors, TopBitLengthIsAProtocolErrorNotTooBig) {
  // Even with no size limit at all, 2^63 is malformed, not merely large.
  const Decoded d =
      decode(Role::client, bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}), SIZE_MAX, UINT64_MAX);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->close_code, close_code::protocol_error);
}

TEST(FrameDecoderErrors, LimitLoweredMidMessageStillRefuses) {
  FrameDecoder dec(Role::client, 100);
  decode(dec, concat({bytes({0x02, 50}), pattern(50)}));
  dec.set_max_message_size(40);
  const Decoded d = decode(dec, bytes({0x80, 0x00}));
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->close_code, close_code::message_too_big);
}

// ---------------------------------------------------------------------------------------------
// Chunking never changes the outcome: random valid streams, sometimes with a broken tail.

TEST(property, FrameCodecRandomChunkingMatchesWholeDecode) {
  const std::uint32_t seed = 0x7e7e5eed;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  auto uniform = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  for (int iter = 0; iter < 1500; ++iter) {
    const Role receiver = uniform(0, 1) ? Role::server : Role::client;
    Bytes wire;
    std::vector<Bytes> payloads;
    bool open = false;
    for (std::size_t f = uniform(1, 6); f > 0; --f) {
      FrameHeader h;
      const std::size_t kind = uniform(0, 9);
      if (kind < 2) {
        h.opcode = kind == 0 ? Opcode::ping : Opcode::pong;
      } else {
        h.opcode = open ? Opcode::continuation : (uniform(0, 1) ? Opcode::text : Opcode::binary);
        h.fin = uniform(0, 2) != 0 || f == 1;
        open = !h.fin;
      }
      // Mostly small frames, some 16-bit lengths and a rare 64-bit one, to keep it fast.
      const std::size_t len_class = uniform(0, 39);
      h.length = is_control(h.opcode) ? uniform(0, 125)
                 : len_class < 24     ? uniform(0, 125)
                 : len_class < 39     ? uniform(126, 1000)
                                      : uniform(65536, 65600);
      if (receiver == Role::server) {
        h.masked = true;
        for (std::byte& k : h.mask) k = static_cast<std::byte>(uniform(0, 255));
      }
      Bytes payload(h.length);
      for (std::byte& b : payload) b = static_cast<std::byte>(uniform(0, 255));
      const Bytes frame = encode(h, payload);
      wire.insert(wire.end(), frame.begin(), frame.end());
      payloads.push_back(std::move(payload));
    }
    const bool broken = uniform(0, 3) == 0;
    if (broken) {
      // A frame after the good ones that breaks a rule whatever the role and message state.
      const Bytes tails[] = {bytes({0x83, 0x00}), bytes({0xA2, 0x00}), bytes({0x09, 0x00}),
                             bytes({0x82, 0x7E, 0x00, 0x05})};
      const Bytes& t = tails[uniform(0, 3)];
      wire.insert(wire.end(), t.begin(), t.end());
    }

    const Decoded whole = decode(receiver, wire);
    ASSERT_EQ(whole.error.has_value(), broken) << "iteration " << iter << ": " << whole;
    ASSERT_EQ(whole.frames.size(), payloads.size()) << "iteration " << iter << ": " << whole;
    for (std::size_t i = 0; i < payloads.size(); ++i)
      ASSERT_EQ(whole.frames[i].payload, payloads[i]) << "iteration " << iter << " frame " << i;

    // Random cut points, including runs of one-byte chunks.
    FrameDecoder dec(receiver);
    const Decoded cut =
        decode_with(dec, wire, [&] { return uniform(0, 3) == 0 ? 1 : uniform(1, 300); });
    ASSERT_EQ(cut, whole) << "iteration " << iter;
    ASSERT_EQ(decode(receiver, wire, 1), whole) << "iteration " << iter;
  }
}

// ---------------------------------------------------------------------------------------------
// apply_mask against a byte-by-byte reference.

void reference_mask(const std::byte* src, std::byte* dst, std::size_t n,
                    std::array<std::byte, 4> key, std::size_t phase) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = src[i] ^ key[(phase + i) % 4];
}

TEST(ApplyMask, MatchesReferenceForAllLengthsPhasesAndAlignments) {
  const std::array<std::byte, 4> key{std::byte{0x12}, std::byte{0xA5}, std::byte{0x7F},
                                     std::byte{0xC3}};
  // Lengths past 64 + 15 reach the vector loop after every possible alignment head.
  alignas(16) std::byte buf[200 + 32];
  alignas(16) std::byte expected[200 + 32];
  for (std::size_t n = 0; n <= 200; ++n) {
    for (std::size_t phase = 0; phase < 4; ++phase) {
      for (std::size_t align = 0; align < 16; ++align) {
        for (std::size_t i = 0; i < sizeof buf; ++i) buf[i] = static_cast<std::byte>(i * 31 + n);
        std::copy(std::begin(buf), std::end(buf), std::begin(expected));
        reference_mask(expected + align, expected + align, n, key, phase);
        const std::size_t next = apply_mask(buf + align, buf + align, n, key, phase);
        ASSERT_EQ(next, (phase + n) % 4) << "n=" << n << " phase=" << phase;
        ASSERT_TRUE(std::equal(std::begin(buf), std::end(buf), std::begin(expected)))
            << "in place, n=" << n << " phase=" << phase << " align=" << align
            << " (bytes outside the range must be untouched too)";
      }
    }
  }
}

TEST(ApplyMask, SeparateDestinationLeavesSourceUnchanged) {
  const std::array<std::byte, 4> key{std::byte{0xDE}, std::byte{0xAD}, std::byte{0xBE},
                                     std::byte{0xEF}};
  alignas(16) std::byte src[200];
  alignas(16) std::byte dst[200 + 16];
  alignas(16) std::byte expected[200 + 16];
  for (std::size_t i = 0; i < sizeof src; ++i) src[i] = static_cast<std::byte>(i ^ 0x5A);
  const Bytes original(std::begin(src), std::end(src));
  for (std::size_t n = 0; n <= 180; ++n) {
    for (std::size_t phase = 0; phase < 4; ++phase) {
      for (std::size_t src_off : {0u, 1u, 3u, 8u}) {
        for (std::size_t dst_off : {0u, 2u, 5u, 11u}) {
          std::fill(std::begin(dst), std::end(dst), std::byte{0xCC});
          std::fill(std::begin(expected), std::end(expected), std::byte{0xCC});
          reference_mask(src + src_off, expected + dst_off, n, key, phase);
          EXPECT_EQ(apply_mask(src + src_off, dst + dst_off, n, key, phase), (phase + n) % 4);
          ASSERT_TRUE(std::equal(std::begin(dst), std::end(dst), std::begin(expected)))
              << "n=" << n << " phase=" << phase << " src_off=" << src_off
              << " dst_off=" << dst_off;
          ASSERT_TRUE(std::equal(original.begin(), original.end(), std::begin(src)))
              << "source written, n=" << n;
        }
      }
    }
  }
}

TEST(ApplyMask, IsItsOwnInverseAcrossChunks) {
  const Bytes original = pattern(4099);
  Bytes buf = original;
  std::size_t phase = 0;
  for (std::size_t off = 0; off < buf.size(); off += 37)
    phase = apply_mask(buf.data() + off, buf.data() + off,
                       std::min<std::size_t>(37, buf.size() - off), k_rfc_key, phase);
  EXPECT_NE(buf, original);
  EXPECT_EQ(apply_mask(buf.data(), buf.data(), buf.size(), k_rfc_key), 4099u % 4);
  EXPECT_EQ(buf, original);
}

// ---------------------------------------------------------------------------------------------
// CLOSE payloads (RFC 6455 §5.5.1, §7.4).

Bytes close_payload(int code, std::string_view reason = {}) {
  Bytes out = bytes({(code >> 8) & 0xFF, code & 0xFF});
  const ByteView r = as_bytes(reason);
  out.insert(out.end(), r.begin(), r.end());
  return out;
}

TEST(ParseClosePayload, CodeTable) {
  struct Case {
    int code;
    bool ok;
  };
  const Case cases[] = {
      {0, false},   {999, false},  {1000, true},  {1001, true},  {1002, true},
      {1003, true}, {1004, false}, {1005, false}, {1006, false}, {1007, true},
      {1011, true}, {1014, true},  {1015, false}, {1016, false}, {2999, false},
      {3000, true}, {4000, true},  {4999, true},  {5000, false}, {65535, false},
  };
  for (const Case& c : cases) {
    ClosePayload out;
    FrameError err;
    const Bytes p = close_payload(c.code, "bye");
    EXPECT_EQ(parse_close_payload(p, out, err), c.ok) << c.code;
    if (c.ok) {
      EXPECT_EQ(out.code, c.code);
      EXPECT_EQ(out.reason, "bye");
      EXPECT_EQ(static_cast<const void*>(out.reason.data()), static_cast<const void*>(p.data() + 2))
          << "reason must point into the payload";
    } else {
      EXPECT_EQ(err.close_code, close_code::protocol_error) << c.code;
      EXPECT_FALSE(err.message.empty());
    }
  }
}

TEST(ParseClosePayload, EmptyMeansNoStatus) {
  ClosePayload out{1000, "stale"};
  FrameError err;
  EXPECT_TRUE(parse_close_payload({}, out, err));
  EXPECT_EQ(out.code, close_code::no_status);
  EXPECT_TRUE(out.reason.empty());
}

TEST(ParseClosePayload, OneByteIsAProtocolError) {
  ClosePayload out;
  FrameError err;
  EXPECT_FALSE(parse_close_payload(bytes({0x03}), out, err));
  EXPECT_EQ(err.close_code, close_code::protocol_error);
}

TEST(ParseClosePayload, CodeWithoutReason) {
  ClosePayload out;
  FrameError err;
  EXPECT_TRUE(parse_close_payload(bytes({0x03, 0xE8}), out, err));
  EXPECT_EQ(out.code, 1000);
  EXPECT_TRUE(out.reason.empty());
}

TEST(ParseClosePayload, ReasonMustBeUtf8) {
  ClosePayload out;
  FrameError err;
  EXPECT_FALSE(parse_close_payload(close_payload(1000, "bad \xED\xA0\x80"), out, err));
  EXPECT_EQ(err.close_code, close_code::invalid_payload);
  EXPECT_FALSE(parse_close_payload(close_payload(1000, "cut \xE2\x82"), out, err));
  EXPECT_EQ(err.close_code, close_code::invalid_payload);
  const Bytes good = close_payload(1001, "au revoir \xE2\x82\xAC");  // `reason` views it
  EXPECT_TRUE(parse_close_payload(good, out, err));
  EXPECT_EQ(out.reason, "au revoir \xE2\x82\xAC");
}

TEST(ParseClosePayload, BadCodeWinsOverBadReason) {
  ClosePayload out;
  FrameError err;
  EXPECT_FALSE(parse_close_payload(close_payload(1005, "\xFF"), out, err));
  EXPECT_EQ(err.close_code, close_code::protocol_error);
}

// opcode_name lives in protocol.cpp; it is tested here because traces of decoded frames are
// its only user so far.
TEST(OpcodeName, NamesEveryOpcode) {
  EXPECT_EQ(opcode_name(Opcode::text), "TEXT");
  EXPECT_EQ(opcode_name(Opcode::binary), "BINARY");
  EXPECT_EQ(opcode_name(Opcode::continuation), "CONT");
  EXPECT_EQ(opcode_name(Opcode::ping), "PING");
  EXPECT_EQ(opcode_name(Opcode::pong), "PONG");
  EXPECT_EQ(opcode_name(Opcode::close), "CLOSE");
  EXPECT_EQ(opcode_name(static_cast<Opcode>(0x3)), "RESERVED");
  EXPECT_EQ(opcode_name(static_cast<Opcode>(0xF)), "RESERVED");
}

}  // namespace
}  // namespace tether
