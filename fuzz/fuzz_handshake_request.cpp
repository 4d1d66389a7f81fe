// Server side of the opening handshake: parse_request_head and ServerHandshake fed arbitrary
// request bytes, split where the input says.
//
// Input: [flags] [chunking] [request bytes...]
//
// Oracles:
//  - a parsed head is well-formed (tokens, no CR/LF/NUL in values, ends in CRLF CRLF) and
//    survives printing and parsing again unchanged;
//  - ServerHandshake decides the same whether the request arrives at once or in pieces, and
//    on success consumed exactly the head, leaving what follows for the frame layer;
//  - a refusal is a parseable HTTP response whose status is http_status();
//  - an acceptance is a 101 that a ClientHandshake holding the request's key accepts, and
//    when permessage-deflate was negotiated, messages survive the two transforms both ways.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "tether/handshake.hpp"
#include "tether/permessage_deflate.hpp"

namespace {

using namespace tether;
using namespace tether::fuzz;

constexpr std::size_t header_limits[4] = {8192, 512, 100, 64};

bool is_token(std::string_view s) {
  constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           specials.find(c) != std::string_view::npos;
  });
}

bool is_field_value(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto uc = static_cast<unsigned char>(c);
    return (uc < 0x20 && c != '\t') || uc == 0x7f;
  });
}

void check_headers(const HttpHeaders& headers) {
  for (const HttpHeader& h : headers.fields()) {
    FUZZ_CHECK(is_token(h.name));
    FUZZ_CHECK(is_field_value(h.value));
    FUZZ_CHECK(h.value.empty() || (h.value.front() != ' ' && h.value.front() != '\t' &&
                                   h.value.back() != ' ' && h.value.back() != '\t'));
  }
}

std::string print(const HttpRequestHead& head) {
  std::string s =
      head.method + " " + head.target + " HTTP/1." + std::to_string(head.version_minor) + "\r\n";
  for (const HttpHeader& h : head.headers.fields()) s += h.name + ": " + h.value + "\r\n";
  return s + "\r\n";
}

bool same(const HttpRequestHead& a, const HttpRequestHead& b) {
  if (a.method != b.method || a.target != b.target || a.version_minor != b.version_minor ||
      a.headers.size() != b.headers.size())
    return false;
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers.fields()[i].name != b.headers.fields()[i].name ||
        a.headers.fields()[i].value != b.headers.fields()[i].value)
      return false;
  }
  return true;
}

void check_parser(std::string_view raw, std::size_t max, std::size_t split) {
  HttpRequestHead head;
  std::size_t head_size = 0;
  int status = 0;
  std::string error;
  switch (parse_request_head(raw, max, head, head_size, status, error)) {
    case HeadParse::incomplete:
      FUZZ_CHECK(raw.size() <= max && raw.find("\r\n\r\n") == std::string_view::npos);
      return;
    case HeadParse::error:
      FUZZ_CHECK(status == 400 || status == 431 || status == 505);
      FUZZ_CHECK(!error.empty());
      return;
    case HeadParse::complete:
      break;
  }
  FUZZ_CHECK(head_size >= 4 && head_size <= raw.size() && head_size <= max);
  FUZZ_CHECK(raw.substr(head_size - 4, 4) == "\r\n\r\n");
  FUZZ_CHECK(is_token(head.method) && !head.target.empty() && head.version_minor <= 1);
  FUZZ_CHECK(std::all_of(head.target.begin(), head.target.end(),
                         [](char c) { return c > 0x20 && c < 0x7f; }));
  check_headers(head.headers);

  const std::string printed = print(head);
  HttpRequestHead again;
  std::size_t again_size = 0;
  FUZZ_CHECK(parse_request_head(printed, printed.size(), again, again_size, status, error) ==
             HeadParse::complete);
  FUZZ_CHECK(again_size == printed.size() && same(head, again));

  // Any strict prefix of a complete head is incomplete, never an error.
  if (split < head_size) {
    HttpRequestHead partial;
    FUZZ_CHECK(parse_request_head(raw.substr(0, split), max, partial, again_size, status, error) ==
               HeadParse::incomplete);
  }
}

struct Run {
  ServerHandshake::Status status = ServerHandshake::Status::incomplete;
  std::size_t consumed = 0;
};

Run feed(ServerHandshake& hs, std::string_view raw, Chunker chunks) {
  Run r;
  for (std::size_t pos = 0; pos < raw.size() && r.status == ServerHandshake::Status::incomplete;) {
    const std::size_t n = std::min(chunks.next(), raw.size() - pos);
    std::size_t consumed = 0;
    r.status = hs.receive(as_bytes(raw.substr(pos, n)), consumed);
    FUZZ_CHECK(consumed <= n);
    r.consumed += consumed;
    pos += n;
  }
  return r;
}

void round_trip(MessageTransform& from, MessageTransform& to, const std::string& message) {
  std::vector<std::byte> wire, back;
  if (!from.encode(MessageType::binary, as_bytes(message), wire)) return;
  FUZZ_CHECK(to.decode(wire, true, back, 1 << 20).close_code == 0);
  FUZZ_CHECK(as_text(back) == message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in(data, size);
  const std::uint8_t flags = in.byte();
  const std::uint8_t chunk_spec = in.byte();
  const std::string_view raw = in.rest();

  const std::size_t max = header_limits[flags & 3];
  ServerHandshakeConfig config;
  config.max_header_bytes = max;
  switch (flags >> 2 & 3) {
    case 1:
      config.extensions.push_back(std::make_shared<PerMessageDeflate>());
      break;
    case 2: {
      DeflateOptions o;
      o.server_no_context_takeover = true;
      o.server_max_window_bits = 12;
      o.client_max_window_bits = 10;  // declines offers without client_max_window_bits
      config.extensions.push_back(std::make_shared<PerMessageDeflate>(o));
      break;
    }
    case 3: {
      DeflateOptions o;
      o.server_max_window_bits = 8;
      o.client_max_window_bits = 8;
      o.client_no_context_takeover = true;
      config.extensions.push_back(std::make_shared<PerMessageDeflate>(o));
      break;
    }
    default:
      break;
  }

  check_parser(raw, max, Chunker(chunk_spec).next() % (raw.size() + 1));

  ServerHandshake whole(config), split(config);
  const Run a = feed(whole, raw, Chunker(0));
  const Run b = feed(split, raw, Chunker(chunk_spec));
  FUZZ_CHECK(a.status == b.status);
  FUZZ_CHECK(whole.http_status() == split.http_status() && whole.error() == split.error());

  if (a.status == ServerHandshake::Status::failed) {
    FUZZ_CHECK(!whole.error().empty());
    HttpResponseHead response;
    std::size_t head_size = 0;
    std::string error;
    const std::string& bytes = whole.response();
    FUZZ_CHECK(parse_response_head(bytes, bytes.size(), response, head_size, error) ==
               HeadParse::complete);
    FUZZ_CHECK(response.status == whole.http_status());
    FUZZ_CHECK(response.headers.has_token("Connection", "close"));
    const std::string* length = response.headers.find("Content-Length");
    FUZZ_CHECK(length && *length == std::to_string(bytes.size() - head_size));
    FUZZ_CHECK(bytes.substr(head_size) == whole.error() + "\n");
    if (response.status == 405) FUZZ_CHECK(response.headers.find("Allow") != nullptr);
    if (response.status == 426) FUZZ_CHECK(response.headers.has_token("Upgrade", "websocket"));
    return 0;
  }
  if (a.status != ServerHandshake::Status::request) return 0;

  // A valid request: the head, and only the head, was consumed.
  HttpRequestHead head;
  std::size_t head_size = 0;
  int status = 0;
  std::string error;
  FUZZ_CHECK(parse_request_head(raw, max, head, head_size, status, error) == HeadParse::complete);
  FUZZ_CHECK(a.consumed == head_size && b.consumed == head_size);
  FUZZ_CHECK(same(whole.request(), head) && same(split.request(), head));
  const HttpHeaders& headers = head.headers;
  FUZZ_CHECK(head.method == "GET" && head.version_minor == 1);
  FUZZ_CHECK(headers.has_token("Upgrade", "websocket") &&
             headers.has_token("Connection", "upgrade"));
  FUZZ_CHECK(headers.joined("Sec-WebSocket-Version") == "13");
  const std::string key = headers.joined("Sec-WebSocket-Key");
  FUZZ_CHECK(is_valid_websocket_key(key));

  const std::vector<std::string> offered = whole.offered_subprotocols();
  const bool offer_is_tokens = std::all_of(offered.begin(), offered.end(), is_token);
  std::string chosen;
  switch (flags >> 4 & 3) {
    case 1:
      if (!offered.empty()) chosen = offered.front();
      break;
    case 2:
      chosen = "chat";
      break;
    case 3:
      if (!offered.empty()) chosen = offered.back();
      break;
    default:
      break;
  }
  // A client could not have sent a list it cannot split; answer it with no subprotocol.
  if (!offer_is_tokens) chosen.clear();
  const std::string response_bytes = whole.accept(chosen);
  std::unique_ptr<MessageTransform> server_transform = whole.take_transform();

  HttpResponseHead response;
  std::size_t response_size = 0;
  FUZZ_CHECK(parse_response_head(response_bytes, response_bytes.size(), response, response_size,
                                 error) == HeadParse::complete);
  FUZZ_CHECK(response_size == response_bytes.size() && response.status == 101);
  FUZZ_CHECK((server_transform != nullptr) ==
             (response.headers.find("Sec-WebSocket-Extensions") != nullptr));

  // The client that sent this request accepts the answer.
  ClientHandshakeConfig client_config;
  client_config.host = "fuzz";
  client_config.key = key;
  if (offer_is_tokens) client_config.subprotocols = offered;
  if (!config.extensions.empty())
    client_config.extensions.push_back(std::make_shared<PerMessageDeflate>());
  ClientHandshake client(client_config);
  std::size_t consumed = 0;
  const auto client_status = client.receive(as_bytes(response_bytes), consumed);
  if (client_status != ClientHandshake::Status::accepted)
    std::fprintf(stderr, "client refused: %s\n", client.error().c_str());
  FUZZ_CHECK(client_status == ClientHandshake::Status::accepted);
  FUZZ_CHECK(consumed == response_bytes.size());
  if (!chosen.empty() && std::find(offered.begin(), offered.end(), chosen) != offered.end())
    FUZZ_CHECK(client.subprotocol() == chosen);
  else
    FUZZ_CHECK(client.subprotocol().empty());

  std::unique_ptr<MessageTransform> client_transform = client.take_transform();
  FUZZ_CHECK((client_transform != nullptr) == (server_transform != nullptr));
  if (server_transform) {
    // Whatever window sizes and context rules were agreed, both ends must understand each
    // other: the request's own target makes the payload vary with the input.
    std::string message;
    while (message.size() < 300) message += head.target + "|" + std::to_string(message.size());
    for (int i = 0; i < 2; ++i) {
      round_trip(*client_transform, *server_transform, message);
      round_trip(*server_transform, *client_transform, message);
    }
  }
  return 0;
}
