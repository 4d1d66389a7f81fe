// Autobahn sections 12 and 13 (permessage-deflate, RFC 7692), in both roles. The raw peer
// compresses and inflates with zlib itself. Its inflater holds the other side to what was
// agreed: it inflates with exactly the agreed window (output in small pieces, so zlib checks
// every distance against it) and drops its context after each message when the other side
// agreed to no context takeover, so a peer that breaks either promise fails to decode.
#include <random>

#include "conformance/conformance_harness.hpp"

namespace tether::conformance {
namespace {

// ---- test data: stand-ins for Autobahn's data files, made here -------------------------------

struct Dataset {
  const char* name;
  MessageType type;
  std::string data;  // ~256 KiB; text data sets are ASCII, so any byte slice is valid UTF-8
};

constexpr std::size_t dataset_size = 256 * 1024;

const char* const words[] = {"Habe",
                             "nun",
                             "ach",
                             "Philosophie",
                             "Juristerei",
                             "und",
                             "Medizin",
                             "leider",
                             "auch",
                             "Theologie",
                             "durchaus",
                             "studiert",
                             "mit",
                             "hei\xc3\x9f"
                             "em",
                             "Bem\xc3\xbchn",
                             "Da",
                             "steh",
                             "ich",
                             "armer",
                             "Tor",
                             "bin",
                             "so",
                             "klug",
                             "als",
                             "wie",
                             "zuvor",
                             "Hei\xc3\x9f"
                             "e",
                             "Magister",
                             "Doktor",
                             "gar",
                             "ziehe",
                             "schon",
                             "zehen",
                             "Jahr",
                             "herauf",
                             "herab",
                             "quer",
                             "krumm",
                             "meine",
                             "Sch\xc3\xbcler",
                             "Nase",
                             "sehe",
                             "da\xc3\x9f",
                             "wir",
                             "nichts",
                             "wissen",
                             "k\xc3\xb6nnen"};

std::string json_data() {
  std::mt19937 rng(1);
  std::string s = "[\n";
  for (int i = 0; s.size() < dataset_size; ++i) {
    s += "  {\"id\": " + std::to_string(i) + ", \"guid\": \"" + std::to_string(rng()) + "-" +
         std::to_string(rng() % 65536) + "\", \"isActive\": " + (rng() % 2 ? "true" : "false") +
         ", \"balance\": \"$" + std::to_string(rng() % 4000) + "." + std::to_string(rng() % 100) +
         "\", \"age\": " + std::to_string(20 + rng() % 50) + ", \"name\": \"" + words[rng() % 5] +
         " " + words[20 + rng() % 5] + "\", \"tags\": [\"" + std::string(words[rng() % 13]) +
         "\", \"" + words[rng() % 13] + "\"], \"latitude\": " + std::to_string(rng() % 180) + "." +
         std::to_string(rng() % 1000000) + "},\n";
  }
  for (char& c : s)
    if (static_cast<unsigned char>(c) >= 0x80) c = 'u';  // ASCII only
  return s;
}

std::string bitmap_data() {  // a 512x512 8-bit grey picture with a BMP-like header
  std::mt19937 rng(2);
  std::string s = "BM";
  s.append(52, '\0');
  for (int y = 0; y < 512; ++y)
    for (int x = 0; x < 512; ++x) {
      int v = (x * y / 256 + (x ^ y) / 8 + static_cast<int>(rng() % 6)) & 0xFF;
      s += static_cast<char>(v);
    }
  s.resize(dataset_size);
  return s;
}

std::string german_text_data() {  // sent as binary, like Autobahn's Faust
  std::mt19937 rng(3);
  std::string s;
  constexpr std::size_t n = sizeof words / sizeof words[0];
  while (s.size() < dataset_size) {
    s += words[rng() % n];
    s += rng() % 9 == 0 ? ",\n" : " ";
  }
  s.resize(dataset_size);
  return s;
}

std::string html_data() {
  std::mt19937 rng(4);
  std::string s = "<!DOCTYPE html>\n<html><head><title>Data</title></head><body><table>\n";
  for (int i = 0; s.size() < dataset_size; ++i)
    s += "<tr class=\"row" + std::to_string(i % 2) + "\"><td>" + std::to_string(i) +
         "</td><td><a href=\"/item/" + std::to_string(rng() % 100000) + "\">item " +
         std::to_string(rng() % 1000) + "</a></td><td>" + std::to_string(rng() % 10000) +
         "</td></tr>\n";
  return s;
}

std::string pdf_like_data() {  // text structure around incompressible streams
  std::mt19937 rng(5);
  std::string s = "%PDF-1.4\n";
  for (int obj = 1; s.size() < dataset_size; ++obj) {
    s += std::to_string(obj) + " 0 obj\n<< /Length 1024 /Filter /FlateDecode >>\nstream\n";
    for (int i = 0; i < 1024; ++i) s += static_cast<char>(rng());
    s += "\nendstream\nendobj\n";
  }
  s.resize(dataset_size);
  return s;
}

const Dataset& dataset(int section) {  // 12.1 .. 12.5, in Autobahn's report order
  static const Dataset sets[] = {{"JSON (utf8)", MessageType::text, json_data()},
                                 {"bitmap picture (binary)", MessageType::binary, bitmap_data()},
                                 {"German text (binary)", MessageType::binary, german_text_data()},
                                 {"HTML (utf8)", MessageType::text, html_data()},
                                 {"PDF-like (binary)", MessageType::binary, pdf_like_data()}};
  return sets[section - 1];
}

// Consecutive slices, wrapping around the end, as Autobahn takes them.
std::string next_slice(const std::string& data, std::size_t& cursor, std::size_t size) {
  std::string s;
  while (s.size() < size) {
    std::size_t n = std::min(size - s.size(), data.size() - cursor);
    s.append(data, cursor, n);
    cursor = (cursor + n) % data.size();
  }
  return s;
}

// ---- the exchanges ---------------------------------------------------------------------------

struct Size {
  std::size_t size;
  std::size_t autofrag;  // payload bytes per frame of the compressed message; 0: one frame
};

// Autobahn's MSG_SIZES: message size and auto-fragment size of cases 12.x.1 .. 12.x.18.
constexpr Size autobahn_sizes[] = {
    {16, 0},      {64, 0},      {256, 0},      {1024, 0},      {4096, 0},      {8192, 0},
    {16384, 0},   {32768, 0},   {65536, 0},    {131072, 0},    {8192, 256},    {16384, 256},
    {32768, 256}, {65536, 256}, {131072, 256}, {131072, 1024}, {131072, 4096}, {131072, 32768}};

// Autobahn sends 1000 messages per case; a few already take every code path (first message,
// context carried over, window wrapping for the large ones) at a fraction of the time.
constexpr int messages_per_case = 8;

// Below this Tether sends messages uncompressed (DeflateOptions::compress_threshold).
constexpr std::size_t tether_threshold = 64;

// `count` messages, each compressed by us and auto-fragmented; every echo must be exact, and
// compressed by Tether when at least its threshold.
testing::AssertionResult compressed_echoes(RawPeer& peer, const Dataset& d, Size s, int count,
                                           std::size_t& cursor) {
  for (int i = 0; i < count; ++i) {
    const std::string message = next_slice(d.data, cursor, s.size);
    if (!peer.send_message(d.type, message, Shape{.fragment = s.autofrag, .compress = true}))
      return testing::AssertionFailure() << "could not send message " << i;
    if (auto r = peer.expect_message(d.type, message); !r)
      return r << " (message " << i << " of " << s.size << " bytes)";
    if (message.size() >= tether_threshold && !peer.last_message_compressed())
      return testing::AssertionFailure()
             << "echo " << i << " of " << s.size << " bytes came back uncompressed";
  }
  return testing::AssertionSuccess();
}

// One Autobahn subsection: 18 cases (sizes and fragmentations), each on its own connection.
void deflate_section(Endpoint& target, const std::string& label, const Dataset& d,
                     const OpenOptions& how) {
  std::size_t cursor = 0;
  for (std::size_t k = 0; k < std::size(autobahn_sizes); ++k) {
    const Size s = autobahn_sizes[k];
    SCOPED_TRACE("case " + label + "." + std::to_string(k + 1) + ": " + d.name + ", messages of " +
                 std::to_string(s.size) + " bytes, auto-fragment " + std::to_string(s.autofrag));
    auto peer = target.open(how);
    ASSERT_TRUE(peer);
    ASSERT_TRUE(peer->deflate_enabled()) << "permessage-deflate was not agreed";
    ASSERT_TRUE(compressed_echoes(*peer, d, s, messages_per_case, cursor));
    EXPECT_TRUE(peer->close_normally());
  }
}

// The exchanges of the parameter sweeps: several sizes, each message twice in a row (the
// second is mostly a back-reference when context is kept), and a random 2 KiB block
// repeated, whose matches lie 2 KiB back: beyond a window of 8..10 bits.
void sweep_exchanges(RawPeer& peer) {
  ASSERT_TRUE(peer.deflate_enabled()) << "permessage-deflate was not agreed";
  std::size_t cursor = 0;
  for (Size s : {Size{16, 0}, Size{1024, 0}, Size{16384, 0}, Size{131072, 0}, Size{131072, 4096}})
    ASSERT_TRUE(compressed_echoes(peer, dataset(1), s, 2, cursor));
  const std::string twice = next_slice(dataset(4).data, cursor, 4096);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(peer.send_message(MessageType::text, twice, Shape{.compress = true}));
    ASSERT_TRUE(peer.expect_text(twice)) << "repeat " << i;
  }
  std::string block(2048, '\0');
  std::mt19937 rng(7);
  for (char& c : block) c = static_cast<char>(rng());
  std::string repeated;
  for (int i = 0; i < 8; ++i) repeated += block;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(peer.send_message(MessageType::binary, repeated, Shape{.compress = true}));
    ASSERT_TRUE(peer.expect_message(MessageType::binary, repeated));
  }
  EXPECT_TRUE(peer.close_normally());
}

// ---- server role -----------------------------------------------------------------------------

std::vector<std::shared_ptr<const Extension>> deflate_extension(DeflateOptions o = {}) {
  return {std::make_shared<PerMessageDeflate>(o)};
}

// Autobahn's fuzzing client offers this by default (PerMessageDeflateOffer()).
const std::string autobahn_offer =
    "permessage-deflate; client_no_context_takeover; client_max_window_bits";

// 12.x: default parameters, context takeover in both directions (Autobahn's offer adds
// client_no_context_takeover, which 13.1 covers; without it the server's inflater has to
// carry its context across messages too).
const OpenOptions default_offer{.offer = "permessage-deflate; client_max_window_bits"};

TEST(ServerRole, Case_12_1_JsonUtf8Compressed) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  deflate_section(server, "12.1", dataset(1), default_offer);
}
TEST(ServerRole, Case_12_2_BitmapBinaryCompressed) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  deflate_section(server, "12.2", dataset(2), default_offer);
}
TEST(ServerRole, Case_12_3_HumanReadableTextBinaryCompressed) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  deflate_section(server, "12.3", dataset(3), default_offer);
}
TEST(ServerRole, Case_12_4_HtmlUtf8Compressed) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  deflate_section(server, "12.4", dataset(4), default_offer);
}
TEST(ServerRole, Case_12_5_PdfLikeBinaryCompressed) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  deflate_section(server, "12.5", dataset(5), default_offer);
}

// The response honours the offer (RFC 7692 §7.1): a requested server_no_context_takeover is
// granted, a requested server window is granted or lowered, and client_max_window_bits only
// appears when offered.
void expect_offer_honoured(const std::string& offer, const std::string& response) {
  SCOPED_TRACE("offer '" + offer + "', response '" + response + "'");
  std::string error;
  auto agreed = parse_pmd_response(response, error);
  ASSERT_TRUE(agreed) << error;
  const std::string first = offer.substr(0, offer.find(','));
  bool offered_client_bits = false;
  for (const auto& [name, value] : split_params(first)) {
    if (name == "server_no_context_takeover") {
      EXPECT_TRUE(agreed->server_no_context_takeover);
    } else if (name == "server_max_window_bits") {
      EXPECT_LE(agreed->server_max_window_bits, std::stoi(value));
    } else if (name == "client_max_window_bits") {
      offered_client_bits = true;
      if (!value.empty()) {
        EXPECT_LE(agreed->client_max_window_bits, std::stoi(value));
      }
    }
  }
  if (!offered_client_bits) {
    EXPECT_EQ(response.find("client_max_window_bits"), std::string::npos);
  }
}

void section_13_server(const std::string& label, const std::string& offer) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  {
    auto peer = server.open({.offer = offer});
    ASSERT_TRUE(peer);
    expect_offer_honoured(offer, peer->extensions());
    EXPECT_TRUE(peer->close_normally());
  }
  deflate_section(server, label, dataset(1), {.offer = offer});
}

TEST(ServerRole, Case_13_1_AutobahnDefaultOffer) {
  section_13_server("13.1", autobahn_offer);
}
TEST(ServerRole, Case_13_2_OfferServerNoContextTakeover) {
  section_13_server("13.2", autobahn_offer + "; server_no_context_takeover");
}
TEST(ServerRole, Case_13_3_OfferServerMaxWindowBits8) {
  section_13_server("13.3", autobahn_offer + "; server_max_window_bits=8");
}
TEST(ServerRole, Case_13_4_OfferServerMaxWindowBits15) {
  section_13_server("13.4", autobahn_offer + "; server_max_window_bits=15");
}
TEST(ServerRole, Case_13_5_OfferServerNoContextTakeoverAndWindowBits8) {
  section_13_server("13.5",
                    autobahn_offer + "; server_no_context_takeover; server_max_window_bits=8");
}
TEST(ServerRole, Case_13_6_OfferServerNoContextTakeoverAndWindowBits15) {
  section_13_server("13.6",
                    autobahn_offer + "; server_no_context_takeover; server_max_window_bits=15");
}
TEST(ServerRole, Case_13_7_ThreeOffersFirstAccepted) {
  section_13_server("13.7", autobahn_offer +
                                "; server_no_context_takeover; server_max_window_bits=8, " +
                                autobahn_offer + "; server_no_context_takeover, " + autobahn_offer);
}

// Every parameter of RFC 7692 offered on its own.
void sweep_server(const std::string& offer) {
  SCOPED_TRACE("offer: " + offer);
  ServerEndpoint server(conformance_session(), deflate_extension());
  auto peer = server.open({.offer = offer});
  ASSERT_TRUE(peer);
  expect_offer_honoured(offer, peer->extensions());
  sweep_exchanges(*peer);
}

TEST(ServerRole, Case_13_x_PlainOfferContextTakeoverBothWays) {
  sweep_server("permessage-deflate");
}
TEST(ServerRole, Case_13_x_OfferClientNoContextTakeover) {
  sweep_server("permessage-deflate; client_no_context_takeover");
}
TEST(ServerRole, Case_13_x_OfferServerNoContextTakeover) {
  sweep_server("permessage-deflate; server_no_context_takeover");
}
TEST(ServerRole, Case_13_x_OfferClientMaxWindowBits8To15) {
  for (int bits = 8; bits <= 15; ++bits)
    sweep_server("permessage-deflate; client_max_window_bits=" + std::to_string(bits));
}
TEST(ServerRole, Case_13_x_OfferServerMaxWindowBits8To15) {
  for (int bits = 8; bits <= 15; ++bits)
    sweep_server("permessage-deflate; server_max_window_bits=" + std::to_string(bits));
}
TEST(ServerRole, Case_13_x_OfferEveryParameterAtOnce) {
  sweep_server(
      "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
      "client_max_window_bits=9; server_max_window_bits=9");
}

// A server that imposes its own limits on whatever a client offers (memory-bounded set-up).
TEST(ServerRole, Case_13_x_ServerImposedWindowsAndNoContextTakeover) {
  DeflateOptions o;
  o.server_no_context_takeover = true;
  o.server_max_window_bits = 10;
  o.client_max_window_bits = 10;
  ServerEndpoint server(conformance_session(), deflate_extension(o));
  auto peer = server.open({.offer = autobahn_offer});
  ASSERT_TRUE(peer);
  std::string error;
  auto agreed = parse_pmd_response(peer->extensions(), error);
  ASSERT_TRUE(agreed) << error;
  EXPECT_TRUE(agreed->server_no_context_takeover);
  EXPECT_LE(agreed->server_max_window_bits, 10);
  EXPECT_LE(agreed->client_max_window_bits, 10);
  sweep_exchanges(*peer);
}

// Compressed data that is not valid DEFLATE fails the connection (1007, what Autobahn's
// own implementation sends).
TEST(ServerRole, Case_12_x_InvalidCompressedDataFails) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  auto peer = server.open(default_offer);
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->deflate_enabled());
  ASSERT_TRUE(peer->send_frame(op::binary, std::string("\xff\xff\xff\xff\xff", 5), true, rsv1));
  EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
}

// RFC 7692 §7.1: an offer with an unknown parameter, an invalid value or a parameter twice is
// declined (the upgrade still succeeds, without the extension); RSV1 then fails with 1002.
TEST(ServerRole, Case_13_x_InvalidOffersDeclined) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  for (const char* offer :
       {"permessage-deflate; foo", "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=08",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "x-webkit-deflate-frame"}) {
    SCOPED_TRACE(offer);
    auto peer = server.open({.offer = offer});
    ASSERT_TRUE(peer);
    EXPECT_EQ(peer->extensions(), "");
    EXPECT_FALSE(peer->deflate_enabled());
    ASSERT_TRUE(peer->send_frame(op::text, "compressed?", true, rsv1));
    EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
  }
}

// Offers are tried in order: an invalid first one is skipped for the valid second one.
TEST(ServerRole, Case_13_x_InvalidFirstOfferFallsBackToSecond) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  const std::string offer =
      "permessage-deflate; server_max_window_bits=99, permessage-deflate; "
      "server_no_context_takeover";
  auto peer = server.open({.offer = offer});
  ASSERT_TRUE(peer);
  std::string error;
  auto agreed = parse_pmd_response(peer->extensions(), error);
  ASSERT_TRUE(agreed) << error;
  EXPECT_TRUE(agreed->server_no_context_takeover);
  sweep_exchanges(*peer);
}

// ---- client role -----------------------------------------------------------------------------

// The raw server answers `answer` after checking that the Tether client offered each of
// `must_offer`; Autobahn's fuzzing server would not accept otherwise.
OpenOptions client_deflate(DeflateOptions client, std::string answer,
                           std::vector<std::string> must_offer = {"client_max_window_bits"}) {
  OpenOptions o;
  o.client_deflate = client;
  o.answer = [answer, must_offer](const std::string& offer) -> std::optional<std::string> {
    auto params = split_params(offer);
    EXPECT_FALSE(params.empty());
    EXPECT_EQ(params.empty() ? "" : params[0].first, "permessage-deflate") << offer;
    for (const auto& want : must_offer) {
      bool found = false;
      for (const auto& [name, value] : params) found |= name == want || name + "=" + value == want;
      EXPECT_TRUE(found) << "the client's offer '" << offer << "' lacks " << want;
    }
    return answer;
  };
  return o;
}

TEST(ClientRole, Case_12_1_JsonUtf8Compressed) {
  ClientEndpoint client;
  deflate_section(client, "12.1", dataset(1), client_deflate({}, "permessage-deflate"));
}
TEST(ClientRole, Case_12_2_BitmapBinaryCompressed) {
  ClientEndpoint client;
  deflate_section(client, "12.2", dataset(2), client_deflate({}, "permessage-deflate"));
}
TEST(ClientRole, Case_12_3_HumanReadableTextBinaryCompressed) {
  ClientEndpoint client;
  deflate_section(client, "12.3", dataset(3), client_deflate({}, "permessage-deflate"));
}
TEST(ClientRole, Case_12_4_HtmlUtf8Compressed) {
  ClientEndpoint client;
  deflate_section(client, "12.4", dataset(4), client_deflate({}, "permessage-deflate"));
}
TEST(ClientRole, Case_12_5_PdfLikeBinaryCompressed) {
  ClientEndpoint client;
  deflate_section(client, "12.5", dataset(5), client_deflate({}, "permessage-deflate"));
}

DeflateOptions client_no_context() {
  DeflateOptions o;
  o.client_no_context_takeover = true;
  return o;
}

// 13.x as Autobahn's fuzzing server answers (accept1 .. accept7) a client whose offer allows
// it: client_no_context_takeover offered for 13.2, 13.5-13.7.
TEST(ClientRole, Case_13_1_AcceptedAsOffered) {
  ClientEndpoint client;
  deflate_section(client, "13.1", dataset(1), client_deflate({}, "permessage-deflate"));
}
TEST(ClientRole, Case_13_2_ServerRequestsClientNoContextTakeover) {
  ClientEndpoint client;
  deflate_section(
      client, "13.2", dataset(1),
      client_deflate(client_no_context(), "permessage-deflate; client_no_context_takeover",
                     {"client_no_context_takeover", "client_max_window_bits"}));
}
TEST(ClientRole, Case_13_3_ServerRequestsClientMaxWindowBits8) {
  ClientEndpoint client;
  deflate_section(client, "13.3", dataset(1),
                  client_deflate({}, "permessage-deflate; client_max_window_bits=8"));
}
TEST(ClientRole, Case_13_4_ServerRequestsClientMaxWindowBits15) {
  ClientEndpoint client;
  deflate_section(client, "13.4", dataset(1),
                  client_deflate({}, "permessage-deflate; client_max_window_bits=15"));
}
TEST(ClientRole, Case_13_5_ServerRequestsNoContextTakeoverAndWindowBits8) {
  ClientEndpoint client;
  deflate_section(
      client, "13.5", dataset(1),
      client_deflate(client_no_context(),
                     "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
                     {"client_no_context_takeover", "client_max_window_bits"}));
}
TEST(ClientRole, Case_13_6_ServerRequestsNoContextTakeoverAndWindowBits15) {
  ClientEndpoint client;
  deflate_section(
      client, "13.6", dataset(1),
      client_deflate(client_no_context(),
                     "permessage-deflate; client_no_context_takeover; client_max_window_bits=15",
                     {"client_no_context_takeover", "client_max_window_bits"}));
}
TEST(ClientRole, Case_13_7_ServerPicksItsFirstAcceptableAnswer) {
  ClientEndpoint client;
  deflate_section(
      client, "13.7", dataset(1),
      client_deflate(client_no_context(),
                     "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
                     {"client_no_context_takeover", "client_max_window_bits"}));
}

// The client asks for a smaller server window (8..14) or no server context; the raw server
// grants it and compresses accordingly.
TEST(ClientRole, Case_13_x_ClientRequestsServerMaxWindowBits8To15) {
  for (int bits = 8; bits <= 15; ++bits) {
    SCOPED_TRACE("server_max_window_bits=" + std::to_string(bits));
    ClientEndpoint client;
    DeflateOptions o;
    o.server_max_window_bits = bits;
    const std::string param = "server_max_window_bits=" + std::to_string(bits);
    auto peer = client.open(bits < 15 ? client_deflate(o, "permessage-deflate; " + param,
                                                       {param, "client_max_window_bits"})
                                      : client_deflate(o, "permessage-deflate"));
    ASSERT_TRUE(peer);
    sweep_exchanges(*peer);
  }
}

TEST(ClientRole, Case_13_x_ClientRequestsServerNoContextTakeover) {
  ClientEndpoint client;
  DeflateOptions o;
  o.server_no_context_takeover = true;
  auto peer = client.open(client_deflate(o, "permessage-deflate; server_no_context_takeover",
                                         {"server_no_context_takeover", "client_max_window_bits"}));
  ASSERT_TRUE(peer);
  sweep_exchanges(*peer);
}

TEST(ClientRole, Case_13_x_ClientNoContextTakeover) {
  ClientEndpoint client;
  auto peer = client.open(client_deflate(client_no_context(),
                                         "permessage-deflate; client_no_context_takeover",
                                         {"client_no_context_takeover"}));
  ASSERT_TRUE(peer);
  sweep_exchanges(*peer);
}

// The server lowers the client's window (the client offered client_max_window_bits).
TEST(ClientRole, Case_13_x_ServerImposesClientMaxWindowBits8To15) {
  for (int bits = 8; bits <= 15; ++bits) {
    SCOPED_TRACE("client_max_window_bits=" + std::to_string(bits));
    ClientEndpoint client;
    auto peer = client.open(
        client_deflate({}, "permessage-deflate; client_max_window_bits=" + std::to_string(bits)));
    ASSERT_TRUE(peer);
    sweep_exchanges(*peer);
  }
}

// RFC 6455 §9.1, RFC 7692 §7.1: a response the client did not ask for or cannot accept fails
// the connection: the client never opens, reports an error and closes the TCP connection.
TEST(ClientRole, Case_13_x_InvalidDeflateResponseFailsTheConnection) {
  ClientEndpoint client;
  DeflateOptions asks_10;
  asks_10.server_max_window_bits = 10;
  const std::pair<DeflateOptions, const char*> answers[] = {
      {{}, "permessage-deflate; foo"},
      {{}, "permessage-deflate; client_max_window_bits"},  // a response must give a value
      {{}, "permessage-deflate; server_max_window_bits=16"},
      {{}, "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
      {{}, "x-unknown-extension"},
      {asks_10, "permessage-deflate; server_max_window_bits=12"},  // above what was asked
  };
  for (const auto& [options, answer] : answers) {
    SCOPED_TRACE(answer);
    auto peer = client.open(client_deflate(options, answer, {}));
    ASSERT_TRUE(peer);
    EXPECT_TRUE(peer->expect_eof()) << "the client kept the connection";
    EXPECT_TRUE(peer->observed().wait_error(event_bound)) << "no error reported";
    EXPECT_FALSE(peer->observed().was_opened());
  }
}

// A client that offered nothing gets a response with permessage-deflate: it fails too.
TEST(ClientRole, Case_13_x_UnrequestedExtensionFailsTheConnection) {
  ClientEndpoint client;
  OpenOptions how;
  how.answer = [](const std::string& offer) -> std::optional<std::string> {
    EXPECT_EQ(offer, "");
    return "permessage-deflate";
  };
  auto peer = client.open(how);
  ASSERT_TRUE(peer);
  EXPECT_TRUE(peer->expect_eof()) << "the client kept the connection";
  EXPECT_TRUE(peer->observed().wait_error(event_bound)) << "no error reported";
  EXPECT_FALSE(peer->observed().was_opened());
}

TEST(ClientRole, Case_12_x_InvalidCompressedDataFails) {
  ClientEndpoint client;
  auto peer = client.open(client_deflate({}, "permessage-deflate"));
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->send_frame(op::binary, std::string("\xff\xff\xff\xff\xff", 5), true, rsv1));
  EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
}

// ---- both roles: compressed messages and the other rules --------------------------------------

// Shared by both roles: `how` opens a connection with default permessage-deflate.
void invalid_utf8_in_compressed_text(Endpoint& target, const OpenOptions& how) {
  const std::string bad =
      std::string("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80") + "edited";
  {
    auto peer = target.open(how);
    ASSERT_TRUE(peer);
    ASSERT_TRUE(peer->send_message(MessageType::text, bad, Shape{.compress = true}));
    EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
  }
  // Fail fast: a long valid first fragment, the surrogate in the second, no third.
  auto peer = target.open(how);
  ASSERT_TRUE(peer);
  std::size_t cursor = 0;
  const std::string prefix = next_slice(dataset(1).data, cursor, 4096);
  const std::string compressed_hint = prefix + bad + prefix;
  // Compress the whole message, but send its frames only up to the one holding the error.
  std::string frames_payload;
  {
    RawDeflater d(15, false);
    frames_payload = d.compress(compressed_hint);
  }
  // The inflated bytes up to the error come from the first 60% of the compressed data at
  // most; the final fragment is never sent.
  const std::size_t cut = frames_payload.size() * 3 / 5;
  ASSERT_TRUE(peer->send_frames(
      {peer->frame(op::text, std::string_view(frames_payload).substr(0, cut), false, rsv1),
       peer->frame(op::cont, std::string_view(frames_payload).substr(cut), false)}));
  EXPECT_TRUE(peer->expect_failure(close_code::invalid_payload));
}

void ping_between_compressed_fragments(Endpoint& target, const OpenOptions& how) {
  auto peer = target.open(how);
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->deflate_enabled());
  std::size_t cursor = 0;
  const std::string message = next_slice(dataset(1).data, cursor, 20000);
  RawDeflater d(15, true);  // a fresh stream: valid whatever context takeover was agreed
  const std::string z = d.compress(message);
  const std::size_t half = z.size() / 2;
  ASSERT_TRUE(
      peer->send_frames({peer->frame(op::text, std::string_view(z).substr(0, half), false, rsv1),
                         peer->frame(op::ping, "between")}));
  ASSERT_TRUE(peer->expect_pong("between"));
  ASSERT_TRUE(peer->send_frame(op::cont, std::string_view(z).substr(half)));
  ASSERT_TRUE(peer->expect_text(message));
  EXPECT_TRUE(peer->close_normally());
}

// RFC 7692 §7.2.3.6: an empty message compressed is the single byte 0x00.
void empty_compressed_message(Endpoint& target, const OpenOptions& how) {
  auto peer = target.open(how);
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->deflate_enabled());
  ASSERT_TRUE(peer->send_frame(op::text, std::string(1, '\0'), true, rsv1));
  ASSERT_TRUE(peer->expect_text(""));
  ASSERT_TRUE(peer->send_frame(op::binary, std::string(1, '\0'), true, rsv1));
  ASSERT_TRUE(peer->expect_message(MessageType::binary, ""));
  EXPECT_TRUE(peer->close_normally());
}

// Tether's own fragmentation of compressed messages: RSV1 on the first frame only, every
// frame at most fragment_size bytes of compressed payload.
void own_fragmentation_compressed(Endpoint& target, const OpenOptions& how) {
  auto peer = target.open(how);
  ASSERT_TRUE(peer);
  ASSERT_TRUE(peer->deflate_enabled());
  std::size_t cursor = 0;
  const std::string message = next_slice(dataset(5).data, cursor, 65536);  // compresses poorly
  ASSERT_TRUE(peer->send_message(MessageType::binary, message, Shape{.compress = true}));
  MessageType type{};
  std::string got;
  std::vector<std::size_t> sizes;
  ASSERT_TRUE(peer->read_message(type, got, &sizes));  // checks RSV1 only on the first frame
  EXPECT_TRUE(peer->last_message_compressed());
  EXPECT_TRUE(got == message) << first_difference(got, message);
  ASSERT_GT(sizes.size(), 1u);
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) EXPECT_EQ(sizes[i], 1300u) << "frame " << i;
  EXPECT_LE(sizes.back(), 1300u);
  EXPECT_TRUE(peer->close_normally());
}

const OpenOptions client_default_deflate = client_deflate({}, "permessage-deflate");

// RSV1 on a continuation frame or a control frame is still a protocol error with deflate on.
void rsv1_where_not_allowed(Endpoint& target, const OpenOptions& how) {
  {
    auto peer = target.open(how);
    ASSERT_TRUE(peer);
    ASSERT_TRUE(peer->deflate_enabled());
    ASSERT_TRUE(peer->send_frames({peer->frame(op::text, "fragment1", false),
                                   peer->frame(op::cont, "fragment2", true, rsv1)}));
    EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
  }
  for (int opcode : {op::ping, op::pong, op::close}) {
    SCOPED_TRACE(opcode_label(opcode));
    auto peer = target.open(how);
    ASSERT_TRUE(peer);
    ASSERT_TRUE(
        peer->send_frame(opcode, opcode == op::close ? close_payload(1000) : "x", true, rsv1));
    EXPECT_TRUE(peer->expect_failure(close_code::protocol_error));
  }
}

TEST(ServerRole, Case_12_x_InvalidUtf8InCompressedTextFailsFast) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  invalid_utf8_in_compressed_text(server, default_offer);
}
TEST(ClientRole, Case_12_x_InvalidUtf8InCompressedTextFailsFast) {
  ClientEndpoint client;
  invalid_utf8_in_compressed_text(client, client_default_deflate);
}
TEST(ServerRole, Case_12_x_PingBetweenCompressedFragments) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  ping_between_compressed_fragments(server, default_offer);
}
TEST(ClientRole, Case_12_x_PingBetweenCompressedFragments) {
  ClientEndpoint client;
  ping_between_compressed_fragments(client, client_default_deflate);
}
TEST(ServerRole, Case_12_x_Rsv1OnContinuationOrControlFrameFails) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  rsv1_where_not_allowed(server, default_offer);
}
TEST(ClientRole, Case_12_x_Rsv1OnContinuationOrControlFrameFails) {
  ClientEndpoint client;
  rsv1_where_not_allowed(client, client_default_deflate);
}
TEST(ServerRole, Case_12_x_EmptyCompressedMessage) {
  ServerEndpoint server(conformance_session(), deflate_extension());
  empty_compressed_message(server, default_offer);
}
TEST(ClientRole, Case_12_x_EmptyCompressedMessage) {
  ClientEndpoint client;
  empty_compressed_message(client, client_default_deflate);
}

SessionOptions fragment_1300() {
  SessionOptions s = conformance_session();
  s.fragment_size = 1300;
  return s;
}
TEST(ServerRole, Case_10_1_x_OwnFragmentationOfCompressedMessages) {
  ServerEndpoint server(fragment_1300(), deflate_extension());
  own_fragmentation_compressed(server, default_offer);
}
TEST(ClientRole, Case_10_1_x_OwnFragmentationOfCompressedMessages) {
  ClientEndpoint client(fragment_1300());
  own_fragmentation_compressed(client, client_default_deflate);
}

}  // namespace
}  // namespace tether::conformance
