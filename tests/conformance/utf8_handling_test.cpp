// Autobahn section 6 (UTF-8 handling), in both roles: valid text of every width is echoed
// exactly, invalid text fails the connection with 1007, and fails it fast: at the fragment
// (or the bytes of a frame) where the text becomes invalid, before the message ends.
#include "conformance/conformance_harness.hpp"

namespace tether::conformance {
namespace {

const std::string kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";  // "κόσμε"
const std::string hello_utf8 =
    "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!";

// One text message in one frame: echoed (valid) or the connection fails with 1007.
void utf8_single_frame(Endpoint& target, const std::string& payload, bool valid) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(op::text, payload));
  if (valid) {
    ASSERT_TRUE(peer->expect_text(payload));
    EXPECT_TRUE(peer->close_normally());
  } else {
    EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
  }
}

struct Utf8Case {
  bool valid;
  std::string payload;
};

// One Autobahn subsection 6.N: case 6.N.k is cases[k-1], each on its own connection.
void utf8_section(Endpoint& target, int section, const std::vector<Utf8Case>& cases) {
  for (std::size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case 6." + std::to_string(section) + "." + std::to_string(k + 1) + " (" +
                 (cases[k].valid ? "valid" : "invalid") + "): " + hex_head(cases[k].payload, 64));
    utf8_single_frame(target, cases[k].payload, cases[k].valid);
  }
}

// ---- 6.1 valid UTF-8 with zero payload fragments ----------------------------------------------

AUTOBAHN_CASE(Case_6_1_1_EmptyText) {
  utf8_single_frame(target, "", true);
}

AUTOBAHN_CASE(Case_6_1_2_ThreeEmptyFragments) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames({peer->frame(op::text, "", false), peer->frame(op::cont, "", false),
                                 peer->frame(op::cont, "")}));
  ASSERT_TRUE(peer->expect_text(""));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_6_1_3_EmptyNonEmptyEmptyFragments) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames({peer->frame(op::text, "", false),
                                 peer->frame(op::cont, "middle frame payload", false),
                                 peer->frame(op::cont, "")}));
  ASSERT_TRUE(peer->expect_text("middle frame payload"));
  EXPECT_TRUE(peer->close_normally());
}

// ---- 6.2 valid UTF-8, unfragmented, fragmented on and within code points -----------------------

AUTOBAHN_CASE(Case_6_2_1_ValidUtf8InOneFragment) {
  utf8_single_frame(target, hello_utf8, true);
}

AUTOBAHN_CASE(Case_6_2_2_ValidUtf8InTwoFragmentsOnCodePointBoundary) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::size_t cut = hello_utf8.find("\xc3\xbc");  // before "ü"
  ASSERT_TRUE(peer->send_frames({peer->frame(op::text, hello_utf8.substr(0, cut), false),
                                 peer->frame(op::cont, hello_utf8.substr(cut))}));
  ASSERT_TRUE(peer->expect_text(hello_utf8));
  EXPECT_TRUE(peer->close_normally());
}

void one_byte_frames(Endpoint& target, const std::string& text) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_message(MessageType::text, text, Shape{.fragment = 1}));
  ASSERT_TRUE(peer->expect_text(text));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_6_2_3_ValidUtf8InOneByteFragments) {
  one_byte_frames(target, hello_utf8);
}
AUTOBAHN_CASE(Case_6_2_4_KosmeInOneByteFragments) {
  one_byte_frames(target, kosme);
}

// Valid text with code points of every width (U+10FFFF included), cut into two fragments at
// every byte position: the validator carries partial sequences across fragments.
AUTOBAHN_CASE(Case_6_2_x_EveryWidthSplitAtEveryPosition) {
  const std::string text = std::string("a") + "\xc2\x80" + "\xc2\xa2" + "\xdf\xbf" +
                           "\xe0\xa0\x80" + "\xe2\x82\xac" + "\xef\xbf\xbf" + "\xf0\x90\x80\x80" +
                           "\xf0\xa4\xad\xa2" + "\xf4\x8f\xbf\xbf" + "z";
  auto peer = target.open();
  ASSERT_TRUE(peer);
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    ASSERT_TRUE(peer->send_frames({peer->frame(op::text, text.substr(0, cut), false),
                                   peer->frame(op::cont, text.substr(cut))}));
    ASSERT_TRUE(peer->expect_text(text)) << "cut at byte " << cut;
  }
  // Three fragments: every pair of cut positions.
  for (std::size_t a = 1; a < text.size(); ++a) {
    for (std::size_t b = a; b < text.size(); ++b) {
      ASSERT_TRUE(peer->send_frames({peer->frame(op::text, text.substr(0, a), false),
                                     peer->frame(op::cont, text.substr(a, b - a), false),
                                     peer->frame(op::cont, text.substr(b))}));
      ASSERT_TRUE(peer->expect_text(text)) << "cuts at bytes " << a << " and " << b;
    }
  }
  EXPECT_TRUE(peer->close_normally());
}

// ---- 6.3 invalid UTF-8, differently fragmented ---------------------------------------------

const std::string invalid_kosme = kosme + "\xed\xa0\x80" + "edited";  // a surrogate inside

AUTOBAHN_CASE(Case_6_3_1_InvalidUtf8InOneFragment) {
  utf8_single_frame(target, invalid_kosme, false);
}

AUTOBAHN_CASE(Case_6_3_2_InvalidUtf8InOneByteFragments) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_message(MessageType::text, invalid_kosme, Shape{.fragment = 1}));
  EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
}

// The same invalid text cut into two fragments at every position.
AUTOBAHN_CASE(Case_6_3_x_InvalidUtf8SplitAtEveryPosition) {
  for (std::size_t cut = 0; cut <= invalid_kosme.size(); ++cut) {
    SCOPED_TRACE("cut at byte " + std::to_string(cut));
    auto peer = target.open();
    ASSERT_TRUE(peer);
    ASSERT_TRUE(peer->send_frames({peer->frame(op::text, invalid_kosme.substr(0, cut), false),
                                   peer->frame(op::cont, invalid_kosme.substr(cut))}));
    EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
  }
}

// ---- 6.4 fail fast on invalid UTF-8 ----------------------------------------------------------

// PART1 is valid, PART2 makes the text invalid (U+110000 encoded as four bytes), PART3 is
// never sent: the CLOSE 1007 must come before the message could end.
const std::string part1 = kosme;
const std::string part2 = "\xf4\x90\x80\x80";
const std::string part3 = "edited";

// In fragments: the first is accepted (a PING after it is still answered), the second
// fails the connection at once.
void fail_fast_fragments(Endpoint& target, const std::string& first, const std::string& second) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(
      peer->send_frames({peer->frame(op::text, first, false), peer->frame(op::ping, "alive?")}));
  ASSERT_TRUE(peer->expect_pong("alive?")) << "the valid first fragment was refused";
  ASSERT_TRUE(peer->send_frame(op::cont, second, false));
  EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
}

AUTOBAHN_CASE(Case_6_4_1_FailFastOnSecondOfThreeFragments) {
  fail_fast_fragments(target, part1, part2);
}

AUTOBAHN_CASE(Case_6_4_2_FailFastOnTheInvalidOctetInTheSecondFragment) {
  const std::string all = part1 + part2 + part3;
  fail_fast_fragments(target, all.substr(0, 12), all.substr(12, 1));
}

// Within one frame: its bytes go out in chops and the frame is never completed.
void fail_fast_chops(Endpoint& target, std::size_t first, std::size_t second) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::string all = part1 + part2 + part3;
  auto f = peer->frame(op::text, all);
  const std::size_t header = f.size() - all.size();
  ASSERT_TRUE(peer->send_bytes(ByteView(f).first(header + first)));
  ASSERT_TRUE(peer->send_bytes(ByteView(f).subspan(header + first, second)));
  EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
}

AUTOBAHN_CASE(Case_6_4_3_FailFastWithinOneFrameSentInChops) {
  fail_fast_chops(target, part1.size(), part2.size());
}
AUTOBAHN_CASE(Case_6_4_4_FailFastOnTheInvalidOctetWithinOneFrame) {
  fail_fast_chops(target, 12, 1);
}

// Every other way text can break, fast: a lone continuation byte, an overlong form and a
// surrogate, each arriving in the second fragment after a valid first one.
AUTOBAHN_CASE(Case_6_4_x_FailFastOnEveryKindOfInvalidSequence) {
  for (const char* bad : {"\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf5", "\xff",
                          "\xf8\x88\x80\x80\x80"}) {
    SCOPED_TRACE(hex_head(bad));
    fail_fast_fragments(target, part1, bad);
  }
}

// ---- 6.5-6.23: the UTF-8 decoder test sequences, one frame each ------------------------------

std::vector<Utf8Case> prefixes_of_kosme() {
  std::vector<Utf8Case> cases;
  for (std::size_t n = 1; n <= kosme.size(); ++n) {
    const bool boundary = n == 2 || n == 5 || n == 7 || n == 9 || n == 11;
    cases.push_back({boundary, kosme.substr(0, n)});
  }
  return cases;
}

std::string byte_range(unsigned from, unsigned to, bool with_space) {
  std::string s;
  for (unsigned b = from; b < to; ++b) {
    s += static_cast<char>(b);
    if (with_space) s += ' ';
  }
  return s;
}

const std::vector<std::string> missing_last_byte = {
    "\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
    "\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"};

std::vector<Utf8Case> non_characters() {
  std::vector<Utf8Case> cases = {{true, "\xef\xbf\xbe"}, {true, "\xef\xbf\xbf"}};
  for (unsigned z1 : {0xf0u, 0xf1u, 0xf2u, 0xf3u, 0xf4u})
    for (unsigned z2 : {0x8fu, 0x9fu, 0xafu, 0xbfu}) {
      if (z1 == 0xf4 && z2 != 0x8f) continue;  // above U+10FFFF
      for (unsigned z3 : {0xbeu, 0xbfu}) {
        if (z1 == 0xf0 && z2 == 0x8f) continue;  // overlong
        cases.push_back({true, std::string{static_cast<char>(z1), static_cast<char>(z2), '\xbf',
                                           static_cast<char>(z3)}});
      }
    }
  return cases;
}

AUTOBAHN_CASE(Case_6_5_SomeValidUtf8Sequences) {
  utf8_section(target, 5,
               {{true, "hello\x24world"},
                {true, "hello\xc2\xa2world"},
                {true, "hello\xe2\x82\xacworld"},
                {true, "hello\xf0\xa4\xad\xa2world"},
                {true, kosme}});
}

AUTOBAHN_CASE(Case_6_6_PrefixesOfValidMultiByteString) {
  auto cases = prefixes_of_kosme();
  ASSERT_EQ(cases.size(), 11u);
  utf8_section(target, 6, cases);
}

AUTOBAHN_CASE(Case_6_7_FirstPossibleSequenceOfEachLength) {
  utf8_section(target, 7,
               {{true, std::string(1, '\0')},
                {true, "\xc2\x80"},
                {true, "\xe0\xa0\x80"},
                {true, "\xf0\x90\x80\x80"}});
}

AUTOBAHN_CASE(Case_6_8_FirstPossibleSequenceOfLength5And6Invalid) {
  utf8_section(target, 8, {{false, "\xf8\x88\x80\x80\x80"}, {false, "\xfc\x84\x80\x80\x80\x80"}});
}

AUTOBAHN_CASE(Case_6_9_LastPossibleSequenceOfEachLength) {
  utf8_section(
      target, 9,
      {{true, "\x7f"}, {true, "\xdf\xbf"}, {true, "\xef\xbf\xbf"}, {true, "\xf4\x8f\xbf\xbf"}});
}

AUTOBAHN_CASE(Case_6_10_LastPossibleSequenceOfLength4To6Invalid) {
  utf8_section(target, 10,
               {{false, "\xf7\xbf\xbf\xbf"},
                {false, "\xfb\xbf\xbf\xbf\xbf"},
                {false, "\xfd\xbf\xbf\xbf\xbf\xbf"}});
}

AUTOBAHN_CASE(Case_6_11_OtherBoundaryConditions) {
  utf8_section(target, 11,
               {{true, "\xed\x9f\xbf"},
                {true, "\xee\x80\x80"},
                {true, "\xef\xbf\xbd"},
                {true, "\xf4\x8f\xbf\xbf"},
                {false, "\xf4\x90\x80\x80"}});
}

AUTOBAHN_CASE(Case_6_12_UnexpectedContinuationBytes) {
  utf8_section(target, 12,
               {{false, "\x80"},
                {false, "\xbf"},
                {false, "\x80\xbf"},
                {false, "\x80\xbf\x80"},
                {false, "\x80\xbf\x80\xbf"},
                {false, "\x80\xbf\x80\xbf\x80"},
                {false, "\x80\xbf\x80\xbf\x80\xbf"},
                {false, byte_range(0x80, 0xbf, false)}});
}

AUTOBAHN_CASE(Case_6_13_LonelyStartCharacters) {
  utf8_section(target, 13,
               {{false, byte_range(0xc0, 0xdf, true)},
                {false, byte_range(0xe0, 0xef, true)},
                {false, byte_range(0xf0, 0xf7, true)},
                {false, byte_range(0xf8, 0xfb, true)},
                {false, byte_range(0xfc, 0xfd, true)}});
}

AUTOBAHN_CASE(Case_6_14_SequencesWithLastContinuationByteMissing) {
  std::vector<Utf8Case> cases;
  for (const auto& s : missing_last_byte) cases.push_back({false, s});
  utf8_section(target, 14, cases);
}

AUTOBAHN_CASE(Case_6_15_ConcatenationOfIncompleteSequences) {
  std::string all;
  for (const auto& s : missing_last_byte) all += s;
  utf8_section(target, 15, {{false, all}});
}

AUTOBAHN_CASE(Case_6_16_ImpossibleBytes) {
  utf8_section(target, 16, {{false, "\xfe"}, {false, "\xff"}, {false, "\xfe\xfe\xff\xff"}});
}

AUTOBAHN_CASE(Case_6_17_OverlongAsciiCharacter) {
  utf8_section(target, 17,
               {{false, "\xc0\xaf"},
                {false, "\xe0\x80\xaf"},
                {false, "\xf0\x80\x80\xaf"},
                {false, "\xf8\x80\x80\x80\xaf"},
                {false, "\xfc\x80\x80\x80\x80\xaf"}});
}

AUTOBAHN_CASE(Case_6_18_MaximumOverlongSequences) {
  utf8_section(target, 18,
               {{false, "\xc1\xbf"},
                {false, "\xe0\x9f\xbf"},
                {false, "\xf0\x8f\xbf\xbf"},
                {false, "\xf8\x87\xbf\xbf\xbf"},
                {false, "\xfc\x83\xbf\xbf\xbf\xbf"}});
}

AUTOBAHN_CASE(Case_6_19_OverlongNulCharacter) {
  utf8_section(target, 19,
               {{false, "\xc0\x80"},
                {false, "\xe0\x80\x80"},
                {false, "\xf0\x80\x80\x80"},
                {false, "\xf8\x80\x80\x80\x80"},
                {false, "\xfc\x80\x80\x80\x80\x80"}});
}

AUTOBAHN_CASE(Case_6_20_SingleUtf16Surrogates) {
  utf8_section(target, 20,
               {{false, "\xed\xa0\x80"},
                {false, "\xed\xad\xbf"},
                {false, "\xed\xae\x80"},
                {false, "\xed\xaf\xbf"},
                {false, "\xed\xb0\x80"},
                {false, "\xed\xbe\x80"},
                {false, "\xed\xbf\xbf"}});
}

AUTOBAHN_CASE(Case_6_21_PairedUtf16Surrogates) {
  utf8_section(target, 21,
               {{false, "\xed\xa0\x80\xed\xb0\x80"},
                {false, "\xed\xa0\x80\xed\xbf\xbf"},
                {false, "\xed\xad\xbf\xed\xb0\x80"},
                {false, "\xed\xad\xbf\xed\xbf\xbf"},
                {false, "\xed\xae\x80\xed\xb0\x80"},
                {false, "\xed\xae\x80\xed\xbf\xbf"},
                {false, "\xed\xaf\xbf\xed\xb0\x80"},
                {false, "\xed\xaf\xbf\xed\xbf\xbf"}});
}

AUTOBAHN_CASE(Case_6_22_NonCharacterCodePointsAreValid) {
  auto cases = non_characters();
  ASSERT_EQ(cases.size(), 34u);
  utf8_section(target, 22, cases);
}

AUTOBAHN_CASE(Case_6_23_UnicodeSpecials) {
  std::vector<Utf8Case> cases;
  for (unsigned last = 0xb9; last <= 0xbf; ++last)
    cases.push_back({true, std::string("\xef\xbf") + static_cast<char>(last)});
  utf8_section(target, 23, cases);
}

}  // namespace
}  // namespace tether::conformance
