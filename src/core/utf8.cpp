// UTF-8 validation with a deterministic finite automaton.
//
// Why a DFA: its whole state between bytes is one small integer, so a code point split
// across WebSocket fragments (or TCP reads) needs no buffering, and it rejects at the first
// byte that cannot continue a valid sequence, which RFC 6455 §8.1 fail-fast needs. A step of
// the automaton has no branch on the byte's value. The design follows the idea of Björn
// Höhrmann's UTF-8 decoder (byte classes feeding a state table), written afresh here with
// states that only validate. The table is then flattened into one 64-bit row per byte that
// holds the next state of every state as a 6-bit shift amount (the "shift-based DFA"
// layout): the row load does not depend on the state, so the per-byte critical path is a
// shift and a mask instead of two dependent loads, which doubled throughput on multibyte
// text (bench/RESULTS.md). A SIMD validator such as simdutf would be faster still, but
// Debian 12 does not package it; text is mostly ASCII, and the 8-bytes-at-a-time ASCII skip
// below covers that case.
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
  auto set = [&c](std::size_t lo, std::size_t hi, std::uint8_t k) {
    for (std::size_t b = lo; b <= hi; ++b) c[b] = k;
  };
  set(0x00, 0x7F, k_ascii);
  set(0x80, 0x8F, k_cont_lo);
  set(0x90, 0x9F, k_cont_mid);
  set(0xA0, 0xBF, k_cont_hi);
  set(0xC0, 0xC1, k_never);
  set(0xC2, 0xDF, k_lead2);
  set(0xE0, 0xE0, k_lead3_e0);
  set(0xE1, 0xEC, k_lead3);
  set(0xED, 0xED, k_lead3_ed);
  set(0xEE, 0xEF, k_lead3);
  set(0xF0, 0xF0, k_lead4_f0);
  set(0xF1, 0xF3, k_lead4);
  set(0xF4, 0xF4, k_lead4_f4);
  set(0xF5, 0xFF, k_never);
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

// Each state is represented by its shift amount: state s lives at bits [6s, 6s + 6) of a row.
constexpr unsigned k_bits = 6;
static_assert(s_state_count * k_bits <= 64, "the rows must hold every state");

constexpr std::array<std::uint64_t, 256> make_rows() {
  constexpr auto classes = make_classes();
  constexpr auto transitions = make_transitions();
  std::array<std::uint64_t, 256> rows{};
  for (std::size_t b = 0; b < 256; ++b)
    for (unsigned s = 0; s < s_state_count; ++s)
      rows[b] |= std::uint64_t{transitions[s][classes[b]] * k_bits} << (s * k_bits);
  return rows;
}

constexpr auto k_rows = make_rows();
constexpr std::uint64_t k_accept_shift = s_accept * k_bits;
constexpr std::uint64_t k_reject_shift = s_reject * k_bits;

static_assert(s_accept == 0 && s_reject == 1, "Utf8Validator::accept/reject must match");

constexpr std::uint64_t k_high_bits = 0x8080808080808080ull;

inline std::uint64_t load64(const std::byte* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

bool Utf8Validator::feed(ByteView bytes) noexcept {
  if (state_ == s_reject) return false;
  std::uint64_t shift = std::uint64_t{state_} * k_bits;
  const std::byte* p = bytes.data();
  const std::byte* const end = p + bytes.size();
  while (p != end) {
    if (shift == k_accept_shift && static_cast<std::uint8_t>(*p) < 0x80) {
      // Between code points, skip runs of ASCII a word at a time; most text is ASCII. Testing
      // the next byte first keeps multibyte-heavy text from paying for word loads that fail.
      while (end - p >= 16 && ((load64(p) | load64(p + 8)) & k_high_bits) == 0) p += 16;
      if (end - p >= 8 && (load64(p) & k_high_bits) == 0) p += 8;
      if (p == end) break;
    }
    shift = (k_rows[static_cast<std::uint8_t>(*p)] >> shift) & ((1u << k_bits) - 1);
    ++p;
    if (shift == k_reject_shift) break;  // no later byte can make it valid again
  }
  state_ = static_cast<std::uint8_t>(shift / k_bits);
  return state_ != s_reject;
}

bool is_valid_utf8(ByteView bytes) noexcept {
  Utf8Validator v;
  return v.feed(bytes) && v.complete();
}

}  // namespace tether
