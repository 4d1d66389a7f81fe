// Autobahn sections 1 (framing), 2 (pings/pongs), 3 (reserved bits) and 4 (opcodes), in both
// roles. Verdicts are Autobahn's "OK": exact echoes, exact close codes, the TCP connection
// closed by the right party within the bound.
#include <set>

#include "conformance/conformance_harness.hpp"

namespace tether::conformance {
namespace {

const std::string hello = "Hello, world!";
const std::string binary8("\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 8);

// 1.1.x / 1.2.x: one message of `size` bytes ("*" or 0xfe repeated, as Autobahn sends),
// written `chop` bytes at a time; the exact echo, then a clean close.
void echo_then_close(Endpoint& target, MessageType type, std::size_t size, std::size_t chop = 0) {
  SCOPED_TRACE("message of " + std::to_string(size) + " bytes, chop " + std::to_string(chop));
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::string payload(size, type == MessageType::text ? '*' : '\xfe');
  ASSERT_TRUE(peer->send_message(type, payload, Shape{.chop = chop}));
  ASSERT_TRUE(peer->expect_message(type, payload));
  EXPECT_TRUE(peer->close_normally());
}

const std::size_t framing_lengths[] = {0, 125, 126, 127, 128, 65535, 65536};

// ---- 1.1 text messages ---------------------------------------------------------------------

AUTOBAHN_CASE(Case_1_1_1_TextLength0) {
  echo_then_close(target, MessageType::text, 0);
}
AUTOBAHN_CASE(Case_1_1_2_TextLength125) {
  echo_then_close(target, MessageType::text, 125);
}
AUTOBAHN_CASE(Case_1_1_3_TextLength126) {
  echo_then_close(target, MessageType::text, 126);
}
AUTOBAHN_CASE(Case_1_1_4_TextLength127) {
  echo_then_close(target, MessageType::text, 127);
}
AUTOBAHN_CASE(Case_1_1_5_TextLength128) {
  echo_then_close(target, MessageType::text, 128);
}
AUTOBAHN_CASE(Case_1_1_6_TextLength65535) {
  echo_then_close(target, MessageType::text, 65535);
}
AUTOBAHN_CASE(Case_1_1_7_TextLength65536) {
  echo_then_close(target, MessageType::text, 65536);
}
AUTOBAHN_CASE(Case_1_1_8_TextLength65536InChopsOf997) {
  echo_then_close(target, MessageType::text, 65536, 997);
}
// Every length of 1.1.x again, written one byte per write().
AUTOBAHN_CASE(Case_1_1_x_TextEveryLengthOctetWise) {
  for (std::size_t n : framing_lengths) echo_then_close(target, MessageType::text, n, 1);
}

// ---- 1.2 binary messages -------------------------------------------------------------------

AUTOBAHN_CASE(Case_1_2_1_BinaryLength0) {
  echo_then_close(target, MessageType::binary, 0);
}
AUTOBAHN_CASE(Case_1_2_2_BinaryLength125) {
  echo_then_close(target, MessageType::binary, 125);
}
AUTOBAHN_CASE(Case_1_2_3_BinaryLength126) {
  echo_then_close(target, MessageType::binary, 126);
}
AUTOBAHN_CASE(Case_1_2_4_BinaryLength127) {
  echo_then_close(target, MessageType::binary, 127);
}
AUTOBAHN_CASE(Case_1_2_5_BinaryLength128) {
  echo_then_close(target, MessageType::binary, 128);
}
AUTOBAHN_CASE(Case_1_2_6_BinaryLength65535) {
  echo_then_close(target, MessageType::binary, 65535);
}
AUTOBAHN_CASE(Case_1_2_7_BinaryLength65536) {
  echo_then_close(target, MessageType::binary, 65536);
}
AUTOBAHN_CASE(Case_1_2_8_BinaryLength65536InChopsOf997) {
  echo_then_close(target, MessageType::binary, 65536, 997);
}
AUTOBAHN_CASE(Case_1_2_x_BinaryEveryLengthOctetWise) {
  for (std::size_t n : framing_lengths) echo_then_close(target, MessageType::binary, n, 1);
}

// RFC 6455 §5.1 (no Autobahn case: its peers always mask correctly): a server fails on an
// unmasked frame, a client on a masked one.
AUTOBAHN_CASE(Case_1_x_WrongMaskingFails) {
  for (int opcode : {op::text, op::binary, op::ping, op::close}) {
    SCOPED_TRACE(opcode_label(opcode));
    auto peer = target.open();
    ASSERT_TRUE(peer);
    const bool masked = target.role() == Role::client;  // the opposite of what is required
    ASSERT_TRUE(peer->send_bytes(
        test::make_frame(opcode, opcode == op::close ? close_payload(1000) : hello, true, masked)));
    EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
  }
}

// RFC 6455 §5.3 (Autobahn checks client frames are masked): a fresh masking key per frame.
TEST(ClientRole, Case_1_x_FreshMaskingKeyForEveryFrame) {
  ClientEndpoint endpoint;
  auto peer = endpoint.open();
  ASSERT_TRUE(peer);
  std::set<std::uint32_t> keys;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(peer->send_frame(op::text, "mask me"));
    WireFrame f;
    ASSERT_EQ(peer->next(f), RawPeer::Got::frame);
    ASSERT_TRUE(f.masked);
    EXPECT_EQ(f.payload, "mask me");
    keys.insert(f.mask_key);
  }
  EXPECT_EQ(keys.size(), 100u) << "masking keys repeat";
  EXPECT_TRUE(peer->close_normally());
}

// ---- 2 pings and pongs ----------------------------------------------------------------------

void ping_answered(Endpoint& target, const std::string& payload, std::size_t chop = 0) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(op::ping, payload, true, 0, chop));
  ASSERT_TRUE(peer->expect_pong(payload));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_2_1_PingWithoutPayload) {
  ping_answered(target, "");
}
AUTOBAHN_CASE(Case_2_2_PingWithSmallTextPayload) {
  ping_answered(target, hello);
}
AUTOBAHN_CASE(Case_2_3_PingWithSmallBinaryPayload) {
  ping_answered(target, binary8);
}
AUTOBAHN_CASE(Case_2_4_PingWith125BytePayload) {
  ping_answered(target, std::string(125, '\xfe'));
}

AUTOBAHN_CASE(Case_2_5_PingWith126BytePayloadFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(op::ping, std::string(126, '\xfe')));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

AUTOBAHN_CASE(Case_2_6_PingWith125BytePayloadOctetWise) {
  ping_answered(target, std::string(125, '\xfe'), 1);
}

// Every payload length a PING may have, on one connection.
AUTOBAHN_CASE(Case_2_x_PingPayloadOfEveryLength0To125) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  for (std::size_t n = 0; n <= 125; ++n) {
    std::string payload(n, '\0');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>((i * 37 + n) & 0xFF);
    ASSERT_TRUE(peer->send_frame(op::ping, payload));
    ASSERT_TRUE(peer->expect_pong(payload)) << "ping of " << n << " bytes";
  }
  EXPECT_TRUE(peer->close_normally());
}

// 2.7-2.9: an unsolicited PONG is ignored: the next frame we see is the echo of our CLOSE.
AUTOBAHN_CASE(Case_2_7_UnsolicitedPongWithoutPayloadIgnored) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(op::pong, ""));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_2_8_UnsolicitedPongWithPayloadIgnored) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(op::pong, "unsolicited pong payload"));
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_2_9_UnsolicitedPongThenPingAnswered) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::pong, "unsolicited pong payload"), peer->frame(op::ping, "ping payload")}));
  ASSERT_TRUE(peer->expect_pong("ping payload"));
  EXPECT_TRUE(peer->close_normally());
}

// 2.10 / 2.11: ten PINGs back to back; every one answered, in order, with its payload.
void ten_pings(Endpoint& target, std::size_t chop) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  std::vector<std::vector<std::byte>> frames;
  for (int i = 0; i < 10; ++i)
    frames.push_back(peer->frame(op::ping, "payload-" + std::to_string(i)));
  ASSERT_TRUE(peer->send_frames(frames, chop));
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(peer->expect_pong("payload-" + std::to_string(i))) << "pong " << i;
  EXPECT_TRUE(peer->close_normally());
}

AUTOBAHN_CASE(Case_2_10_TenPingsAllAnsweredInOrder) {
  ten_pings(target, 0);
}
AUTOBAHN_CASE(Case_2_11_TenPingsOctetWiseAllAnsweredInOrder) {
  ten_pings(target, 1);
}

// ---- 3 reserved bits ------------------------------------------------------------------------

// A valid text message, the same with reserved bits `rsv`, then a PING: the first is echoed,
// then the connection fails with 1002 and the PING is never answered.
void echo_then_reserved_bits(Endpoint& target, unsigned rsv, std::size_t chop, bool frame_wise) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  // Tether may fail the connection as soon as the bad header arrives; the writes after it can
  // then fail, which is not an error (the echo and the CLOSE are already on their way).
  peer->send_frames({peer->frame(op::text, hello), peer->frame(op::text, hello, true, rsv),
                     peer->frame(op::ping, hello)},
                    chop, frame_wise);
  ASSERT_TRUE(peer->expect_text(hello));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

void reserved_bits_fail(Endpoint& target, int opcode, const std::string& payload, unsigned rsv) {
  SCOPED_TRACE(opcode_label(opcode) + " with rsv=" + std::to_string(rsv));
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(opcode, payload, true, rsv));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

AUTOBAHN_CASE(Case_3_1_TextWithRsv1Fails) {
  reserved_bits_fail(target, op::text, hello, 1);
}
AUTOBAHN_CASE(Case_3_2_EchoThenTextWithRsv2Fails) {
  echo_then_reserved_bits(target, 2, 0, false);
}
AUTOBAHN_CASE(Case_3_3_EchoThenTextWithRsv3FrameWiseFails) {
  echo_then_reserved_bits(target, 3, 0, true);
}
AUTOBAHN_CASE(Case_3_4_EchoThenTextWithRsv4OctetWiseFails) {
  echo_then_reserved_bits(target, 4, 1, false);
}
AUTOBAHN_CASE(Case_3_5_BinaryWithRsv5Fails) {
  reserved_bits_fail(target, op::binary, binary8, 5);
}
AUTOBAHN_CASE(Case_3_6_PingWithRsv6Fails) {
  reserved_bits_fail(target, op::ping, hello, 6);
}
AUTOBAHN_CASE(Case_3_7_CloseWithRsv7Fails) {
  reserved_bits_fail(target, op::close, close_payload(1000), 7);
}

// Every combination of reserved bits on every kind of frame, with no extension negotiated.
AUTOBAHN_CASE(Case_3_x_EveryReservedBitComboOnEveryOpcodeFails) {
  const std::pair<int, std::string> frames[] = {{op::text, hello},
                                                {op::binary, binary8},
                                                {op::ping, hello},
                                                {op::pong, hello},
                                                {op::close, close_payload(1000)}};
  for (const auto& [opcode, payload] : frames)
    for (unsigned rsv = 1; rsv <= 7; ++rsv) reserved_bits_fail(target, opcode, payload, rsv);
}

// ---- 4 opcodes ------------------------------------------------------------------------------

void reserved_opcode_fails(Endpoint& target, int opcode, const std::string& payload) {
  SCOPED_TRACE("opcode " + std::to_string(opcode));
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(opcode, payload));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

// A valid text message, a frame with a reserved opcode, a PING: echo, then 1002, no PONG.
void echo_then_reserved_opcode(Endpoint& target, int opcode, const std::string& payload) {
  SCOPED_TRACE("opcode " + std::to_string(opcode));
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, hello), peer->frame(opcode, payload), peer->frame(op::ping, hello)}));
  ASSERT_TRUE(peer->expect_text(hello));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

const std::string reserved_payload = "reserved opcode payload";

AUTOBAHN_CASE(Case_4_1_1_ReservedNonControlOpcode3Fails) {
  reserved_opcode_fails(target, 3, "");
}
AUTOBAHN_CASE(Case_4_1_2_ReservedNonControlOpcode4WithPayloadFails) {
  reserved_opcode_fails(target, 4, reserved_payload);
}
AUTOBAHN_CASE(Case_4_1_3_EchoThenOpcode5ThenPing) {
  echo_then_reserved_opcode(target, 5, "");
}
AUTOBAHN_CASE(Case_4_1_4_EchoThenOpcode6WithPayloadThenPing) {
  echo_then_reserved_opcode(target, 6, reserved_payload);
}
AUTOBAHN_CASE(Case_4_1_5_EchoThenOpcode7WithPayloadThenPing) {
  echo_then_reserved_opcode(target, 7, reserved_payload);
}
AUTOBAHN_CASE(Case_4_2_1_ReservedControlOpcode11Fails) {
  reserved_opcode_fails(target, 11, "");
}
AUTOBAHN_CASE(Case_4_2_2_ReservedControlOpcode12WithPayloadFails) {
  reserved_opcode_fails(target, 12, reserved_payload);
}
AUTOBAHN_CASE(Case_4_2_3_EchoThenOpcode13ThenPing) {
  echo_then_reserved_opcode(target, 13, "");
}
AUTOBAHN_CASE(Case_4_2_4_EchoThenOpcode14WithPayloadThenPing) {
  echo_then_reserved_opcode(target, 14, reserved_payload);
}
AUTOBAHN_CASE(Case_4_2_5_EchoThenOpcode15WithPayloadThenPing) {
  echo_then_reserved_opcode(target, 15, reserved_payload);
}

// Every reserved opcode, alone and after a valid message, with and without payload.
AUTOBAHN_CASE(Case_4_x_EveryReservedOpcodeFails) {
  for (int opcode : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
    reserved_opcode_fails(target, opcode, "");
    echo_then_reserved_opcode(target, opcode, reserved_payload);
  }
}

}  // namespace
}  // namespace tether::conformance
