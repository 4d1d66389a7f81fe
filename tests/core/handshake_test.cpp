#include "tether/handshake.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tether {
namespace {

using ServerStatus = ServerHandshake::Status;
using ClientStatus = ClientHandshake::Status;

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// RFC 6455 §1.3, with CRLF line ends.
const std::string rfc_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";
const std::string rfc_response =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: chat\r\n"
    "\r\n";

/// A minimal valid upgrade request with `extra` header lines (each ending in CRLF).
std::string request_with(std::string_view extra = {},
                         std::string_view first_line = "GET /chat HTTP/1.1") {
  std::string r(first_line);
  r += "\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  r += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

struct ServerResult {
  ServerStatus status;
  int http_status;
  std::size_t consumed;
  std::string response;
  std::string error;
};

ServerResult feed_server(std::string_view bytes, ServerHandshakeConfig config = {}) {
  ServerHandshake hs(std::move(config));
  std::size_t consumed = 0;
  const ServerStatus status = hs.receive(as_bytes(bytes), consumed);
  return {status, hs.http_status(), consumed, hs.response(), hs.error()};
}

ClientHandshakeConfig client_config() {
  ClientHandshakeConfig config;
  config.host = "server.example.com";
  config.target = "/chat";
  config.key = std::string(rfc_key);
  return config;
}

std::string response_with(std::string_view extra,
                          std::string_view accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
  std::string r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n";
  r += "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
  r += accept;
  r += "\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

ClientStatus feed_client(ClientHandshake& hs, std::string_view bytes, std::size_t* used = nullptr) {
  std::size_t consumed = 0;
  const ClientStatus status = hs.receive(as_bytes(bytes), consumed);
  if (used != nullptr) *used = consumed;
  return status;
}

// ---------------------------------------------------------------------------------------------
// Test extension: offers "p=1", accepted by a server only when the offer carries p.

class NullTransform : public MessageTransform {
 public:
  bool encode(MessageType, ByteView, std::vector<std::byte>& out) override {
    out.clear();
    return false;
  }
  TransformStatus decode(ByteView fragment, bool, std::vector<std::byte>& out,
                         std::uint64_t) override {
    out.insert(out.end(), fragment.begin(), fragment.end());
    return {};
  }
};

class TestExtension : public Extension {
 public:
  explicit TestExtension(std::string name = "x-test", std::string offer = "p=1")
      : name_(std::move(name)), offer_(std::move(offer)) {}
  std::string_view name() const override { return name_; }
  std::string client_offer() const override { return offer_; }
  std::unique_ptr<MessageTransform> client_accept(const ExtensionOffer& response,
                                                  std::string& error) const override {
    for (const ExtensionParam& param : response.params) {
      if (param.name == "p") return std::make_unique<NullTransform>();
    }
    error = "p is required";
    return nullptr;
  }
  std::unique_ptr<MessageTransform> server_accept(const ExtensionOffer& offer,
                                                  std::string& response_params) const override {
    for (const ExtensionParam& param : offer.params) {
      if (param.name == "p") {
        response_params = "p=" + param.value.value_or("0");
        return std::make_unique<NullTransform>();
      }
    }
    return nullptr;
  }

 private:
  std::string name_;
  std::string offer_;
};

// ---------------------------------------------------------------------------------------------
// Keys

TEST(WebSocketKey, AcceptKeyOfRfcExample) {
  EXPECT_EQ(websocket_accept_key(rfc_key), rfc_accept);
}

TEST(WebSocketKey, GeneratedKeysAreValidAndFresh) {
  const std::string a = make_websocket_key();
  const std::string b = make_websocket_key();
  EXPECT_TRUE(is_valid_websocket_key(a)) << a;
  EXPECT_TRUE(is_valid_websocket_key(b)) << b;
  EXPECT_NE(a, b);
}

TEST(WebSocketKey, Validation) {
  EXPECT_TRUE(is_valid_websocket_key(rfc_key));
  EXPECT_TRUE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_TRUE(is_valid_websocket_key("+/+/+/+/+/+/+/+/+/+/+w=="));
  EXPECT_FALSE(is_valid_websocket_key(""));
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 chars
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25 chars
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQAA"));   // 18 bytes, no padding
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZ*=="));   // not base64
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25j ZQ="));
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZ-=="));  // base64url
}

// ---------------------------------------------------------------------------------------------
// HTTP heads

TEST(HttpHeaders, FindJoinedAndTokensIgnoreCase) {
  HttpHeaders h;
  h.add("Connection", "keep-alive, Upgrade");
  h.add("X-Multi", "a");
  h.add("x-multi", "b");
  ASSERT_NE(h.find("connection"), nullptr);
  EXPECT_EQ(*h.find("CONNECTION"), "keep-alive, Upgrade");
  EXPECT_EQ(h.find("Upgrade"), nullptr);
  EXPECT_EQ(*h.find("X-MULTI"), "a");
  EXPECT_EQ(h.joined("x-multi"), "a, b");
  EXPECT_EQ(h.joined("absent"), "");
  EXPECT_TRUE(h.has_token("connection", "upgrade"));
  EXPECT_TRUE(h.has_token("Connection", "KEEP-ALIVE"));
  EXPECT_FALSE(h.has_token("Connection", "keep"));
  EXPECT_FALSE(h.has_token("Connection", "keep-alive, Upgrade"));
  EXPECT_TRUE(h.has_token("x-multi", "b"));
  EXPECT_FALSE(h.has_token("absent", "a"));

  HttpHeaders spaced;
  spaced.add("Upgrade", " ,  h2c ,\tWebSocket  ,");
  EXPECT_TRUE(spaced.has_token("upgrade", "websocket"));
  EXPECT_TRUE(spaced.has_token("upgrade", "h2c"));
  EXPECT_FALSE(spaced.has_token("upgrade", ""));
}

TEST(HttpRequestHead, ParsesRfcExample) {
  const std::string bytes = rfc_request + "trailing frame bytes";
  HttpRequestHead head;
  std::size_t size = 0;
  int status = 0;
  std::string error;
  ASSERT_EQ(parse_request_head(bytes, 8192, head, size, status, error), HeadParse::complete)
      << error;
  EXPECT_EQ(size, rfc_request.size());
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/chat");
  EXPECT_EQ(head.version_minor, 1);
  EXPECT_EQ(head.headers.size(), 7u);
  EXPECT_EQ(head.headers.fields()[5].name, "Sec-WebSocket-Protocol");
  EXPECT_EQ(head.headers.fields()[5].value, "chat, superchat");
}

TEST(HttpRequestHead, TrimsOwsAroundValues) {
  HttpRequestHead head;
  std::size_t size = 0;
  int status = 0;
  std::string error;
  ASSERT_EQ(parse_request_head("GET / HTTP/1.1\r\nA: \t x y \t\r\nB:\r\n\r\n", 8192, head, size,
                               status, error),
            HeadParse::complete);
  EXPECT_EQ(*head.headers.find("a"), "x y");
  EXPECT_EQ(*head.headers.find("b"), "");
}

TEST(HttpRequestHead, IncompleteUntilBlankLine) {
  HttpRequestHead head;
  std::size_t size = 0;
  int status = 0;
  std::string error;
  for (std::string_view partial :
       {"", "GET", "GET / HTTP/1.1", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\nHost: a\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r"}) {
    EXPECT_EQ(parse_request_head(partial, 8192, head, size, status, error), HeadParse::incomplete)
        << partial;
  }
}

struct BadHead {
  const char* name;
  std::string bytes;
  int status;
};

void PrintTo(const BadHead& row, std::ostream* os) {
  *os << row.name;
}

class BadRequestHead : public testing::TestWithParam<BadHead> {};

TEST_P(BadRequestHead, IsRefused) {
  HttpRequestHead head;
  std::size_t size = 0;
  int status = 0;
  std::string error;
  EXPECT_EQ(parse_request_head(GetParam().bytes, 8192, head, size, status, error),
            HeadParse::error);
  EXPECT_EQ(status, GetParam().status);
  EXPECT_FALSE(error.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadRequestHead,
    testing::Values(
        BadHead{"BareLf", "GET / HTTP/1.1\nHost: a\n\n", 400},
        BadHead{"BareLfInHeaders", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
        BadHead{"BareCr", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
        BadHead{"Folding", "GET / HTTP/1.1\r\nHost: a\r\n  b\r\n\r\n", 400},
        BadHead{"FoldingTab", "GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n", 400},
        BadHead{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        BadHead{"BadNameChar", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400},
        BadHead{"EmptyName", "GET / HTTP/1.1\r\n: a\r\n\r\n", 400},
        BadHead{"NoColon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
        BadHead{"ControlInValue", std::string("GET / HTTP/1.1\r\nHost: a\x01z\r\n\r\n"), 400},
        BadHead{"NulInValue", std::string("GET / HTTP/1.1\r\nHost: a\0z\r\n\r\n", 28), 400},
        BadHead{"DelInValue", "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 400},
        BadHead{"EmptyRequestLine", "\r\nGET / HTTP/1.1\r\n\r\n", 400},
        BadHead{"TwoSpaces", "GET  / HTTP/1.1\r\n\r\n", 400},
        BadHead{"NoTarget", "GET HTTP/1.1\r\n\r\n", 400},
        BadHead{"BadMethod", "G@T / HTTP/1.1\r\n\r\n", 400},
        BadHead{"LowercaseVersion", "GET / http/1.1\r\n\r\n", 400},
        BadHead{"TrailingJunk", "GET / HTTP/1.1 x\r\n\r\n", 400},
        BadHead{"Http2", "GET / HTTP/2.0\r\n\r\n", 505},
        BadHead{"Http12", "GET / HTTP/1.2\r\n\r\n", 505},
        BadHead{"Http09", "GET / HTTP/0.9\r\n\r\n", 505}),
    [](const testing::TestParamInfo<BadHead>& info) { return std::string(info.param.name); });

TEST(HttpRequestHead, ErrorsSayWhatWasWrong) {
  HttpRequestHead head;
  std::size_t size = 0;
  int status = 0;
  std::string error;
  const auto error_of = [&](std::string_view bytes) {
    error.clear();
    EXPECT_EQ(parse_request_head(bytes, 8192, head, size, status, error), HeadParse::error);
    return error;
  };
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nA: b\r\n c: d\r\n\r\n"),
            "obsolete line folding in the HTTP head");
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nA\t: b\r\n\r\n"),
            "whitespace between header field name and colon");
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nA: b\n\r\n"), "bare LF in the HTTP head");
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nX-A: b\x01\r\n\r\n"),
            "control character in HTTP header field 'X-A'");
  EXPECT_EQ(error_of("GET / HTTP/3.0\r\n\r\n"), "unsupported HTTP version HTTP/3.0");
}

TEST(HttpRequestHead, TooLargeEvenBeforeTheBlankLine) {
  HttpRequestHead head;
  std::size_t size = 0;
  int status = 0;
  std::string error;
  // Complete lines, never a blank one.
  std::string lines = "GET / HTTP/1.1\r\n";
  while (lines.size() <= 100) lines += "X-Pad: 0123456789\r\n";
  EXPECT_EQ(parse_request_head(lines, 100, head, size, status, error), HeadParse::error);
  EXPECT_EQ(status, 431);
  // One line that never ends.
  const std::string endless = "GET /" + std::string(100, 'a');
  EXPECT_EQ(parse_request_head(endless, 100, head, size, status, error), HeadParse::error);
  EXPECT_EQ(status, 431);
  // Exactly at the limit is fine; one more byte is not.
  const std::string exact = "GET / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(parse_request_head(exact, exact.size(), head, size, status, error),
            HeadParse::complete);
  EXPECT_EQ(parse_request_head(exact, exact.size() - 1, head, size, status, error),
            HeadParse::error);
  EXPECT_EQ(status, 431);
}

TEST(HttpResponseHead, ParsesStatusLines) {
  HttpResponseHead head;
  std::size_t size = 0;
  std::string error;
  ASSERT_EQ(parse_response_head(rfc_response, 8192, head, size, error), HeadParse::complete);
  EXPECT_EQ(head.status, 101);
  EXPECT_EQ(head.reason, "Switching Protocols");
  EXPECT_EQ(size, rfc_response.size());

  ASSERT_EQ(parse_response_head("HTTP/1.0 404 \r\n\r\n", 8192, head, size, error),
            HeadParse::complete);
  EXPECT_EQ(head.status, 404);
  EXPECT_EQ(head.reason, "");
  EXPECT_EQ(head.version_minor, 0);

  for (std::string_view bad :
       {"HTTP/1.1 1O1 Switching\r\n\r\n", "HTTP/1.1  101 x\r\n\r\n", "HTTP/2.0 101 x\r\n\r\n",
        "HTTP/1.1 101x\r\n\r\n", "HTTP/1.1 99 x\r\n\r\n", "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 101 OK\nUpgrade: websocket\r\n\r\n", "HTTP/1.1 101 OK\r\n x: y\r\n\r\n"}) {
    EXPECT_EQ(parse_response_head(bad, 8192, head, size, error), HeadParse::error) << bad;
  }
  EXPECT_EQ(parse_response_head("HTTP/1.1 101 " + std::string(200, 'a'), 100, head, size, error),
            HeadParse::error);
}

// ---------------------------------------------------------------------------------------------
// Server

TEST(ServerHandshake, AcceptsRfcExample) {
  ServerHandshake hs;
  std::size_t consumed = 0;
  ASSERT_EQ(hs.receive(as_bytes(rfc_request), consumed), ServerStatus::request) << hs.error();
  EXPECT_EQ(consumed, rfc_request.size());
  EXPECT_EQ(hs.request().target, "/chat");
  EXPECT_EQ(*hs.request().headers.find("origin"), "http://example.com");
  EXPECT_EQ(hs.offered_subprotocols(), (std::vector<std::string>{"chat", "superchat"}));
  EXPECT_EQ(hs.accept("chat"), rfc_response);
  EXPECT_EQ(hs.take_transform(), nullptr);
}

TEST(ServerHandshake, DoesNotConsumeBytesAfterTheHead) {
  ServerHandshake hs;
  const std::string bytes = rfc_request + "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  std::size_t consumed = 0;
  ASSERT_EQ(hs.receive(as_bytes(bytes), consumed), ServerStatus::request);
  EXPECT_EQ(consumed, rfc_request.size());
  // Once decided, later bytes are not the handshake's.
  EXPECT_EQ(hs.receive(as_bytes(bytes), consumed), ServerStatus::request);
  EXPECT_EQ(consumed, 0u);
}

TEST(ServerHandshake, TokensAreCaseInsensitiveInsideLists) {
  const auto r = feed_server(
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(r.status, ServerStatus::request) << r.error;

  // Split across two Connection fields is the same list (RFC 9110 §5.3).
  const auto two = feed_server(
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
      "Connection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(two.status, ServerStatus::request) << two.error;

  // A token is a whole list element, not a substring.
  const auto substring = feed_server(
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgraded\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(substring.http_status, 400);
}

struct ServerError {
  const char* name;
  std::string request;
  int status;
  const char* response_has;  ///< a header the response must carry ("" for none)
};

void PrintTo(const ServerError& row, std::ostream* os) {
  *os << row.name;
}

class ServerRefuses : public testing::TestWithParam<ServerError> {};

TEST_P(ServerRefuses, WithStatus) {
  const auto r = feed_server(GetParam().request);
  ASSERT_EQ(r.status, ServerStatus::failed);
  EXPECT_EQ(r.http_status, GetParam().status) << r.error;
  EXPECT_FALSE(r.error.empty());
  const std::string status_line = "HTTP/1.1 " + std::to_string(GetParam().status) + " " +
                                  std::string(http_reason_phrase(GetParam().status)) + "\r\n";
  EXPECT_EQ(r.response.rfind(status_line, 0), 0u) << r.response;
  EXPECT_NE(r.response.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_NE(r.response.find(r.error), std::string::npos) << "the body explains the refusal";
  EXPECT_NE(r.response.find(GetParam().response_has), std::string::npos) << r.response;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ServerRefuses,
    testing::Values(
        ServerError{"Post", request_with({}, "POST /chat HTTP/1.1"), 405, "\r\nAllow: GET\r\n"},
        ServerError{"Head", request_with({}, "HEAD /chat HTTP/1.1"), 405, "\r\nAllow: GET\r\n"},
        ServerError{"MissingHost",
                    "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    400, ""},
        ServerError{"TwoHosts", request_with("Host: other\r\n"), 400, ""},
        ServerError{"NoUpgrade",
                    "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    426, "\r\nUpgrade: websocket\r\n"},
        ServerError{"PlainGet", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 426,
                    "\r\nUpgrade: websocket\r\n"},
        ServerError{"UpgradeToOther",
                    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    426, ""},
        ServerError{"NoConnectionUpgrade",
                    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    400, ""},
        ServerError{"Version8",
                    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 8\r\n\r\n",
                    426, "\r\nSec-WebSocket-Version: 13\r\n"},
        ServerError{"VersionMissing",
                    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                    400, ""},
        ServerError{"KeyMissing",
                    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    400, ""},
        ServerError{"KeyTooShort",
                    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                    400, ""},
        ServerError{"KeyNotBase64",
                    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    400, ""},
        ServerError{"TwoKeys", request_with("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"), 400,
                    ""},
        ServerError{"Http10", request_with({}, "GET /chat HTTP/1.0"), 400, ""},
        ServerError{"Http20", request_with({}, "GET /chat HTTP/2.0"), 505, ""},
        ServerError{"Folding", request_with("X-A: a\r\n b\r\n"), 400, ""},
        ServerError{"BadHeaderName", request_with("X A: b\r\n"), 400, ""},
        ServerError{"BadHeaderNameSeparator", request_with("X[A]: b\r\n"), 400, ""},
        ServerError{"SpaceBeforeColon", request_with("X-A : b\r\n"), 400, ""},
        ServerError{"ControlInValue", request_with("X-A: b\x0b\r\n"), 400, ""},
        ServerError{"BareLf", "GET / HTTP/1.1\nHost: h\n\n", 400, ""},
        ServerError{"Body", request_with("Content-Length: 5\r\n"), 400, ""},
        ServerError{"Chunked", request_with("Transfer-Encoding: chunked\r\n"), 400, ""},
        ServerError{"MalformedExtensions", request_with("Sec-WebSocket-Extensions: a;;b\r\n"), 400,
                    ""}),
    [](const testing::TestParamInfo<ServerError>& info) { return std::string(info.param.name); });

TEST(ServerHandshake, EmptyContentLengthIsFine) {
  EXPECT_EQ(feed_server(request_with("Content-Length: 0\r\n")).status, ServerStatus::request);
}

TEST(ServerHandshake, HeadOverLimitIs431BeforeTheBlankLine) {
  ServerHandshake hs;
  std::size_t consumed = 0;
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
  ServerStatus status = hs.receive(as_bytes(head), consumed);
  ASSERT_EQ(status, ServerStatus::incomplete);
  const std::string pad = "X-Pad: " + std::string(100, 'p') + "\r\n";
  std::size_t sent = head.size();
  while (status == ServerStatus::incomplete && sent < 20000) {
    status = hs.receive(as_bytes(pad), consumed);
    sent += pad.size();
  }
  ASSERT_EQ(status, ServerStatus::failed);
  EXPECT_EQ(hs.http_status(), 431);
  EXPECT_GT(sent, 8192u);
  EXPECT_LT(sent, 8192u + 2 * pad.size()) << "refused as soon as the limit was passed";
  EXPECT_EQ(hs.response().rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0u);

  // A single line with no end in sight, in one read.
  const auto r = feed_server("GET /" + std::string(9000, 'a'));
  EXPECT_EQ(r.http_status, 431);

  // The limit is configurable.
  ServerHandshakeConfig small;
  small.max_header_bytes = 64;
  EXPECT_EQ(feed_server(rfc_request, small).http_status, 431);
}

TEST(ServerHandshake, EverySplitGivesTheSameResult) {
  const std::string frames = "\x81\x80\x01\x02\x03\x04";
  const std::vector<std::string> inputs = {
      rfc_request + frames,
      request_with("X-A: a\r\n b\r\n"),                      // 400
      request_with({}, "PUT / HTTP/1.1"),                    // 405
      "GET / HTTP/1.1\r\nHost: h\r\n\r\n",                   // 426
      "GET / HTTP/1.1\nHost: h\n\n",                         // 400
      request_with("Sec-WebSocket-Version: 7\r\n") + frames  // 426
  };
  for (const std::string& input : inputs) {
    const auto whole = feed_server(input);
    for (std::size_t cut = 0; cut <= input.size(); ++cut) {
      ServerHandshake hs;
      std::size_t first = 0;
      std::size_t second = 0;
      ServerStatus status = hs.receive(as_bytes(std::string_view(input).substr(0, cut)), first);
      if (status == ServerStatus::incomplete) {
        status = hs.receive(as_bytes(std::string_view(input).substr(cut)), second);
      }
      ASSERT_EQ(status, whole.status) << "cut at " << cut << " of " << input;
      EXPECT_EQ(hs.http_status(), whole.http_status) << "cut at " << cut;
      if (status == ServerStatus::request) {
        EXPECT_EQ(first + second, whole.consumed) << "cut at " << cut;
        EXPECT_EQ(hs.request().headers.size(), 7u);
      }
    }
    // And byte by byte.
    ServerHandshake hs;
    std::size_t total = 0;
    std::size_t i = 0;
    ServerStatus status = ServerStatus::incomplete;
    for (; i < input.size() && status == ServerStatus::incomplete; ++i) {
      std::size_t consumed = 0;
      status = hs.receive(as_bytes(std::string_view(input).substr(i, 1)), consumed);
      total += consumed;
    }
    EXPECT_EQ(status, whole.status);
    EXPECT_EQ(hs.http_status(), whole.http_status);
    if (status == ServerStatus::request) {
      EXPECT_EQ(total, whole.consumed);
    }
  }
  EXPECT_EQ(feed_server(inputs[0]).consumed, rfc_request.size());
}

TEST(ServerHandshake, OfferedSubprotocolsFromAllFieldsInOrder) {
  ServerHandshake hs;
  std::size_t consumed = 0;
  const std::string request =
      request_with("Sec-WebSocket-Protocol: b ,a\r\nSec-WebSocket-Protocol: , c\r\n");
  ASSERT_EQ(hs.receive(as_bytes(request), consumed), ServerStatus::request);
  EXPECT_EQ(hs.offered_subprotocols(), (std::vector<std::string>{"b", "a", "c"}));
}

TEST(ServerHandshake, AcceptAddsExtraHeadersAndIgnoresUnofferedSubprotocol) {
  ServerHandshake hs;
  std::size_t consumed = 0;
  ASSERT_EQ(hs.receive(as_bytes(rfc_request), consumed), ServerStatus::request);
  const std::string response = hs.accept("mqtt", {{"Set-Cookie", "id=1"}});
  EXPECT_EQ(response.find("Sec-WebSocket-Protocol"), std::string::npos) << response;
  EXPECT_NE(response.find("\r\nSet-Cookie: id=1\r\n"), std::string::npos);
  EXPECT_EQ(response.substr(response.size() - 4), "\r\n\r\n");
  EXPECT_THROW(hs.accept("", {{"X-Evil", "a\r\nInjected: 1"}}), std::invalid_argument);
}

TEST(ServerHandshake, AcceptBeforeARequestIsAnError) {
  ServerHandshake hs;
  EXPECT_THROW(hs.accept(""), std::logic_error);
}

TEST(HttpErrorResponse, Format) {
  EXPECT_EQ(http_error_response(403, "no\n", {{"X-Why", "because"}}),
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
            "X-Why: because\r\n\r\nno\n");
  EXPECT_EQ(http_reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(http_reason_phrase(426), "Upgrade Required");
  EXPECT_EQ(http_reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(http_reason_phrase(599), "Unknown");
}

// ---------------------------------------------------------------------------------------------
// Client

TEST(ClientHandshake, BuildsTheRequest) {
  ClientHandshakeConfig config;
  config.host = "example.com:8080";
  config.target = "/chat/room?id=42&x=%20";
  config.subprotocols = {"a", "b"};
  config.headers = {{"Origin", "https://example.com"}, {"Authorization", "Bearer t0k"}};
  ClientHandshake hs(std::move(config));
  const std::string& r = hs.request();
  EXPECT_EQ(r.rfind("GET /chat/room?id=42&x=%20 HTTP/1.1\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("\r\nHost: example.com:8080\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nUpgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nConnection: Upgrade\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nSec-WebSocket-Key: " + hs.key() + "\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nSec-WebSocket-Protocol: a, b\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nOrigin: https://example.com\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nAuthorization: Bearer t0k\r\n"), std::string::npos);
  EXPECT_EQ(r.find("Sec-WebSocket-Extensions"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 4), "\r\n\r\n");

  // What the client sends is what our server accepts.
  const auto server = feed_server(r);
  EXPECT_EQ(server.status, ServerStatus::request) << server.error;
  EXPECT_EQ(server.consumed, r.size());
}

TEST(ClientHandshake, GeneratesAFreshValidKey) {
  ClientHandshakeConfig config;
  config.host = "h";
  ClientHandshake a(config);
  ClientHandshake b(config);
  EXPECT_TRUE(is_valid_websocket_key(a.key())) << a.key();
  EXPECT_TRUE(is_valid_websocket_key(b.key())) << b.key();
  EXPECT_NE(a.key(), b.key());
  ClientHandshake fixed(client_config());
  EXPECT_EQ(fixed.key(), rfc_key);
}

TEST(ClientHandshake, RefusesHeaderInjectionInItsConfig) {
  auto config = client_config();
  config.headers = {{"X-A", "1\r\nX-B: 2"}};
  EXPECT_THROW(ClientHandshake{config}, std::invalid_argument);
  config = client_config();
  config.headers = {{"X A", "1"}};
  EXPECT_THROW(ClientHandshake{config}, std::invalid_argument);
  config = client_config();
  config.target = "/a b";
  EXPECT_THROW(ClientHandshake{config}, std::invalid_argument);
  config = client_config();
  config.subprotocols = {"a,b"};
  EXPECT_THROW(ClientHandshake{config}, std::invalid_argument);
}

TEST(ClientHandshake, AcceptsRfcResponseAndLeavesFramesAlone) {
  auto config = client_config();
  config.subprotocols = {"chat", "superchat"};
  ClientHandshake hs(std::move(config));
  const std::string bytes = rfc_response + "\x81\x05hello";
  std::size_t consumed = 0;
  ASSERT_EQ(feed_client(hs, bytes, &consumed), ClientStatus::accepted) << hs.error();
  EXPECT_EQ(consumed, rfc_response.size());
  EXPECT_EQ(hs.http_status(), 101);
  EXPECT_EQ(hs.subprotocol(), "chat");
  EXPECT_EQ(hs.take_transform(), nullptr);
  EXPECT_EQ(feed_client(hs, "more", &consumed), ClientStatus::accepted);
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(hs.receive_eof(), ClientStatus::accepted);
}

TEST(ClientHandshake, EverySplitGivesTheSameResult) {
  auto config = client_config();
  config.subprotocols = {"chat"};
  const std::string bytes = rfc_response + "\x81\x02hi";
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    ClientHandshake hs(config);
    std::size_t first = 0;
    std::size_t second = 0;
    ClientStatus status = feed_client(hs, std::string_view(bytes).substr(0, cut), &first);
    if (status == ClientStatus::incomplete) {
      status = feed_client(hs, std::string_view(bytes).substr(cut), &second);
    }
    ASSERT_EQ(status, ClientStatus::accepted) << "cut at " << cut << ": " << hs.error();
    EXPECT_EQ(first + second, rfc_response.size()) << "cut at " << cut;
  }
}

TEST(ClientHandshake, ByteByByte) {
  auto config = client_config();
  config.subprotocols = {"chat"};
  ClientHandshake hs(std::move(config));
  const std::string bytes = rfc_response + "\x81\x02hi";
  std::size_t total = 0;
  ClientStatus status = ClientStatus::incomplete;
  for (std::size_t i = 0; i < bytes.size() && status == ClientStatus::incomplete; ++i) {
    std::size_t consumed = 0;
    status = feed_client(hs, std::string_view(bytes).substr(i, 1), &consumed);
    total += consumed;
  }
  EXPECT_EQ(status, ClientStatus::accepted) << hs.error();
  EXPECT_EQ(total, rfc_response.size());
  EXPECT_EQ(hs.subprotocol(), "chat");
}

TEST(ClientHandshake, ConnectionUpgradeInsideAList) {
  ClientHandshake hs(client_config());
  EXPECT_EQ(feed_client(hs,
                        "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                        "connection: keep-alive, UPGRADE\r\n"
                        "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
            ClientStatus::accepted)
      << hs.error();
}

struct ClientError {
  const char* name;
  std::vector<std::string> subprotocols;
  std::string response;
  const char* error;
};

void PrintTo(const ClientError& row, std::ostream* os) {
  *os << row.name;
}

class ClientRefuses : public testing::TestWithParam<ClientError> {};

TEST_P(ClientRefuses, WithMessage) {
  auto config = client_config();
  config.subprotocols = GetParam().subprotocols;
  config.extensions = {std::make_shared<TestExtension>()};
  ClientHandshake hs(std::move(config));
  EXPECT_EQ(feed_client(hs, GetParam().response), ClientStatus::failed);
  EXPECT_EQ(hs.status(), ClientStatus::failed);
  EXPECT_EQ(hs.error(), GetParam().error);
  EXPECT_EQ(hs.take_transform(), nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ClientRefuses,
    testing::Values(
        ClientError{"WrongAccept",
                    {},
                    response_with({}, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                    "Sec-WebSocket-Accept mismatch"},
        ClientError{"DuplicateAccept",
                    {},
                    response_with("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
                    "Sec-WebSocket-Accept mismatch"},
        ClientError{"MissingAccept",
                    {},
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n\r\n",
                    "missing Sec-WebSocket-Accept"},
        ClientError{"MissingUpgrade",
                    {},
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                    "missing Upgrade: websocket"},
        ClientError{"MissingConnection",
                    {},
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                    "missing Connection: Upgrade"},
        ClientError{"SubprotocolNotOffered",
                    {"a", "b"},
                    response_with("Sec-WebSocket-Protocol: x\r\n"),
                    "server chose subprotocol 'x' which was not offered"},
        ClientError{"TwoSubprotocols",
                    {"a", "b"},
                    response_with("Sec-WebSocket-Protocol: a, b\r\n"),
                    "server chose subprotocol 'a, b' which was not offered"},
        ClientError{"SubprotocolWhenNoneOffered",
                    {},
                    response_with("Sec-WebSocket-Protocol: chat\r\n"),
                    "server chose subprotocol 'chat' but none was offered"},
        ClientError{"ExtensionNotOffered",
                    {},
                    response_with("Sec-WebSocket-Extensions: foo\r\n"),
                    "server accepted extension 'foo' which was not offered"},
        ClientError{"ExtensionTwice",
                    {},
                    response_with("Sec-WebSocket-Extensions: x-test; p=1, x-test; p=1\r\n"),
                    "server accepted extension 'x-test' more than once"},
        ClientError{"ExtensionParamsRefused",
                    {},
                    response_with("Sec-WebSocket-Extensions: x-test; q\r\n"),
                    "server's parameters for extension 'x-test' are not acceptable: p is "
                    "required"},
        ClientError{"ExtensionMalformed",
                    {},
                    response_with("Sec-WebSocket-Extensions: x-test;;\r\n"),
                    "malformed Sec-WebSocket-Extensions: x-test;;"},
        ClientError{"BareLf",
                    {},
                    "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n",
                    "bare LF in the HTTP head"},
        ClientError{
            "Http10", {}, "HTTP/1.0 101 Switching Protocols\r\n\r\n", "101 response over HTTP/1.0"},
        ClientError{"NotFoundNoBody",
                    {},
                    "HTTP/1.1 404 Not Found\r\n\r\n",
                    "server answered 404 Not Found instead of 101 Switching Protocols"},
        ClientError{"EmptyReasonGetsTheStandardOne",
                    {},
                    "HTTP/1.1 503 \r\n\r\n",
                    "server answered 503 Service Unavailable instead of 101 Switching "
                    "Protocols"}),
    [](const testing::TestParamInfo<ClientError>& info) { return std::string(info.param.name); });

TEST(ClientHandshake, RefusalBodyWithContentLengthIsAwaited) {
  ClientHandshake hs(client_config());
  const std::string head =
      "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n";
  std::size_t consumed = 0;
  EXPECT_EQ(feed_client(hs, head + "go ", &consumed), ClientStatus::incomplete);
  EXPECT_EQ(consumed, head.size() + 3);
  EXPECT_EQ(hs.http_status(), 403);
  EXPECT_EQ(feed_client(hs, "away", &consumed), ClientStatus::incomplete);
  EXPECT_EQ(feed_client(hs, ", you!then more", &consumed), ClientStatus::failed);
  EXPECT_EQ(consumed, 6u);
  EXPECT_EQ(hs.body(), "go away, you!");
  EXPECT_EQ(hs.error(), "server answered 403 Forbidden instead of 101 Switching Protocols");
}

TEST(ClientHandshake, RefusalBodyIsCappedAt1KiB) {
  ClientHandshake hs(client_config());
  const std::string body(5000, 'x');
  EXPECT_EQ(feed_client(hs, "HTTP/1.1 500 Oops\r\nContent-Length: 5000\r\n\r\n" + body),
            ClientStatus::failed);
  EXPECT_EQ(hs.body().size(), 1024u);
  EXPECT_EQ(hs.error(), "server answered 500 Oops instead of 101 Switching Protocols");
}

TEST(ClientHandshake, RefusalWithoutContentLengthFailsAtOnce) {
  ClientHandshake hs(client_config());
  EXPECT_EQ(feed_client(hs, "HTTP/1.1 401 Unauthorized\r\n\r\nwho are you"), ClientStatus::failed);
  EXPECT_EQ(hs.body(), "who are you");
  EXPECT_EQ(hs.http_status(), 401);
}

TEST(ClientHandshake, RefusalWithUnusableContentLengthKeepsWhatCame) {
  ClientHandshake hs(client_config());
  EXPECT_EQ(feed_client(hs, "HTTP/1.1 400 Bad Request\r\nContent-Length: many\r\n\r\nbad"),
            ClientStatus::failed);
  EXPECT_EQ(hs.body(), "bad");
}

TEST(ClientHandshake, EofFailsIncompleteHandshakes) {
  ClientHandshake early(client_config());
  EXPECT_EQ(feed_client(early, "HTTP/1.1 101 Switching"), ClientStatus::incomplete);
  EXPECT_EQ(early.receive_eof(), ClientStatus::failed);
  EXPECT_EQ(early.error(), "connection closed during the opening handshake");

  ClientHandshake body(client_config());
  EXPECT_EQ(feed_client(body, "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 100\r\n\r\nslow"),
            ClientStatus::incomplete);
  EXPECT_EQ(body.receive_eof(), ClientStatus::failed);
  EXPECT_EQ(body.body(), "slow");
  EXPECT_EQ(body.error(),
            "server answered 429 Too Many Requests instead of 101 Switching Protocols");
}

TEST(ClientHandshake, ResponseHeadOverLimitFails) {
  auto config = client_config();
  config.max_header_bytes = 256;
  ClientHandshake hs(std::move(config));
  std::size_t consumed = 0;
  EXPECT_EQ(
      feed_client(hs, "HTTP/1.1 101 Switching Protocols\r\nX: " + std::string(300, 'a'), &consumed),
      ClientStatus::failed);
  EXPECT_LE(consumed, 257u) << "never buffers beyond the limit";
  EXPECT_NE(hs.error().find("larger than 256 bytes"), std::string::npos) << hs.error();
}

// ---------------------------------------------------------------------------------------------
// Client and server together

TEST(Handshake, SubprotocolNegotiationEndToEnd) {
  ClientHandshakeConfig config;
  config.host = "h";
  config.subprotocols = {"a", "b"};
  ClientHandshake client(std::move(config));

  ServerHandshake server;
  std::size_t consumed = 0;
  ASSERT_EQ(server.receive(as_bytes(client.request()), consumed), ServerStatus::request);
  EXPECT_EQ(server.offered_subprotocols(), (std::vector<std::string>{"a", "b"}));
  const std::string response = server.accept("b");
  EXPECT_NE(response.find("\r\nSec-WebSocket-Protocol: b\r\n"), std::string::npos);

  ASSERT_EQ(feed_client(client, response), ClientStatus::accepted) << client.error();
  EXPECT_EQ(client.subprotocol(), "b");
}

TEST(Handshake, ExtensionNegotiatedEndToEnd) {
  const auto extension = std::make_shared<TestExtension>();
  ClientHandshakeConfig config;
  config.host = "h";
  config.extensions = {extension};
  ClientHandshake client(std::move(config));
  EXPECT_NE(client.request().find("\r\nSec-WebSocket-Extensions: x-test; p=1\r\n"),
            std::string::npos)
      << client.request();

  ServerHandshake server(ServerHandshakeConfig{.extensions = {extension}});
  std::size_t consumed = 0;
  ASSERT_EQ(server.receive(as_bytes(client.request()), consumed), ServerStatus::request);
  const std::string response = server.accept("");
  EXPECT_NE(response.find("\r\nSec-WebSocket-Extensions: x-test; p=1\r\n"), std::string::npos)
      << response;
  EXPECT_NE(server.take_transform(), nullptr);

  ASSERT_EQ(feed_client(client, response), ClientStatus::accepted) << client.error();
  EXPECT_NE(client.take_transform(), nullptr);
}

TEST(Handshake, ServerDecliningAnExtensionSendsNothing) {
  // The server supports x-test but the client's offer lacks p, so server_accept declines.
  const auto offer_without_p = std::make_shared<TestExtension>("x-test", "q=1");
  ClientHandshakeConfig config;
  config.host = "h";
  config.extensions = {offer_without_p};
  ClientHandshake client(std::move(config));

  ServerHandshake server(ServerHandshakeConfig{.extensions = {std::make_shared<TestExtension>()}});
  std::size_t consumed = 0;
  ASSERT_EQ(server.receive(as_bytes(client.request()), consumed), ServerStatus::request);
  const std::string response = server.accept("");
  EXPECT_EQ(response.find("Sec-WebSocket-Extensions"), std::string::npos) << response;
  EXPECT_EQ(server.take_transform(), nullptr);

  ASSERT_EQ(feed_client(client, response), ClientStatus::accepted) << client.error();
  EXPECT_EQ(client.take_transform(), nullptr);
}

TEST(Handshake, ServerWithoutTheExtensionIgnoresTheOffer) {
  ClientHandshakeConfig config;
  config.host = "h";
  config.extensions = {std::make_shared<TestExtension>()};
  ClientHandshake client(std::move(config));
  ServerHandshake server;
  std::size_t consumed = 0;
  ASSERT_EQ(server.receive(as_bytes(client.request()), consumed), ServerStatus::request);
  EXPECT_EQ(server.accept("").find("Sec-WebSocket-Extensions"), std::string::npos);
  EXPECT_EQ(server.take_transform(), nullptr);
}

TEST(Handshake, ServerPicksTheFirstAcceptableOfferAndOnlyOneExtension) {
  const std::string request = request_with(
      "Sec-WebSocket-Extensions: x-other; p=7, x-test; q, x-test; p=2\r\n"
      "Sec-WebSocket-Extensions: x-test; p=3\r\n");
  ServerHandshake server(
      ServerHandshakeConfig{.extensions = {std::make_shared<TestExtension>(),
                                           std::make_shared<TestExtension>("x-other")}});
  std::size_t consumed = 0;
  ASSERT_EQ(server.receive(as_bytes(request), consumed), ServerStatus::request) << server.error();
  const std::string response = server.accept("");
  // Server preference order first (x-test), then the client's first acceptable offer of it.
  EXPECT_NE(response.find("\r\nSec-WebSocket-Extensions: x-test; p=2\r\n"), std::string::npos)
      << response;
  EXPECT_EQ(response.find("x-other"), std::string::npos) << response;
  EXPECT_NE(server.take_transform(), nullptr);
}

TEST(Handshake, ClientRefusesTwoTransformingExtensions) {
  auto config = client_config();
  config.extensions = {std::make_shared<TestExtension>(),
                       std::make_shared<TestExtension>("x-other")};
  ClientHandshake client(std::move(config));
  EXPECT_NE(client.request().find("Sec-WebSocket-Extensions: x-test; p=1, x-other; p=1\r\n"),
            std::string::npos);
  EXPECT_EQ(feed_client(client, response_with("Sec-WebSocket-Extensions: x-test; p=1, "
                                              "x-other; p=1\r\n")),
            ClientStatus::failed);
  EXPECT_EQ(client.error(),
            "server accepted both extensions 'x-test' and 'x-other'; only one can be used");
}

}  // namespace
}  // namespace tether
