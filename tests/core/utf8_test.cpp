#include "tether/utf8.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace tether {
namespace {

using namespace std::string_view_literals;

constexpr std::size_t npos = std::string_view::npos;

// Independent oracle, derived from the definition rather than from a transition table: the
// first byte index at which the bytes so far can no longer be the prefix of any valid UTF-8
// string (RFC 3629: shortest form only, no surrogates, nothing above U+10FFFF), or npos.
// `complete` says whether the whole input ends on a code point boundary.
std::size_t first_impossible_byte(std::string_view s, bool* complete = nullptr) {
  if (complete) *complete = true;
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const int len = b >= 0xF0 && b < 0xF8 ? 4 : b >= 0xE0 && b < 0xF0 ? 3 : b >= 0xC0 ? 2 : 0;
    if (b >= 0xF8 || len == 0) return i;
    static constexpr std::uint32_t k_min[] = {0, 0, 0x80, 0x800, 0x10000};
    static constexpr std::uint32_t k_max[] = {0, 0, 0x7FF, 0xFFFF, 0x10FFFF};
    std::uint32_t prefix = b & (0x7Fu >> len);
    for (int have = 1; have <= len; ++have) {
      const std::size_t at = i + static_cast<std::size_t>(have) - 1;
      if (at >= s.size()) {
        if (complete) *complete = false;
        return npos;
      }
      if (have > 1) {
        const unsigned c = static_cast<unsigned char>(s[at]);
        if ((c & 0xC0) != 0x80) return at;
        prefix = (prefix << 6) | (c & 0x3F);
      }
      // Code points still reachable from this prefix: [lo, hi]. Possible iff that range meets
      // the range this length may encode outside the surrogates.
      const int missing_bits = 6 * (len - have);
      const std::uint32_t lo = std::max(prefix << missing_bits, k_min[len]);
      const std::uint32_t hi = std::min(((prefix + 1) << missing_bits) - 1, k_max[len]);
      const bool only_surrogates = lo >= 0xD800 && hi <= 0xDFFF;
      if (lo > hi || only_surrogates) return at;
    }
    i += static_cast<std::size_t>(len);
  }
  return npos;
}

bool reference_valid(std::string_view s) {
  bool complete = false;
  return first_impossible_byte(s, &complete) == npos && complete;
}

std::string encode_utf8(std::uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

bool feed(Utf8Validator& v, std::string_view s) {
  return v.feed(as_bytes(s));
}

// ---------------------------------------------------------------------------------------------

const std::string_view k_valid[] = {
    ""sv,
    "Hello, world"sv,
    "\x00\x7F"sv,
    "\xC2\x80"sv,                                      // U+0080, smallest 2-byte
    "\xDF\xBF"sv,                                      // U+07FF
    "caf\xC3\xA9"sv,                                   // é
    "\xE0\xA0\x80"sv,                                  // U+0800, smallest 3-byte
    "\xE2\x82\xAC"sv,                                  // €
    "\xED\x9F\xBF"sv,                                  // U+D7FF, just below the surrogates
    "\xEE\x80\x80"sv,                                  // U+E000, just above them
    "\xEF\xBF\xBF"sv,                                  // U+FFFF
    "\xF0\x90\x80\x80"sv,                              // U+10000, smallest 4-byte
    "\xF0\x9D\x84\x9E"sv,                              // 𝄞
    "\xF3\xBF\xBF\xBF"sv,                              // U+FFFFF
    "\xF4\x8F\xBF\xBF"sv,                              // U+10FFFF, the last code point
    "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"sv,  // κόσμε
    "0123456789abcdef0123456789abcdef\xE2\x82\xAC"
    "0123456789abcdef\xF0\x9F\x98\x80xyz"sv,  // multibyte after ASCII runs (fast path exits)
};

TEST(Utf8, AcceptsValidSamples) {
  for (std::string_view s : k_valid) {
    SCOPED_TRACE(testing::PrintToString(std::string(s)));
    EXPECT_TRUE(is_valid_utf8(as_bytes(s)));
    Utf8Validator v;
    EXPECT_TRUE(feed(v, s));
    EXPECT_TRUE(v.complete());
    EXPECT_TRUE(reference_valid(s)) << "oracle disagrees";
  }
}

struct Invalid {
  const char* name;
  std::string_view bytes;
  std::size_t bad_at;  // index of the first byte that makes the input impossible
};

const Invalid k_invalid[] = {
    {"C0 overlong", "\xC0\x80"sv, 0},
    {"C1 overlong", "\xC1\xBF"sv, 0},
    {"E0 overlong low", "\xE0\x80\x80"sv, 1},
    {"E0 overlong high", "\xE0\x9F\xBF"sv, 1},
    {"F0 overlong low", "\xF0\x80\x80\x80"sv, 1},
    {"F0 overlong high", "\xF0\x8F\xBF\xBF"sv, 1},
    {"surrogate D800", "\xED\xA0\x80"sv, 1},
    {"surrogate DFFF", "\xED\xBF\xBF"sv, 1},
    {"above U+10FFFF", "\xF4\x90\x80\x80"sv, 1},
    {"F4 BF", "\xF4\xBF\xBF\xBF"sv, 1},
    {"F5 lead", "\xF5\x80\x80\x80"sv, 0},
    {"F7 lead", "\xF7\xBF\xBF\xBF"sv, 0},
    {"F8 lead", "\xF8\x88\x80\x80\x80"sv, 0},
    {"FE", "\xFE"sv, 0},
    {"FF", "\xFF"sv, 0},
    {"lone continuation 80", "\x80"sv, 0},
    {"lone continuation BF", "\xBF"sv, 0},
    {"continuation after ASCII", "abc\x80"sv, 3},
    {"extra continuation", "\xC3\xA9\xA9"sv, 2},
    {"2-byte cut by ASCII", "\xC3\x41"sv, 1},
    {"3-byte cut by ASCII", "\xE2\x82\x41"sv, 2},
    {"4-byte cut by lead", "\xF0\x9F\x98\xC3\xA9"sv, 3},
    {"lead after lead", "\xC2\xC2"sv, 1},
    {"bad byte after 40 ASCII", "0123456789012345678901234567890123456789\x80"sv, 40},
    {"bad byte after 17 ASCII", "01234567890123456\xFF tail"sv, 17},
    {"bad lead after valid 4-byte", "\xF4\x8F\xBF\xBF\xC0\xAF"sv, 4},
};

TEST(Utf8, RejectsEveryInvalidClass) {
  for (const Invalid& c : k_invalid) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(is_valid_utf8(as_bytes(c.bytes)));
    EXPECT_EQ(first_impossible_byte(c.bytes), c.bad_at) << "oracle disagrees with the table";
  }
}

TEST(Utf8, FailsFastAtTheFirstImpossibleByte) {
  // Everything before the bad byte is accepted as a valid prefix; the byte itself is refused.
  for (const Invalid& c : k_invalid) {
    SCOPED_TRACE(c.name);
    Utf8Validator v;
    EXPECT_TRUE(feed(v, c.bytes.substr(0, c.bad_at)));
    EXPECT_FALSE(feed(v, c.bytes.substr(c.bad_at, 1)));
    EXPECT_FALSE(v.complete());

    Utf8Validator whole;
    EXPECT_FALSE(feed(whole, c.bytes));
  }
}

TEST(Utf8, FailureInAMiddleFragmentIsReportedThereAndSticks) {
  Utf8Validator v;
  EXPECT_TRUE(feed(v, "first fragment "));
  EXPECT_TRUE(feed(v, "\xE2\x82"));           // a valid prefix, split
  EXPECT_FALSE(feed(v, "\xAC ok \xED\xA0"));  // breaks here, though more fragments follow
  EXPECT_FALSE(feed(v, "perfectly fine ASCII"));
  EXPECT_FALSE(feed(v, ""));
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_TRUE(v.complete());
  EXPECT_TRUE(feed(v, "fresh"));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8, IncompleteAtEndIsNotComplete) {
  for (std::string_view s : {"\xC3"sv, "\xE2\x82"sv, "\xF0\x9F\x98"sv, "abc\xF4\x8F\xBF"sv}) {
    Utf8Validator v;
    EXPECT_TRUE(feed(v, s)) << "a valid prefix is not an error yet";
    EXPECT_FALSE(v.complete());
    EXPECT_FALSE(is_valid_utf8(as_bytes(s)));
  }
}

TEST(Utf8, EmptyFeedsChangeNothing) {
  Utf8Validator v;
  EXPECT_TRUE(feed(v, ""));
  EXPECT_TRUE(v.complete());
  EXPECT_TRUE(feed(v, "\xE2"));
  EXPECT_TRUE(feed(v, ""));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(feed(v, "\x82\xAC"));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8, SplitAtEveryPairOfPointsGivesTheSameAnswer) {
  std::string all;
  for (std::string_view s : k_valid) all += s;
  std::vector<std::string_view> inputs(std::begin(k_valid), std::end(k_valid));
  inputs.push_back(all);
  for (const Invalid& c : k_invalid) inputs.push_back(c.bytes);
  for (std::string_view s : inputs) {
    SCOPED_TRACE(testing::PrintToString(std::string(s)));
    bool complete = false;
    const std::size_t bad = first_impossible_byte(s, &complete);
    for (std::size_t i = 0; i <= s.size(); ++i) {
      for (std::size_t j = i; j <= s.size(); ++j) {
        Utf8Validator v;
        const bool a = feed(v, s.substr(0, i));
        const bool b = feed(v, s.substr(i, j - i));
        const bool c = feed(v, s.substr(j));
        // Each piece fails exactly when it holds (or follows) the first impossible byte.
        ASSERT_EQ(a, bad == npos || bad >= i) << i << "," << j;
        ASSERT_EQ(b, bad == npos || bad >= j) << i << "," << j;
        ASSERT_EQ(c, bad == npos) << i << "," << j;
        ASSERT_EQ(v.complete(), bad == npos && complete) << i << "," << j;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

TEST(property, Utf8RandomSplitsMatchWhole) {
  const std::uint32_t seed = 20240611;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  auto uniform = [&](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  auto random_code_point = [&]() -> std::uint32_t {
    switch (uniform(0, 4)) {
      case 0:
      case 1:
        return uniform(0, 0x7F);
      case 2:
        return uniform(0x80, 0x7FF);
      case 3: {
        const std::uint32_t cp = uniform(0x800, 0xFFFF - 0x800);
        return cp >= 0xD800 ? cp + 0x800 : cp;  // skip the surrogates
      }
      default:
        return uniform(0x10000, 0x10FFFF);
    }
  };
  // Bytes at every class boundary, so random strings hit each transition often.
  static constexpr unsigned char k_interesting[] = {
      0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
      0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  // Feeds `s` in random pieces; on failure, [*fail_begin, *fail_end) is the piece that failed.
  auto feed_in_random_pieces = [&](std::string_view s, std::size_t* fail_begin,
                                   std::size_t* fail_end) {
    Utf8Validator v;
    bool ok = true;
    *fail_begin = *fail_end = npos;
    std::size_t pos = 0;
    while (pos < s.size()) {
      const std::size_t n = std::min<std::size_t>(s.size() - pos, uniform(0, 12));
      const bool piece_ok = feed(v, s.substr(pos, n));
      if (ok && !piece_ok) {
        *fail_begin = pos;
        *fail_end = pos + n;
      }
      pos += n;
      ok = ok && piece_ok;
      EXPECT_TRUE(ok || !piece_ok) << "failure must stick";
    }
    return ok && v.complete();
  };

  constexpr int k_cases = 20000;
  for (int i = 0; i < k_cases; ++i) {
    // Valid strings: every split is accepted and complete.
    std::string valid;
    for (std::uint32_t n = uniform(0, 24); n > 0; --n) {
      if (uniform(0, 7) == 0) valid.append(uniform(8, 40), 'a');  // long ASCII runs
      valid += encode_utf8(random_code_point());
    }
    std::size_t fail_begin = 0;
    std::size_t fail_end = 0;
    ASSERT_TRUE(reference_valid(valid)) << "generator bug, case " << i;
    ASSERT_TRUE(is_valid_utf8(as_bytes(valid))) << "case " << i;
    ASSERT_TRUE(feed_in_random_pieces(valid, &fail_begin, &fail_end)) << "case " << i;

    // Random bytes, mostly near-valid: incremental == whole == oracle, and the piece that
    // first fails is the one holding the first impossible byte.
    std::string noise;
    for (std::uint32_t n = uniform(0, 32); n > 0; --n) {
      const std::uint32_t pick = uniform(0, 9);
      if (pick < 4)
        noise += static_cast<char>(k_interesting[uniform(0, 24)]);
      else if (pick < 5)
        noise += static_cast<char>(uniform(0, 255));
      else if (pick < 6)
        noise.append(uniform(1, 20), 'z');
      else
        noise += encode_utf8(random_code_point());
    }
    bool complete = false;
    const std::size_t bad = first_impossible_byte(noise, &complete);
    const bool expected = bad == npos && complete;
    ASSERT_EQ(is_valid_utf8(as_bytes(noise)), expected)
        << "case " << i << " " << testing::PrintToString(noise);
    ASSERT_EQ(feed_in_random_pieces(noise, &fail_begin, &fail_end), expected)
        << "case " << i << " " << testing::PrintToString(noise);
    if (bad != npos) {
      // The first piece to fail is exactly the one holding the first impossible byte.
      ASSERT_LE(fail_begin, bad) << "case " << i << " " << testing::PrintToString(noise);
      ASSERT_GT(fail_end, bad) << "case " << i << " " << testing::PrintToString(noise);
    } else {
      ASSERT_EQ(fail_begin, npos) << "case " << i;
    }
    // Fail-fast, exactly: the prefix up to the bad byte is still fine.
    if (bad != npos) {
      Utf8Validator v;
      ASSERT_TRUE(feed(v, std::string_view(noise).substr(0, bad))) << "case " << i;
      ASSERT_FALSE(feed(v, std::string_view(noise).substr(bad, 1))) << "case " << i;
    }
  }
}

}  // namespace
}  // namespace tether
