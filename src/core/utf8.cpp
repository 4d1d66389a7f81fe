// UTF-8 validation with a deterministic finite automaton.
//
// Why a DFA: its whole state between bytes is one small integer, so a code point split
// across WebSocket fragments (or TCP reads) needs no buffering, and it rejects at the first
// byte that cannot continue a valid sequence, which RFC 6455 §8.1 fail-fast needs. The inner
// step is two table loads and no data-dependent branch on the byte value. The design follows
// the idea of Björn Höhrmann's UTF-8 decoder (byte classes feeding a state table), written
// afresh here with states that validate only. A SIMD validator such as simdutf would be
// faster on long multibyte text but Debian 12 does not package it; text is mostly ASCII, and
// the 8-bytes-at-a-time ASCII skip below covers that case.
#include <array>
#include <cstdint>
#include <cstring>

#include "tether/utf8.hpp"

namespace tether {
namespace {

// Byte classes: bytes in one class behave identically in every state.
enum : std::uint8_t {
  k_ascii,     // 00..7F
  k_cont_lo,   // 80..8F
  k_cont_mid,  // 90..9F
  k_cont_hi,   // A0..BF
  k_never,     // C0, C1 (always overlong), F5..FF (beyond U+10FFFF)
  k_lead2,     // C2..DF
  k_lead3_e0,  // E0: second byte A0..BF, else overlong
  k_lead3,     // E1..EC, EE, EF
  k_lead3_ed,  // ED: second byte 80..9F, else a surrogate
  k_lead4_f0,  // F0: second byte 90..BF, else overlong
  k_lead4,     // F1..F3
  k_lead4_f4,  // F4: second byte 80..8F, else beyond U+10FFFF
  k_class_count
};

// States. 0 and 1 must match Utf8Validator::accept and ::reject.
enum : std::uint8_t {
  s_accept,
  s_reject,
  s_need1,  // one continuation byte of any kind left
  s_need2,  // two left
  s_need3,  // three left
  s_e0,     // after E0
  s_ed,     // after ED
  s_f0,     // after F0
  s_f4,     // after F4
  s_state_count
};

constexpr std::array<std::uint8_t, 256> make_classes() {
  std::array<std::uint8_t, 256> c{};
  for (int b = 0; b < 256; ++b) {
    std::uint8_t k = k_never;
    if (b <= 0x7F)
      k = k_ascii;
    else if (b <= 0x8F)
      k = k_cont_lo;
    else if (b <= 0x9F)
      k = k_cont_mid;
    else if (b <= 0xBF)
      k = k_cont_hi;
    else if (b <= 0xC1)
      k = k_never;
    else if (b <= 0xDF)
      k = k_lead2;
    else if (b == 0xE0)
      k = k_lead3_e0;
    else if (b == 0xED)
      k = k_lead3_ed;
    else if (b <= 0xEF)
      k = k_lead3;
    else if (b == 0xF0)
      k = k_lead4_f0;
    else if (b <= 0xF3)
      k = k_lead4;
    else if (b == 0xF4)
      k = k_lead4_f4;
    c[static_cast<std::size_t>(b)] = k;
  }
  return c;
}

using Row = std::array<std::uint8_t, k_class_count>;

constexpr std::array<Row, s_state_count> make_transitions() {
  std::array<Row, s_state_count> t{};
  for (auto& row : t) row.fill(s_reject);  // anything not listed below is impossible

  Row& a = t[s_accept];
  a[k_ascii] = s_accept;
  a[k_lead2] = s_need1;
  a[k_lead3_e0] = s_e0;
  a[k_lead3] = s_need2;
  a[k_lead3_ed] = s_ed;
  a[k_lead4_f0] = s_f0;
  a[k_lead4] = s_need3;
  a[k_lead4_f4] = s_f4;

  for (auto k : {k_cont_lo, k_cont_mid, k_cont_hi}) {
    t[s_need1][k] = s_accept;
    t[s_need2][k] = s_need1;
    t[s_need3][k] = s_need2;
  }
  t[s_e0][k_cont_hi] = s_need1;
  t[s_ed][k_cont_lo] = s_need1;
  t[s_ed][k_cont_mid] = s_need1;
  t[s_f0][k_cont_mid] = s_need2;
  t[s_f0][k_cont_hi] = s_need2;
  t[s_f4][k_cont_lo] = s_need2;
  return t;
}

constexpr auto k_classes = make_classes();
constexpr auto k_transitions = make_transitions();

static_assert(s_accept == 0 && s_reject == 1, "Utf8Validator::accept/reject must match");

constexpr std::uint64_t k_high_bits = 0x8080808080808080ull;

inline std::uint64_t load64(const std::byte* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

bool Utf8Validator::feed(ByteView bytes) noexcept {
  std::uint8_t state = state_;
  if (state == s_reject) return false;
  const std::byte* p = bytes.data();
  const std::byte* const end = p + bytes.size();
  while (p != end) {
    if (state == s_accept) {
      // Between code points, skip runs of ASCII a word at a time; most text is ASCII.
      while (end - p >= 16 && ((load64(p) | load64(p + 8)) & k_high_bits) == 0) p += 16;
      if (end - p >= 8 && (load64(p) & k_high_bits) == 0) p += 8;
      if (p == end) break;
    }
    state = k_transitions[state][k_classes[static_cast<std::uint8_t>(*p)]];
    ++p;
    if (state == s_reject) break;  // no later byte can make it valid again
  }
  state_ = state;
  return state != s_reject;
}

bool is_valid_utf8(ByteView bytes) noexcept {
  Utf8Validator v;
  return v.feed(bytes) && v.complete();
}

}  // namespace tether
