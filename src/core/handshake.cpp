// Opening handshake (RFC 6455 §4) and the strict HTTP/1.1 head parser it needs (RFC 9110,
// RFC 9112). Strict on purpose: the head is attacker-controlled input on a server, and every
// leniency (bare LF, line folding, whitespace before the colon) is a known request-smuggling
// or header-confusion vector between proxies and origins.
#include "tether/handshake.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <stdexcept>
#include <utility>

namespace tether {
namespace {

constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Enough of a refusal's body to explain it in an error report, not enough to be a memory sink.
constexpr std::size_t max_error_body = 1024;

bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}

/// field-value characters (RFC 9110 §5.5): VCHAR, obs-text, SP and HTAB. A CR, LF or NUL
/// smuggled into a value would end the line for some other parser on the path.
bool is_field_value(std::string_view s) noexcept {
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto uc = static_cast<unsigned char>(c);
    return (uc < 0x20 && c != '\t') || uc == 0x7f;
  });
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

/// Calls `fn` with each non-empty OWS-trimmed element of a comma-separated list (RFC 9110
/// §5.6.1 lets senders leave empty elements, so they are skipped, not errors); stops early
/// when `fn` returns true.
template <typename Fn>
bool any_list_element(std::string_view list, Fn&& fn) {
  while (true) {
    const std::size_t comma = list.find(',');
    const std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty() && fn(element)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

/// `HTTP/d.d` → major*10 + minor, or -1 when it is not that shape.
int parse_http_version(std::string_view s) noexcept {
  if (s.size() != 8 || s.substr(0, 5) != "HTTP/" || s[6] != '.') return -1;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!digit(s[5]) || !digit(s[7])) return -1;
  return (s[5] - '0') * 10 + (s[7] - '0');
}

struct RequestLine {
  std::string_view method;
  std::string_view target;
  int version_minor = 1;
};

/// Returns 0, or the HTTP status to refuse the request with.
int parse_request_line(std::string_view line, RequestLine& out, std::string& error) {
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    error = "malformed HTTP request line";
    return 400;
  }
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(out.method)) {
    error = "malformed HTTP request line (bad method)";
    return 400;
  }
  // origin-form, absolute-form and the rest are all visible ASCII without spaces.
  if (out.target.empty() || !std::all_of(out.target.begin(), out.target.end(),
                                         [](char c) { return c > 0x20 && c < 0x7f; })) {
    error = "malformed HTTP request line (bad request-target)";
    return 400;
  }
  const int v = parse_http_version(version);
  if (v < 0) {
    error = "malformed HTTP request line (bad version)";
    return 400;
  }
  if (v != 10 && v != 11) {
    error = "unsupported HTTP version " + std::string(version);
    return 505;
  }
  out.version_minor = v % 10;
  return 0;
}

struct StatusLine {
  int status = 0;
  std::string_view reason;
  int version_minor = 1;
};

bool parse_status_line(std::string_view line, StatusLine& out, std::string& error) {
  const int v = parse_http_version(line.substr(0, 8));
  if (v < 0 || line.size() < 12 || line[8] != ' ') {
    error = "malformed HTTP status line";
    return false;
  }
  if (v != 10 && v != 11) {
    error = "unsupported HTTP version " + std::string(line.substr(0, 8)) + " in the response";
    return false;
  }
  const std::string_view code = line.substr(9, 3);
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      code[0] < '1' || code[0] > '5') {
    error = "malformed HTTP status code";
    return false;
  }
  // RFC 9112 §4 makes the space before an empty reason mandatory for senders; a peer that
  // drops it is still unambiguous, so "HTTP/1.1 101" is accepted too.
  std::string_view reason;
  if (line.size() > 12) {
    if (line[12] != ' ') {
      error = "malformed HTTP status line";
      return false;
    }
    reason = line.substr(13);
  }
  if (!is_field_value(reason)) {
    error = "control character in the HTTP reason phrase";
    return false;
  }
  out.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  out.reason = reason;
  out.version_minor = v % 10;
  return true;
}

/// Walks the head line by line, checking it, without allocating: callers walk once to find
/// out whether the head is complete and valid, and only then again to copy it out, so a head
/// trickling in byte by byte costs no allocation per attempt. `on_start` returns 0 or an HTTP
/// status; `on_field` receives validated fields.
template <typename OnStart, typename OnField>
HeadParse walk_head(std::string_view data, std::size_t max_bytes, std::string_view what,
                    OnStart&& on_start, OnField&& on_field, std::size_t& head_size,
                    int& http_status, std::string& error) {
  const auto fail = [&](int status, std::string message) {
    http_status = status;
    error = std::move(message);
    return HeadParse::error;
  };
  const auto too_large = [&] {
    return fail(431, "HTTP " + std::string(what) + " head larger than " +
                         std::to_string(max_bytes) + " bytes");
  };
  std::size_t pos = 0;
  bool first = true;
  while (true) {
    const std::size_t lf = data.find('\n', pos);
    if (lf == std::string_view::npos) {
      return data.size() > max_bytes ? too_large() : HeadParse::incomplete;
    }
    if (lf + 1 > max_bytes) return too_large();
    if (lf == pos || data[lf - 1] != '\r') return fail(400, "bare LF in the HTTP head");
    const std::string_view line = data.substr(pos, lf - 1 - pos);
    pos = lf + 1;
    if (first) {
      first = false;
      if (const int status = on_start(line, error); status != 0) {
        http_status = status;
        return HeadParse::error;
      }
      continue;
    }
    if (line.empty()) {
      head_size = pos;
      return HeadParse::complete;
    }
    if (is_ows(line.front())) return fail(400, "obsolete line folding in the HTTP head");
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "HTTP header line without a colon");
    const std::string_view name = line.substr(0, colon);
    if (!name.empty() && is_ows(name.back())) {
      return fail(400, "whitespace between header field name and colon");
    }
    if (!is_token(name)) return fail(400, "invalid HTTP header field name");
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) {
      return fail(400, "control character in HTTP header field '" + std::string(name) + "'");
    }
    on_field(name, value);
  }
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

/// Application-supplied header text goes on the wire verbatim, so a CR or LF in it would let
/// whoever controls that text inject headers; that is a bug in the caller, not a peer's fault.
void check_header(std::string_view name, std::string_view value) {
  if (!is_token(name)) {
    throw std::invalid_argument("invalid HTTP header name '" + std::string(name) + "'");
  }
  if (!is_field_value(value)) {
    throw std::invalid_argument("control character in HTTP header '" + std::string(name) + "'");
  }
}

std::string refusal_message(const HttpResponseHead& response) {
  const std::string_view reason =
      response.reason.empty() ? http_reason_phrase(response.status) : response.reason;
  return "server answered " + std::to_string(response.status) + " " + std::string(reason) +
         " instead of 101 Switching Protocols";
}

std::string base64(const unsigned char* data, std::size_t size) {
  // EVP_EncodeBlock writes a terminating NUL after the output, hence the +1.
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HTTP heads

const std::string* HttpHeaders::find(std::string_view name) const noexcept {
  for (const HttpHeader& field : fields_) {
    if (iequals(field.name, name)) return &field.value;
  }
  return nullptr;
}

std::string HttpHeaders::joined(std::string_view name) const {
  std::string out;
  bool first = true;
  for (const HttpHeader& field : fields_) {
    if (!iequals(field.name, name)) continue;
    if (!first) out.append(", ");
    out.append(field.value);
    first = false;
  }
  return out;
}

bool HttpHeaders::has_token(std::string_view name, std::string_view token) const {
  return std::any_of(fields_.begin(), fields_.end(), [&](const HttpHeader& field) {
    return iequals(field.name, name) &&
           any_list_element(field.value, [&](std::string_view e) { return iequals(e, token); });
  });
}

HeadParse parse_request_head(std::string_view data, std::size_t max_bytes, HttpRequestHead& out,
                             std::size_t& head_size, int& http_status, std::string& error) {
  const auto check_start = [](std::string_view line, std::string& err) {
    RequestLine parsed;
    return parse_request_line(line, parsed, err);
  };
  const auto ignore_field = [](std::string_view, std::string_view) {};
  const HeadParse result = walk_head(data, max_bytes, "request", check_start, ignore_field,
                                     head_size, http_status, error);
  if (result != HeadParse::complete) return result;

  out = HttpRequestHead{};
  const auto store_start = [&out](std::string_view line, std::string& err) {
    RequestLine parsed;
    const int status = parse_request_line(line, parsed, err);
    out.method = parsed.method;
    out.target = parsed.target;
    out.version_minor = parsed.version_minor;
    return status;
  };
  const auto store_field = [&out](std::string_view name, std::string_view value) {
    out.headers.add(std::string(name), std::string(value));
  };
  return walk_head(data, max_bytes, "request", store_start, store_field, head_size, http_status,
                   error);
}

HeadParse parse_response_head(std::string_view data, std::size_t max_bytes, HttpResponseHead& out,
                              std::size_t& head_size, std::string& error) {
  int unused_status = 0;
  const auto check_start = [](std::string_view line, std::string& err) {
    StatusLine parsed;
    return parse_status_line(line, parsed, err) ? 0 : 1;
  };
  const auto ignore_field = [](std::string_view, std::string_view) {};
  const HeadParse result = walk_head(data, max_bytes, "response", check_start, ignore_field,
                                     head_size, unused_status, error);
  if (result != HeadParse::complete) return result;

  out = HttpResponseHead{};
  const auto store_start = [&out](std::string_view line, std::string& err) {
    StatusLine parsed;
    const bool ok = parse_status_line(line, parsed, err);
    out.status = parsed.status;
    out.reason = parsed.reason;
    out.version_minor = parsed.version_minor;
    return ok ? 0 : 1;
  };
  const auto store_field = [&out](std::string_view name, std::string_view value) {
    out.headers.add(std::string(name), std::string(value));
  };
  return walk_head(data, max_bytes, "response", store_start, store_field, head_size, unused_status,
                   error);
}

// ---------------------------------------------------------------------------------------------
// Keys

std::string websocket_accept_key(std::string_view key) {
  std::string input;
  input.reserve(key.size() + websocket_guid.size());
  input.append(key).append(websocket_guid);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_size = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &digest_size, EVP_sha1(), nullptr) !=
      1) {
    // Only when OpenSSL itself is broken (e.g. SHA-1 disabled by a FIPS provider config).
    throw std::runtime_error("SHA-1 unavailable from OpenSSL");
  }
  return base64(digest.data(), digest_size);
}

std::string make_websocket_key() {
  std::array<unsigned char, 16> nonce{};
  // The key only has to be unpredictable to defeat caching proxies (RFC 6455 §10.3), but
  // an unseeded CSPRNG is a broken system worth stopping on rather than papering over.
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  return base64(nonce.data(), nonce.size());
}

bool is_valid_websocket_key(std::string_view key) {
  // 16 bytes are five full base64 quanta plus one byte: 22 symbols and "==".
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  });
}

// ---------------------------------------------------------------------------------------------
// Client

ClientHandshake::ClientHandshake(ClientHandshakeConfig config) : config_(std::move(config)) {
  if (config_.key.empty()) config_.key = make_websocket_key();
  if (!is_field_value(config_.host) || !is_field_value(config_.key)) {
    throw std::invalid_argument("control character in the WebSocket host or key");
  }
  if (config_.target.empty() || !std::all_of(config_.target.begin(), config_.target.end(),
                                             [](char c) { return c > 0x20 && c < 0x7f; })) {
    throw std::invalid_argument("invalid request target '" + config_.target + "'");
  }
  request_.reserve(256);
  request_.append("GET ").append(config_.target).append(" HTTP/1.1\r\n");
  append_header(request_, "Host", config_.host);
  append_header(request_, "Upgrade", "websocket");
  append_header(request_, "Connection", "Upgrade");
  append_header(request_, "Sec-WebSocket-Key", config_.key);
  append_header(request_, "Sec-WebSocket-Version", "13");
  if (!config_.subprotocols.empty()) {
    std::string list;
    for (const std::string& protocol : config_.subprotocols) {
      // RFC 6455 §4.1 item 10: each subprotocol is a token, or the list cannot be split back.
      if (!is_token(protocol)) {
        throw std::invalid_argument("invalid subprotocol name '" + protocol + "'");
      }
      if (!list.empty()) list.append(", ");
      list.append(protocol);
    }
    append_header(request_, "Sec-WebSocket-Protocol", list);
  }
  if (!config_.extensions.empty()) {
    std::string list;
    for (const auto& extension : config_.extensions) {
      if (!list.empty()) list.append(", ");
      list.append(extension->name());
      const std::string offer = extension->client_offer();
      if (!offer.empty()) list.append("; ").append(offer);
    }
    check_header("Sec-WebSocket-Extensions", list);
    append_header(request_, "Sec-WebSocket-Extensions", list);
  }
  for (const HttpHeader& header : config_.headers) {
    check_header(header.name, header.value);
    append_header(request_, header.name, header.value);
  }
  request_.append("\r\n");
}

ClientHandshake::Status ClientHandshake::fail(std::string message) {
  // validate() may fail after an earlier extension already produced its transform; a failed
  // handshake must not hand anything out as negotiated.
  transform_.reset();
  subprotocol_.clear();
  status_ = Status::failed;
  error_ = std::move(message);
  return status_;
}

ClientHandshake::Status ClientHandshake::receive(ByteView data, std::size_t& consumed) {
  consumed = 0;
  if (status_ != Status::incomplete) return status_;
  const std::string_view text = as_text(data);

  if (head_done_) {
    // Waiting for the body of a refusal; what follows it is of no interest.
    consumed = std::min(text.size(), body_expected_ - body_.size());
    body_.append(text.substr(0, consumed));
    if (body_.size() < body_expected_) return status_;
    return fail(refusal_message(response_));
  }

  // Never buffer more than one byte past the limit: that byte is what proves the head too
  // large, and anything further may be frames that are not ours to copy.
  const std::size_t before = buffer_.size();
  const std::string_view chunk = text.substr(0, config_.max_header_bytes + 1 - before);
  buffer_.append(chunk);
  consumed = chunk.size();
  // A head can only complete or go wrong on a line end, or by growing too large; skipping the
  // parse otherwise keeps a head sent byte by byte linear in lines, not quadratic in bytes.
  if (chunk.find('\n') == std::string_view::npos && buffer_.size() <= config_.max_header_bytes) {
    return status_;
  }

  std::size_t head_size = 0;
  std::string error;
  switch (parse_response_head(buffer_, config_.max_header_bytes, response_, head_size, error)) {
    case HeadParse::incomplete:
      return status_;
    case HeadParse::error:
      return fail(std::move(error));
    case HeadParse::complete:
      break;
  }
  head_done_ = true;
  consumed = head_size - before;
  buffer_.clear();
  buffer_.shrink_to_fit();
  if (response_.status == 101) return validate();

  const std::string_view rest = text.substr(consumed);
  // Without a usable length the body ends at EOF (or is chunked); keep what came along and
  // report now, since a server that refuses may well keep the connection open.
  body_expected_ = std::min(rest.size(), max_error_body);
  if (const std::string* length = response_.headers.find("Content-Length")) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
    if (end == length->data() + length->size()) {
      if (ec == std::errc{}) {
        body_expected_ = static_cast<std::size_t>(std::min<std::uint64_t>(n, max_error_body));
      } else if (ec == std::errc::result_out_of_range) {
        body_expected_ = max_error_body;
      }
    }
  }
  std::size_t taken = 0;
  const Status status = receive(as_bytes(rest), taken);
  consumed += taken;
  return status;
}

ClientHandshake::Status ClientHandshake::receive_eof() {
  if (status_ != Status::incomplete) return status_;
  if (!head_done_) return fail("connection closed during the opening handshake");
  return fail(refusal_message(response_));
}

ClientHandshake::Status ClientHandshake::validate() {
  const HttpHeaders& headers = response_.headers;
  if (response_.version_minor != 1) return fail("101 response over HTTP/1.0");
  if (!headers.has_token("Upgrade", "websocket")) return fail("missing Upgrade: websocket");
  if (!headers.has_token("Connection", "upgrade")) return fail("missing Connection: Upgrade");

  // joined() rather than find(): a repeated header becomes "a, b" and then fails the check,
  // instead of the first copy silently winning.
  if (headers.find("Sec-WebSocket-Accept") == nullptr) {
    return fail("missing Sec-WebSocket-Accept");
  }
  if (headers.joined("Sec-WebSocket-Accept") != websocket_accept_key(config_.key)) {
    return fail("Sec-WebSocket-Accept mismatch");
  }

  if (headers.find("Sec-WebSocket-Protocol") != nullptr) {
    const std::string chosen = headers.joined("Sec-WebSocket-Protocol");
    if (config_.subprotocols.empty()) {
      return fail("server chose subprotocol '" + chosen + "' but none was offered");
    }
    if (std::find(config_.subprotocols.begin(), config_.subprotocols.end(), chosen) ==
        config_.subprotocols.end()) {
      return fail("server chose subprotocol '" + chosen + "' which was not offered");
    }
    subprotocol_ = chosen;
  }

  if (headers.find("Sec-WebSocket-Extensions") != nullptr) {
    const std::string value = headers.joined("Sec-WebSocket-Extensions");
    const auto accepted = parse_extension_header(value);
    if (!accepted) return fail("malformed Sec-WebSocket-Extensions: " + value);
    std::vector<std::string_view> seen;
    std::string transform_owner;
    for (const ExtensionOffer& response : *accepted) {
      const auto extension =
          std::find_if(config_.extensions.begin(), config_.extensions.end(),
                       [&](const auto& candidate) { return candidate->name() == response.name; });
      if (extension == config_.extensions.end()) {
        return fail("server accepted extension '" + response.name + "' which was not offered");
      }
      if (std::find(seen.begin(), seen.end(), response.name) != seen.end()) {
        return fail("server accepted extension '" + response.name + "' more than once");
      }
      seen.push_back(response.name);
      std::string error;
      auto transform = (*extension)->client_accept(response, error);
      if (!transform) {
        return fail("server's parameters for extension '" + response.name +
                    "' are not acceptable: " + error);
      }
      // Every extension here flags its messages with RSV1, so two of them could not be told
      // apart on the wire; the session runs exactly one transform.
      if (transform_) {
        return fail("server accepted both extensions '" + transform_owner + "' and '" +
                    response.name + "'; only one can be used");
      }
      transform_ = std::move(transform);
      transform_owner = response.name;
    }
  }
  status_ = Status::accepted;
  return status_;
}

// ---------------------------------------------------------------------------------------------
// Server

ServerHandshake::ServerHandshake(ServerHandshakeConfig config) : config_(std::move(config)) {}

ServerHandshake::Status ServerHandshake::fail(int http_status, std::string message) {
  // The statuses carry the headers their RFCs require, so every caller gets them right:
  // 405 needs Allow (RFC 9110 §15.5.6); 426 needs Upgrade (§15.5.22) and, for WebSocket,
  // the versions we speak (RFC 6455 §4.4).
  std::vector<HttpHeader> extra;
  if (http_status == 405) extra.push_back({"Allow", "GET"});
  if (http_status == 426) {
    extra.push_back({"Upgrade", "websocket"});
    extra.push_back({"Sec-WebSocket-Version", "13"});
  }
  status_ = Status::failed;
  http_status_ = http_status;
  response_ = http_error_response(http_status, message + "\n", extra);
  error_ = std::move(message);
  buffer_.clear();
  buffer_.shrink_to_fit();
  return status_;
}

ServerHandshake::Status ServerHandshake::receive(ByteView data, std::size_t& consumed) {
  consumed = 0;
  if (status_ != Status::incomplete) return status_;
  const std::string_view text = as_text(data);

  // See ClientHandshake::receive for the +1 and for skipping the parse.
  const std::size_t before = buffer_.size();
  const std::string_view chunk = text.substr(0, config_.max_header_bytes + 1 - before);
  buffer_.append(chunk);
  consumed = chunk.size();
  if (chunk.find('\n') == std::string_view::npos && buffer_.size() <= config_.max_header_bytes) {
    return status_;
  }

  std::size_t head_size = 0;
  int http_status = 0;
  std::string error;
  switch (parse_request_head(buffer_, config_.max_header_bytes, request_, head_size, http_status,
                             error)) {
    case HeadParse::incomplete:
      return status_;
    case HeadParse::error:
      return fail(http_status, std::move(error));
    case HeadParse::complete:
      break;
  }
  consumed = head_size - before;
  buffer_.clear();
  buffer_.shrink_to_fit();

  const HttpHeaders& headers = request_.headers;
  if (request_.method != "GET") {
    return fail(405, "method " + request_.method + " not allowed; a WebSocket upgrade is a GET");
  }
  // The parser already answers 505 for versions outside 1.x; 1.0 is HTTP we speak, only not
  // a valid upgrade (RFC 6455 §4.2.1 item 1), hence a plain 400.
  if (request_.version_minor != 1) return fail(400, "a WebSocket upgrade requires HTTP/1.1");
  int hosts = 0;
  for (const HttpHeader& field : headers.fields()) hosts += iequals(field.name, "Host") ? 1 : 0;
  // RFC 9112 §3.2: exactly one Host, else 400.
  if (hosts == 0) return fail(400, "missing Host header");
  if (hosts > 1) return fail(400, "more than one Host header");
  // A handshake GET has no body; one announced anyway would be read as frames.
  if (headers.find("Transfer-Encoding") != nullptr) {
    return fail(400, "Transfer-Encoding in a WebSocket upgrade request");
  }
  if (headers.find("Content-Length") != nullptr && headers.joined("Content-Length") != "0") {
    return fail(400, "request body in a WebSocket upgrade request");
  }
  // A plain GET without Upgrade is most likely a browser or a probe on the WebSocket URL:
  // 426 tells it what this endpoint speaks. The other missing pieces make a broken upgrade.
  if (!headers.has_token("Upgrade", "websocket")) return fail(426, "missing Upgrade: websocket");
  if (!headers.has_token("Connection", "upgrade")) return fail(400, "missing Connection: Upgrade");
  if (headers.find("Sec-WebSocket-Version") == nullptr) {
    return fail(400, "missing Sec-WebSocket-Version");
  }
  if (const std::string version = headers.joined("Sec-WebSocket-Version"); version != "13") {
    return fail(426, "unsupported Sec-WebSocket-Version " + version + " (only 13 is supported)");
  }
  if (headers.find("Sec-WebSocket-Key") == nullptr) return fail(400, "missing Sec-WebSocket-Key");
  if (!is_valid_websocket_key(headers.joined("Sec-WebSocket-Key"))) {
    return fail(400, "invalid Sec-WebSocket-Key");
  }
  // Checked now rather than in accept() so that a broken offer is refused with a status the
  // client can read, not silently dropped.
  if (headers.find("Sec-WebSocket-Extensions") != nullptr &&
      !parse_extension_header(headers.joined("Sec-WebSocket-Extensions"))) {
    return fail(400, "malformed Sec-WebSocket-Extensions");
  }
  status_ = Status::request;
  return status_;
}

std::vector<std::string> ServerHandshake::offered_subprotocols() const {
  std::vector<std::string> offered;
  for (const HttpHeader& field : request_.headers.fields()) {
    if (!iequals(field.name, "Sec-WebSocket-Protocol")) continue;
    any_list_element(field.value, [&](std::string_view element) {
      offered.emplace_back(element);
      return false;
    });
  }
  return offered;
}

std::string ServerHandshake::accept(std::string_view subprotocol,
                                    const std::vector<HttpHeader>& extra) {
  if (status_ != Status::request) {
    throw std::logic_error("ServerHandshake::accept() without a valid request");
  }
  for (const HttpHeader& header : extra) check_header(header.name, header.value);
  const HttpHeaders& headers = request_.headers;

  std::string response = "HTTP/1.1 101 Switching Protocols\r\n";
  append_header(response, "Upgrade", "websocket");
  append_header(response, "Connection", "Upgrade");
  append_header(response, "Sec-WebSocket-Accept",
                websocket_accept_key(headers.joined("Sec-WebSocket-Key")));
  // A subprotocol the client did not offer would make it fail the connection (RFC 6455 §4.1);
  // answering with none is the one response the client is guaranteed to accept.
  if (!subprotocol.empty()) {
    const auto offered = offered_subprotocols();
    if (std::find(offered.begin(), offered.end(), subprotocol) != offered.end()) {
      append_header(response, "Sec-WebSocket-Protocol", subprotocol);
    }
  }

  transform_.reset();
  const auto offers = headers.find("Sec-WebSocket-Extensions") == nullptr
                          ? std::nullopt
                          : parse_extension_header(headers.joined("Sec-WebSocket-Extensions"));
  if (offers) {
    for (const auto& extension : config_.extensions) {
      for (const ExtensionOffer& offer : *offers) {
        if (offer.name != extension->name()) continue;
        std::string params;
        auto transform = extension->server_accept(offer, params);
        if (!transform) continue;
        std::string value(extension->name());
        if (!params.empty()) value.append("; ").append(params);
        check_header("Sec-WebSocket-Extensions", value);
        append_header(response, "Sec-WebSocket-Extensions", value);
        transform_ = std::move(transform);
        break;
      }
      // Each accepted extension claims RSV1 and the session runs a single transform.
      if (transform_) break;
    }
  }
  for (const HttpHeader& header : extra) append_header(response, header.name, header.value);
  response.append("\r\n");
  return response;
}

// ---------------------------------------------------------------------------------------------
// Errors

std::string http_error_response(int status, std::string_view body,
                                const std::vector<HttpHeader>& extra) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out.append(http_reason_phrase(status)).append("\r\n");
  append_header(out, "Connection", "close");
  append_header(out, "Content-Type", "text/plain; charset=utf-8");
  append_header(out, "Content-Length", std::to_string(body.size()));
  for (const HttpHeader& header : extra) append_header(out, header.name, header.value);
  out.append("\r\n").append(body);
  return out;
}

std::string_view http_reason_phrase(int status) noexcept {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace tether
