// Client side of the opening handshake: parse_response_head and ClientHandshake, with a fixed
// key, fed arbitrary responses; or, in prefix mode, a response that starts with a correct
// 101 head (right Sec-WebSocket-Accept) and continues with fuzzed header lines, so the input
// reaches the subprotocol and extension checks that come after the key.
//
// Input: [flags] [chunking] [response bytes...]
//
// Oracles:
//  - a parsed head is well-formed and survives printing and parsing again unchanged;
//  - ClientHandshake decides the same whether the response arrives at once or in pieces;
//    accepted means a 101 with the right key that consumed exactly the head; failed means an
//    error message, no transform and no subprotocol;
//  - a negotiated permessage-deflate respects what the client asked for, and messages
//    survive it both ways against a server transform built from the same agreement;
//  - a client Session fed the same bytes opens exactly when the handshake accepts, and then
//    treats what followed the head exactly as an already-open session fed only those bytes.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "tether/handshake.hpp"
#include "tether/permessage_deflate.hpp"
#include "tether/session.hpp"

namespace {

using namespace tether;
using namespace tether::fuzz;

enum Flags : std::uint8_t {
  prefix_mode = 1,
  // bits 1-2: client configuration; bits 3-4: head size limit
  through_session = 32,
};
constexpr std::size_t header_limits[4] = {8192, 512, 100, 64};

// RFC 6455 §1.3's example key and its accept value.
constexpr std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view valid_prefix =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

std::string print(const HttpResponseHead& head) {
  std::string s =
      "HTTP/1." + std::to_string(head.version_minor) + " " + std::to_string(head.status);
  if (!head.reason.empty()) s += " " + head.reason;
  s += "\r\n";
  for (const HttpHeader& h : head.headers.fields()) s += h.name + ": " + h.value + "\r\n";
  return s + "\r\n";
}

bool same(const HttpResponseHead& a, const HttpResponseHead& b) {
  if (a.status != b.status || a.reason != b.reason || a.version_minor != b.version_minor ||
      a.headers.size() != b.headers.size())
    return false;
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers.fields()[i].name != b.headers.fields()[i].name ||
        a.headers.fields()[i].value != b.headers.fields()[i].value)
      return false;
  }
  return true;
}

void check_parser(std::string_view raw, std::size_t max) {
  HttpResponseHead head;
  std::size_t head_size = 0;
  std::string error;
  switch (parse_response_head(raw, max, head, head_size, error)) {
    case HeadParse::incomplete:
      FUZZ_CHECK(raw.size() <= max && raw.find("\r\n\r\n") == std::string_view::npos);
      return;
    case HeadParse::error:
      FUZZ_CHECK(!error.empty());
      return;
    case HeadParse::complete:
      break;
  }
  FUZZ_CHECK(head_size >= 4 && head_size <= raw.size() && head_size <= max);
  FUZZ_CHECK(raw.substr(head_size - 4, 4) == "\r\n\r\n");
  FUZZ_CHECK(head.status >= 100 && head.status <= 599 && head.version_minor <= 1);
  for (char c : head.reason) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
  for (const HttpHeader& h : head.headers.fields()) {
    FUZZ_CHECK(!h.name.empty());
    for (char c : h.name + h.value) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
  }
  const std::string printed = print(head);
  HttpResponseHead again;
  std::size_t again_size = 0;
  FUZZ_CHECK(parse_response_head(printed, printed.size(), again, again_size, error) ==
             HeadParse::complete);
  FUZZ_CHECK(again_size == printed.size() && same(head, again));
}

struct Run {
  ClientHandshake::Status status = ClientHandshake::Status::incomplete;
  std::size_t consumed = 0;
};

Run feed(ClientHandshake& hs, std::string_view raw, Chunker chunks) {
  Run r;
  for (std::size_t pos = 0; pos < raw.size() && r.status == ClientHandshake::Status::incomplete;) {
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
  if (!from.encode(MessageType::text, as_bytes(message), wire)) return;
  FUZZ_CHECK(to.decode(wire, true, back, 1 << 20).close_code == 0);
  FUZZ_CHECK(as_text(back) == message);
}

class Recorder final : public SessionHandler {
 public:
  bool opened = false;
  int closes = 0;
  std::uint16_t error = 0;
  std::vector<std::string> messages;
  void on_open() override { opened = true; }
  void on_message(MessageType, ByteView payload) override {
    messages.emplace_back(as_text(payload));
  }
  void on_error(int code, std::string_view) override { error = static_cast<std::uint16_t>(code); }
  void on_close(std::uint16_t, std::string_view) override { ++closes; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in(data, size);
  const std::uint8_t flags = in.byte();
  const std::uint8_t chunk_spec = in.byte();
  std::string raw(in.rest());
  if (flags & prefix_mode) raw.insert(0, valid_prefix);

  const std::size_t max = header_limits[flags >> 3 & 3];
  ClientHandshakeConfig config;
  config.host = "example.com";
  config.key = key;
  config.max_header_bytes = max;
  DeflateOptions deflate;
  const unsigned variant = flags >> 1 & 3;
  if (variant & 1) config.subprotocols = {"chat", "superchat"};
  if (variant == 3) {
    deflate.server_max_window_bits = 10;
    deflate.client_max_window_bits = 12;
    deflate.client_no_context_takeover = true;
    deflate.server_no_context_takeover = true;
  }
  if (variant >= 2) config.extensions.push_back(std::make_shared<PerMessageDeflate>(deflate));

  check_parser(raw, max);

  ClientHandshake whole(config), split(config);
  const Run a = feed(whole, raw, Chunker(0));
  const Run b = feed(split, raw, Chunker(chunk_spec));
  FUZZ_CHECK(a.status == b.status);
  FUZZ_CHECK(whole.error() == split.error() && whole.http_status() == split.http_status());

  HttpResponseHead head;
  std::size_t head_size = 0;
  std::string error;
  const bool complete =
      parse_response_head(raw, max, head, head_size, error) == HeadParse::complete;

  switch (a.status) {
    case ClientHandshake::Status::incomplete:
      FUZZ_CHECK(whole.receive_eof() == ClientHandshake::Status::failed && !whole.error().empty());
      return 0;
    case ClientHandshake::Status::failed: {
      FUZZ_CHECK(!whole.error().empty() && whole.subprotocol().empty());
      FUZZ_CHECK(whole.take_transform() == nullptr);
      FUZZ_CHECK(whole.body().size() <= 1024);
      if (complete) {
        FUZZ_CHECK(whole.http_status() == head.status);
        FUZZ_CHECK(std::string_view(raw).substr(head_size, whole.body().size()) == whole.body());
      }
      std::size_t consumed = 1;
      FUZZ_CHECK(whole.receive(as_bytes(std::string_view("x")), consumed) ==
                     ClientHandshake::Status::failed &&
                 consumed == 0);
      return 0;
    }
    case ClientHandshake::Status::accepted:
      break;
  }

  FUZZ_CHECK(complete && head.status == 101 && whole.http_status() == 101);
  FUZZ_CHECK(a.consumed == head_size && b.consumed == head_size);
  FUZZ_CHECK(head.headers.joined("Sec-WebSocket-Accept") == websocket_accept_key(key));
  FUZZ_CHECK(whole.subprotocol() == split.subprotocol());
  if (head.headers.find("Sec-WebSocket-Protocol") != nullptr) {
    FUZZ_CHECK(std::find(config.subprotocols.begin(), config.subprotocols.end(),
                         whole.subprotocol()) != config.subprotocols.end());
  } else {
    FUZZ_CHECK(whole.subprotocol().empty());
  }

  std::unique_ptr<MessageTransform> transform = whole.take_transform();
  const bool negotiated = head.headers.find("Sec-WebSocket-Extensions") != nullptr;
  FUZZ_CHECK(!transform || (negotiated && !config.extensions.empty()));
  if (negotiated && !config.extensions.empty()) {
    // permessage-deflate is the only extension offered, so the response named it.
    auto* client = dynamic_cast<DeflateTransform*>(transform.get());
    FUZZ_CHECK(client != nullptr);
    const DeflateAgreement& agreed = client->agreement();
    // What the client asked for holds whatever the server answered: a window the server
    // states is within the one requested, and its compressor respects its own limits. A
    // server that leaves server_max_window_bits out is taken at its word (15 bits), as
    // PerMessageDeflate::client_accept documents.
    if (deflate.server_max_window_bits < 15 && agreed.server_max_window_bits != 15)
      FUZZ_CHECK(agreed.server_max_window_bits <= deflate.server_max_window_bits);
    FUZZ_CHECK(client->decompress_window_bits() == agreed.server_max_window_bits);
    FUZZ_CHECK(client->compress_window_bits() <= deflate.client_max_window_bits);
    FUZZ_CHECK(client->compress_window_bits() <= agreed.client_max_window_bits);
    if (deflate.client_no_context_takeover) FUZZ_CHECK(client->compress_no_context_takeover());

    DeflateOptions server_options;
    server_options.compress_threshold = 0;
    DeflateTransform server(Role::server, agreed, server_options);
    std::string message;
    while (message.size() < 200) message += head.reason + "." + std::to_string(message.size());
    for (int i = 0; i < 2; ++i) {
      round_trip(*client, server, message);
      round_trip(server, *client, message);
    }
  }

  if (flags & through_session) {
    // Handshake and frames in one stream, as a transport sees them...
    Recorder via_handshake;
    Session session(SessionOptions{}, config, via_handshake);
    std::vector<std::byte> buf = to_bytes(raw);
    Chunker chunks(chunk_spec);
    for (std::size_t pos = 0; pos < buf.size();) {
      const std::size_t n = std::min(chunks.next(), buf.size() - pos);
      session.receive(MutableByteView(buf.data() + pos, n));
      pos += n;
    }
    FUZZ_CHECK(via_handshake.opened);
    FUZZ_CHECK(session.subprotocol() == split.subprotocol());

    // ...and the frames alone, on a session that starts open with the same transform.
    Recorder direct;
    Session open(Role::client, SessionOptions{}, direct, split.take_transform());
    std::vector<std::byte> rest = to_bytes(std::string_view(raw).substr(head_size));
    if (!rest.empty()) open.receive(rest);
    FUZZ_CHECK(via_handshake.messages == direct.messages);
    FUZZ_CHECK(via_handshake.error == direct.error && via_handshake.closes == direct.closes);
    FUZZ_CHECK(session.state() == open.state() && session.close_code() == open.close_code());
  }
  return 0;
}
