// Autobahn section 5 (fragmentation), in both roles.
#include "conformance/conformance_harness.hpp"

namespace tether::conformance {
namespace {

// How the frames of a case are written: all in one write, one write per frame, or one
// byte per write (Autobahn's one chop, frame-wise chops and octet-wise chops).
enum class Chops { one, frame_wise, octet_wise };

bool send(RawPeer& peer, const std::vector<std::vector<std::byte>>& frames, Chops chops) {
  return peer.send_frames(frames, chops == Chops::octet_wise ? 1 : 0, chops == Chops::frame_wise);
}

// 5.1 / 5.2: a fragmented control frame fails the connection.
AUTOBAHN_CASE(Case_5_1_PingFragmentedInTwoFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::ping, "fragment1", false), peer->frame(op::cont, "fragment2", true)}));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

AUTOBAHN_CASE(Case_5_2_PongFragmentedInTwoFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::pong, "fragment1", false), peer->frame(op::cont, "fragment2", true)}));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

// 5.3-5.5: a text message in two fragments is echoed whole.
void two_fragments(Endpoint& target, Chops chops) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(send(*peer,
                   {peer->frame(op::text, "fragment1", false), peer->frame(op::cont, "fragment2")},
                   chops));
  ASSERT_TRUE(peer->expect_text("fragment1fragment2"));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_5_3_TextFragmentedInTwo) {
  two_fragments(target, Chops::one);
}
AUTOBAHN_CASE(Case_5_4_TextFragmentedInTwoFrameWise) {
  two_fragments(target, Chops::frame_wise);
}
AUTOBAHN_CASE(Case_5_5_TextFragmentedInTwoOctetWise) {
  two_fragments(target, Chops::octet_wise);
}

// 5.6-5.8: a PING between the fragments is answered, then the message is echoed.
void ping_between_fragments(Endpoint& target, Chops chops) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(send(*peer,
                   {peer->frame(op::text, "fragment1", false),
                    peer->frame(op::ping, "ping payload"), peer->frame(op::cont, "fragment2")},
                   chops));
  ASSERT_TRUE(peer->expect_pong("ping payload"));
  ASSERT_TRUE(peer->expect_text("fragment1fragment2"));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_5_6_TextFragmentedWithPingInTheMiddle) {
  ping_between_fragments(target, Chops::one);
}
AUTOBAHN_CASE(Case_5_7_TextFragmentedWithPingInTheMiddleFrameWise) {
  ping_between_fragments(target, Chops::frame_wise);
}
AUTOBAHN_CASE(Case_5_8_TextFragmentedWithPingInTheMiddleOctetWise) {
  ping_between_fragments(target, Chops::octet_wise);
}

// The PING is answered before the message completes: the last fragment is only sent once
// the PONG is in.
AUTOBAHN_CASE(Case_5_6_x_PingAnsweredBeforeTheMessageCompletes) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, "fragment1", false), peer->frame(op::ping, "ping payload")}));
  ASSERT_TRUE(peer->expect_pong("ping payload"));
  ASSERT_TRUE(peer->send_frame(op::cont, "fragment2"));
  ASSERT_TRUE(peer->expect_text("fragment1fragment2"));
  EXPECT_TRUE(peer->close_normally());
}

// 5.9-5.14: a continuation frame with nothing to continue fails the connection; the text
// message after it is never echoed.
void continuation_without_start(Endpoint& target, bool fin, Chops chops) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  // Writes after the bad header may fail once Tether has failed the connection: not an error.
  send(*peer,
       {peer->frame(op::cont, "non-continuation payload", fin),
        peer->frame(op::text, "Hello, world!")},
       chops);
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

AUTOBAHN_CASE(Case_5_9_ContinuationWithFinWithoutStartFails) {
  continuation_without_start(target, true, Chops::one);
}
AUTOBAHN_CASE(Case_5_10_ContinuationWithFinWithoutStartFrameWiseFails) {
  continuation_without_start(target, true, Chops::frame_wise);
}
AUTOBAHN_CASE(Case_5_11_ContinuationWithFinWithoutStartOctetWiseFails) {
  continuation_without_start(target, true, Chops::octet_wise);
}
AUTOBAHN_CASE(Case_5_12_ContinuationWithoutFinWithoutStartFails) {
  continuation_without_start(target, false, Chops::one);
}
AUTOBAHN_CASE(Case_5_13_ContinuationWithoutFinWithoutStartFrameWiseFails) {
  continuation_without_start(target, false, Chops::frame_wise);
}
AUTOBAHN_CASE(Case_5_14_ContinuationWithoutFinWithoutStartOctetWiseFails) {
  continuation_without_start(target, false, Chops::octet_wise);
}

// 5.15: a complete fragmented message (echoed), then a continuation with nothing to
// continue (fails).
AUTOBAHN_CASE(Case_5_15_FragmentedTextThenStrayContinuationFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, "fragment1", false), peer->frame(op::cont, "fragment2"),
       peer->frame(op::cont, "fragment3", false), peer->frame(op::text, "fragment4")}));
  ASSERT_TRUE(peer->expect_text("fragment1fragment2"));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

// 5.16 / 5.17: twice (a stray continuation, then a fragmented text): fails at the first.
void stray_continuation_repeated(Endpoint& target, bool fin) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  std::vector<std::vector<std::byte>> frames;
  for (int i = 0; i < 2; ++i) {
    frames.push_back(peer->frame(op::cont, "fragment1", fin));
    frames.push_back(peer->frame(op::text, "fragment2", false));
    frames.push_back(peer->frame(op::cont, "fragment3"));
  }
  ASSERT_TRUE(peer->send_frames(frames));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

AUTOBAHN_CASE(Case_5_16_StrayContinuationWithoutFinThenFragmentedTextTwiceFails) {
  stray_continuation_repeated(target, false);
}
AUTOBAHN_CASE(Case_5_17_StrayContinuationWithFinThenFragmentedTextTwiceFails) {
  stray_continuation_repeated(target, true);
}

// 5.18: both fragments carry the text opcode: a new message inside a message.
AUTOBAHN_CASE(Case_5_18_TextFragmentsBothWithTextOpcodeFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, "fragment1", false), peer->frame(op::text, "fragment2")}));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

// 5.19 / 5.20: five fragments with two PINGs between them; the first PING is answered
// before the rest of the message is even sent, then the second PONG, then the echo.
void five_fragments_two_pings(Endpoint& target, bool frame_wise) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, "fragment1", false), peer->frame(op::cont, "fragment2", false),
       peer->frame(op::ping, "pongme 1!")},
      0, frame_wise));
  ASSERT_TRUE(peer->expect_pong("pongme 1!"));
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::cont, "fragment3", false), peer->frame(op::cont, "fragment4", false),
       peer->frame(op::ping, "pongme 2!"), peer->frame(op::cont, "fragment5")},
      0, frame_wise));
  ASSERT_TRUE(peer->expect_pong("pongme 2!"));
  ASSERT_TRUE(peer->expect_text("fragment1fragment2fragment3fragment4fragment5"));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_5_19_FiveFragmentsWithTwoPings) {
  five_fragments_two_pings(target, false);
}
AUTOBAHN_CASE(Case_5_20_FiveFragmentsWithTwoPingsFrameWise) {
  five_fragments_two_pings(target, true);
}

// Binary messages in two fragments, and messages in 1-byte fragments, octet-wise.
AUTOBAHN_CASE(Case_5_x_BinaryFragmentedInTwo) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::string a("\x00\xff\x01", 3), b("\xfe\x80\x00", 3);
  ASSERT_TRUE(peer->send_frames({peer->frame(op::binary, a, false), peer->frame(op::cont, b)}));
  ASSERT_TRUE(peer->expect_message(MessageType::binary, a + b));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_5_x_MessagesInOneByteFragmentsOctetWise) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::string text = "fragmented one byte at a time";
  ASSERT_TRUE(peer->send_message(MessageType::text, text, Shape{.fragment = 1, .chop = 1}));
  ASSERT_TRUE(peer->expect_text(text));
  std::string bin(300, '\0');
  for (std::size_t i = 0; i < bin.size(); ++i) bin[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(peer->send_message(MessageType::binary, bin, Shape{.fragment = 1, .chop = 1}));
  ASSERT_TRUE(peer->expect_message(MessageType::binary, bin));
  EXPECT_TRUE(peer->close_normally());
}

// A binary frame inside a fragmented text message fails, like 5.18.
AUTOBAHN_CASE(Case_5_x_BinaryFrameInsideFragmentedTextFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, "fragment1", false), peer->frame(op::binary, "fragment2")}));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

}  // namespace
}  // namespace tether::conformance
