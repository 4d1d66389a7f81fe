// Autobahn sections 9 (limits and performance) and 10 (auto-fragmentation), in both roles.
// Every echo is compared byte for byte (Autobahn 9.x only checks lengths).
#include <random>

#include "conformance/conformance_harness.hpp"

namespace tether::conformance {
namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

// Valid UTF-8 of exactly `size` bytes with code points of every width, so that fragment
// boundaries fall inside multi-byte sequences.
std::string text_payload(std::size_t size) {
  static const std::string unit =
      "BAsd7&jh23 \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xe2\x82\xac \xf0\xa4\xad\xa2 ";
  std::string s;
  s.reserve(size);
  while (s.size() + unit.size() <= size) s += unit;
  s.append(size - s.size(), '*');
  return s;
}

std::string binary_payload(std::size_t size, unsigned seed = 9) {
  std::string s(size, '\0');
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < size; i += 4) {
    std::uint32_t v = rng();
    for (std::size_t k = 0; k < 4 && i + k < size; ++k) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

std::string payload_of(MessageType type, std::size_t size) {
  return type == MessageType::text ? text_payload(size) : binary_payload(size);
}

void echo_one(Endpoint& target, MessageType type, std::size_t size, Shape shape) {
  SCOPED_TRACE(std::string(type == MessageType::text ? "text" : "binary") + " message of " +
               std::to_string(size) + " bytes, fragments of " + std::to_string(shape.fragment) +
               ", chops of " + std::to_string(shape.chop));
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::string payload = payload_of(type, size);
  ASSERT_TRUE(peer->send_message(type, payload, shape));
  ASSERT_TRUE(peer->expect_message(type, payload));
  EXPECT_TRUE(peer->close_normally());
}

// ---- 9.1 / 9.2 messages of increasing size ---------------------------------------------------

#define SIZE_CASE(Name, type, size)                \
  AUTOBAHN_CASE(Name) {                            \
    echo_one(target, MessageType::type, size, {}); \
  }

SIZE_CASE(Case_9_1_1_Text64KiB, text, 64 * KiB)
SIZE_CASE(Case_9_1_2_Text256KiB, text, 256 * KiB)
SIZE_CASE(Case_9_1_3_Text1MiB, text, 1 * MiB)
SIZE_CASE(Case_9_1_4_Text4MiB, text, 4 * MiB)
SIZE_CASE(Case_9_1_5_Text8MiB, text, 8 * MiB)
SIZE_CASE(Case_9_1_6_Text16MiB, text, 16 * MiB)
SIZE_CASE(Case_9_2_1_Binary64KiB, binary, 64 * KiB)
SIZE_CASE(Case_9_2_2_Binary256KiB, binary, 256 * KiB)
SIZE_CASE(Case_9_2_3_Binary1MiB, binary, 1 * MiB)
SIZE_CASE(Case_9_2_4_Binary4MiB, binary, 4 * MiB)
SIZE_CASE(Case_9_2_5_Binary8MiB, binary, 8 * MiB)
SIZE_CASE(Case_9_2_6_Binary16MiB, binary, 16 * MiB)

// ---- 9.3 / 9.4 a 4 MiB message in fragments of increasing size ---------------------------------

const std::size_t fragment_sizes[] = {64,       256,       1 * KiB, 4 * KiB, 16 * KiB,
                                      64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB};

AUTOBAHN_CASE(Case_9_3_Text4MiBInFragmentsOf64BTo4MiB) {
  for (std::size_t f : fragment_sizes)
    echo_one(target, MessageType::text, 4 * MiB, Shape{.fragment = f});
}
AUTOBAHN_CASE(Case_9_4_Binary4MiBInFragmentsOf64BTo4MiB) {
  for (std::size_t f : fragment_sizes)
    echo_one(target, MessageType::binary, 4 * MiB, Shape{.fragment = f});
}

// ---- 9.5 / 9.6 a 1 MiB message written in chops of increasing size ------------------------------

const std::size_t chop_sizes[] = {64, 128, 256, 512, 1024, 2048};

AUTOBAHN_CASE(Case_9_5_Text1MiBInChopsOf64To2048) {
  for (std::size_t c : chop_sizes) echo_one(target, MessageType::text, 1 * MiB, Shape{.chop = c});
}
AUTOBAHN_CASE(Case_9_6_Binary1MiBInChopsOf64To2048) {
  for (std::size_t c : chop_sizes) echo_one(target, MessageType::binary, 1 * MiB, Shape{.chop = c});
}

// ---- 9.7 / 9.8 round trips: 1000 messages, one at a time ---------------------------------------

void round_trips(Endpoint& target, MessageType type) {
  for (std::size_t size : {0, 16, 64, 256, 1024, 4096}) {
    SCOPED_TRACE("1000 messages of " + std::to_string(size) + " bytes");
    auto peer = target.open();
    ASSERT_TRUE(peer);
    const std::string payload = payload_of(type, size);
    for (int i = 0; i < 1000; ++i) {
      ASSERT_TRUE(peer->send_message(type, payload));
      ASSERT_TRUE(peer->expect_message(type, payload)) << "round trip " << i;
    }
    EXPECT_TRUE(peer->close_normally());
  }
}

AUTOBAHN_CASE(Case_9_7_ThousandTextRoundTripsOfSize0To4096) {
  round_trips(target, MessageType::text);
}
AUTOBAHN_CASE(Case_9_8_ThousandBinaryRoundTripsOfSize0To4096) {
  round_trips(target, MessageType::binary);
}

// Past the limit (16 MiB by default): refused with 1009 from the declared length alone,
// before the payload is sent.
AUTOBAHN_CASE(Case_9_x_MessageOverTheSizeLimitFailsWith1009) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::size_t size = default_max_message_size + 1;
  // Header and the first bytes only; the rest never goes out.
  auto f = peer->frame(op::binary, std::string(size, 'x'));
  ASSERT_TRUE(peer->send_bytes(ByteView(f).first(64)));
  EXPECT_TRUE(peer->expect_failure(close_code::message_too_big));
}

AUTOBAHN_CASE(Case_9_x_FragmentedMessageOverTheSizeLimitFailsWith1009) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::string half(default_max_message_size / 2, 'x');
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::binary, half, false), peer->frame(op::cont, half, false)}));
  ASSERT_TRUE(peer->send_frame(op::cont, "y"));
  EXPECT_TRUE(peer->expect_failure(close_code::message_too_big));
}

// ---- 10 auto-fragmentation --------------------------------------------------------------------

// 10.1.1: a 65536-byte text message auto-fragmented into 1300-byte frames is echoed exactly.
AUTOBAHN_CASE(Case_10_1_1_Text65536AutoFragmentedAt1300) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  const std::string payload(65536, '*');
  ASSERT_TRUE(peer->send_message(MessageType::text, payload, Shape{.fragment = 1300}));
  ASSERT_TRUE(peer->expect_text(payload));
  EXPECT_TRUE(peer->close_normally());
}

// Tether's own auto-fragmentation (SessionOptions::fragment_size = 1300): the echo of a
// single-frame 65536-byte message arrives as 50 frames of 1300 bytes and one of 536, the
// frame counts Autobahn expects of an auto-fragmenting sender in 10.1.1.
void own_fragmentation(Endpoint& target) {
  auto peer = target.open();
  ASSERT_TRUE(peer);
  for (MessageType type : {MessageType::text, MessageType::binary}) {
    const std::string payload = payload_of(type, 65536);
    ASSERT_TRUE(peer->send_message(type, payload));
    MessageType got_type{};
    std::string got;
    std::vector<std::size_t> sizes;
    ASSERT_TRUE(peer->read_message(got_type, got, &sizes));
    EXPECT_EQ(got_type, type);
    EXPECT_TRUE(got == payload) << first_difference(got, payload);
    ASSERT_EQ(sizes.size(), 51u);
    for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(sizes[i], 1300u) << "frame " << i;
    EXPECT_EQ(sizes[50], 536u);
  }
  // A message of exactly the fragment size is not fragmented.
  ASSERT_TRUE(peer->send_message(MessageType::text, std::string(1300, 'a')));
  MessageType t{};
  std::string got;
  std::vector<std::size_t> sizes;
  ASSERT_TRUE(peer->read_message(t, got, &sizes));
  EXPECT_EQ(sizes, std::vector<std::size_t>{1300});
  EXPECT_TRUE(peer->close_normally());
}

SessionOptions fragment_1300() {
  SessionOptions s = conformance_session();
  s.fragment_size = 1300;
  return s;
}

TEST(ServerRole, Case_10_1_x_OwnMessagesFragmentedAt1300) {
  ServerEndpoint endpoint(fragment_1300());
  own_fragmentation(endpoint);
}
TEST(ClientRole, Case_10_1_x_OwnMessagesFragmentedAt1300) {
  ClientEndpoint endpoint(fragment_1300());
  own_fragmentation(endpoint);
}

}  // namespace
}  // namespace tether::conformance
