// Autobahn section 7 (close handling), in both roles: the CLOSE is echoed with exactly the
// peer's code, nothing is processed after it, invalid CLOSE payloads fail the connection with
// the right code, and the TCP connection is closed by the right party within the bound.
#include "conformance/conformance_harness.hpp"

namespace tether::conformance {
namespace {

// The end of a closing handshake we started: the echo of `code`, the TCP close, and Tether
// reporting `code`. Any frame before the echo (a PONG, a data echo) is a failure.
testing::AssertionResult echo_of_our_close(RawPeer& peer, std::uint16_t code) {
  if (auto r = peer.expect_close(code); !r) return r;
  if (auto r = peer.finish_tcp(); !r) return r;
  return peer.tether_closed_with(code);
}

// ---- 7.1 basic close behaviour -------------------------------------------------------------

AUTOBAHN_CASE(Case_7_1_1_MessageThenCloseEchoedInOrder) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, "Hello World!"), peer->frame(op::close, close_payload(1000))}));
  ASSERT_TRUE(peer->expect_text("Hello World!"));
  EXPECT_TRUE(echo_of_our_close(*peer, 1000));
}

AUTOBAHN_CASE(Case_7_1_2_SecondCloseIgnored) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::close, close_payload(1000)), peer->frame(op::close, close_payload(1000))}));
  EXPECT_TRUE(echo_of_our_close(*peer, 1000));
}

AUTOBAHN_CASE(Case_7_1_3_PingAfterCloseNotAnswered) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::close, close_payload(1000)), peer->frame(op::ping, "Hello World!")}));
  EXPECT_TRUE(echo_of_our_close(*peer, 1000));
}

AUTOBAHN_CASE(Case_7_1_4_TextAfterCloseNotEchoed) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::close, close_payload(1000)), peer->frame(op::text, "Hello World!")}));
  EXPECT_TRUE(echo_of_our_close(*peer, 1000));
}

AUTOBAHN_CASE(Case_7_1_5_CloseBetweenFragmentsEndsTheMessage) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frames({peer->frame(op::text, "fragment1", false),
                                 peer->frame(op::close, close_payload(1000)),
                                 peer->frame(op::cont, "fragment2")}));
  EXPECT_TRUE(echo_of_our_close(*peer, 1000));
}

// Informational in Autobahn: a 256 KiB message, a small one, CLOSE and PING back to back.
// Whether the echoes go out before the CLOSE is the implementation's choice; what must hold
// is that whatever data arrives is a correct prefix of the echoes, in order, that the PING is
// not answered, and that the CLOSE is echoed with 1000 and the connection ends.
AUTOBAHN_CASE(Case_7_1_6_LargeMessageThenCloseThenPing) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  std::string big;
  while (big.size() < 256 * 1024) big += "BAsd7&jh23";
  big.resize(256 * 1024);
  const std::string small = "Hello World!";
  ASSERT_TRUE(
      peer->send_frames({peer->frame(op::text, big), peer->frame(op::text, small),
                         peer->frame(op::close, close_payload(1000)), peer->frame(op::ping, "")}));
  const std::string expected = big + small;
  std::string data;
  bool in_message = false;
  WireFrame f;
  for (;;) {
    ASSERT_EQ(peer->next(f), RawPeer::Got::frame) << "no CLOSE came";
    if (f.opcode == op::close) break;
    ASSERT_TRUE(f.opcode == (in_message ? op::cont : op::text)) << describe(f);
    in_message = !f.fin;
    data += f.payload;
    ASSERT_EQ(expected.compare(0, data.size(), data), 0)
        << "echoed data is not a prefix of the echoes";
  }
  ASSERT_GE(f.payload.size(), 2u);
  EXPECT_EQ(
      static_cast<unsigned char>(f.payload[0]) << 8 | static_cast<unsigned char>(f.payload[1]),
      1000);
  EXPECT_TRUE(peer->finish_tcp());
  EXPECT_TRUE(peer->tether_closed_with(1000));
  std::cout << "[ INFO     ] 7.1.6: " << data.size() << " of " << expected.size()
            << " echoed bytes went out before the CLOSE\n";
}

// ---- 7.3 close frame structure: payload length ------------------------------------------------

AUTOBAHN_CASE(Case_7_3_1_CloseWithoutPayloadEchoedWithout) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  EXPECT_TRUE(peer->close_normally(close_code::no_status));
}

AUTOBAHN_CASE(Case_7_3_2_CloseWithOneBytePayloadFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(op::close, "a"));
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

AUTOBAHN_CASE(Case_7_3_3_CloseWithCodeEchoed) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  EXPECT_TRUE(peer->close_normally(1000));
}

AUTOBAHN_CASE(Case_7_3_4_CloseWithCodeAndReasonEchoed) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  EXPECT_TRUE(peer->close_normally(1000, "Hello World!"));
}

AUTOBAHN_CASE(Case_7_3_5_CloseWithReasonOf123BytesEchoed) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  EXPECT_TRUE(peer->close_normally(1000, std::string(123, '*')));
}

AUTOBAHN_CASE(Case_7_3_6_CloseWithReasonOf124BytesFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_close(1000, std::string(124, '*')));  // a control payload of 126
  EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
}

// ---- 7.5 close frame structure: payload value -------------------------------------------------

AUTOBAHN_CASE(Case_7_5_1_CloseWithInvalidUtf8ReasonFails) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_close(
      1000, std::string("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80") + "edited"));
  EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
}

// ---- 7.7 valid close codes are echoed ---------------------------------------------------------

void valid_codes_echoed(Endpoint& target, const std::vector<std::uint16_t>& codes,
                        const std::string& label) {
  for (std::size_t k = 0; k < codes.size(); ++k) {
    SCOPED_TRACE(label + std::to_string(k + 1) + ": close code " + std::to_string(codes[k]));
    auto peer = target.open();
    ASSERT_TRUE(peer);
    EXPECT_TRUE(peer->close_normally(codes[k]));
  }
}

AUTOBAHN_CASE(Case_7_7_ValidCloseCodesEchoed) {
  valid_codes_echoed(target,
                     {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999},
                     "case 7.7.");
}

// 1012-1014 are registered with IANA since RFC 6455 (service restart, try again later, bad
// gateway); Autobahn 0.8+ no longer lists them as invalid.
AUTOBAHN_CASE(Case_7_7_x_IanaRegisteredCodes1012To1014Echoed) {
  valid_codes_echoed(target, {1012, 1013, 1014}, "IANA code #");
}

// ---- 7.9 / 7.13 invalid close codes fail with 1002 --------------------------------------------

void invalid_codes_fail(Endpoint& target, const std::vector<std::uint16_t>& codes,
                        const std::string& label) {
  for (std::size_t k = 0; k < codes.size(); ++k) {
    SCOPED_TRACE(label + std::to_string(k + 1) + ": close code " + std::to_string(codes[k]));
    auto peer = target.open();
    ASSERT_TRUE(peer);
    ASSERT_TRUE(peer->send_close(codes[k]));
    EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
  }
}

AUTOBAHN_CASE(Case_7_9_InvalidCloseCodesFail) {
  invalid_codes_fail(target, {0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999}, "case 7.9.");
}

// Every other code outside the valid ranges that Autobahn's lists skip.
AUTOBAHN_CASE(Case_7_9_x_MoreInvalidCloseCodesFail) {
  invalid_codes_fail(target, {1, 998, 1015, 1017, 1999, 2998, 5001, 32768, 65534}, "code #");
}

AUTOBAHN_CASE(Case_7_13_1_CloseCode5000Fails) {
  invalid_codes_fail(target, {5000}, "case 7.13.");
}
AUTOBAHN_CASE(Case_7_13_2_CloseCode65535Fails) {
  invalid_codes_fail(target, {65535}, "case 7.13.");
}

}  // namespace
}  // namespace tether::conformance
