// permessage-deflate in a server Session: negotiation from a client offer the input picks,
// then frames built from input records, most with RSV1 set so that inflate sees arbitrary
// data, some compressed by a real client transform so that it also sees long valid streams
// with context takeover, fragmentation and messages on both sides of the size limit.
//
// Input: [client options] [server options] [flags] [session chunking] [records...]
// Options bytes: bit 0 server_no_context_takeover, bit 1 client_no_context_takeover, bits 2-4
// and 5-7 server and client max_window_bits (0: 15, else 7 + value). Flags: see Flags.
// A record is [kind byte] [length: 1 byte, or 2 when the kind's top bit is set] [bytes]:
//   kind & 3 == 0  one data frame of these bytes: bit 2 FIN, bit 3 RSV1, bits 4-5 opcode
//                  (text, binary, continuation, text)
//   kind & 3 == 1  a message of these bytes repeated 4^(bits 3-5) times (at most 20 KiB),
//                  compressed by the client's transform; bit 2 binary, bit 6 in 3 fragments
//   kind & 3 == 2  bits 2-3: PING, PONG, CLOSE (payload cut to 125 bytes), or an
//                  uncompressed single-frame message (bit 4 binary)
//   kind & 3 == 3  the bytes themselves, unframed
// Frames are masked, as from a client.
//
// Oracles:
//  - negotiation: the server accepts the client's own offer and the client accepts the answer;
//  - the session never ends on anything but 1002, 1007 or 1009 (or the peer's CLOSE, or 1006
//    at EOF): no crash, no 1011, and its buffers stay within the message limit;
//  - while the input holds only well-formed messages, each is delivered exactly as the client
//    sent it, or refused for the reason that applies (too big: 1009; bad UTF-8: 1007);
//  - with echo on, everything the server compressed decodes, with a client transform, to
//    exactly the messages it was given.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "tether/extension.hpp"
#include "tether/permessage_deflate.hpp"
#include "tether/session.hpp"

namespace {

using namespace tether;
using namespace tether::fuzz;

enum Flags : std::uint8_t {
  stream_fragments = 1,
  echo = 2,
  small_fragments = 4,
  partial_writes = 8,
  // bits 4-5: the message size limit, see limits; bits 6-7: the client's zlib level
};

// 1 MiB is the size a deployment might pick; the smaller ones reach the same paths with far
// less inflating per run, so the fuzzer spends its time on variety rather than on zlib.
constexpr std::uint64_t limits[4] = {16 << 10, 4 << 10, 1 << 20, 16 << 10};
// Past the two small limits, short of the large one: compressing megabytes per run would cost
// most of the fuzzer's time, and bombs in raw records reach that limit.
constexpr std::size_t max_plaintext = 20 << 10;

using Message = std::pair<MessageType, std::string>;

DeflateOptions options_from(std::uint8_t b) {
  DeflateOptions o;
  o.server_no_context_takeover = b & 1;
  o.client_no_context_takeover = b & 2;
  const int server_bits = b >> 2 & 7, client_bits = b >> 5 & 7;
  o.server_max_window_bits = server_bits ? 7 + server_bits : 15;
  o.client_max_window_bits = client_bits ? 7 + client_bits : 15;
  return o;
}

class Handler final : public SessionHandler {
 public:
  explicit Handler(bool echo) : echo_(echo) {}
  Session* session = nullptr;
  std::vector<Message> messages;
  int errors = 0;
  std::uint16_t error = 0;
  int closes = 0;

  void on_message(MessageType type, ByteView payload) override { deliver(type, payload); }
  void on_fragment(MessageType type, ByteView data, bool first, bool last) override {
    FUZZ_CHECK(first == !streaming_);
    if (first) streamed_.clear();
    streamed_.append(as_text(data));
    FUZZ_CHECK(streamed_.size() <= session->options().max_message_size);
    streaming_ = !last;
    if (last) deliver(type, as_bytes(streamed_));
  }
  void on_error(int code, std::string_view) override {
    FUZZ_CHECK(errors++ == 0 && closes == 0);
    error = static_cast<std::uint16_t>(code);
  }
  void on_close(std::uint16_t, std::string_view) override { FUZZ_CHECK(closes++ == 0); }

 private:
  void deliver(MessageType type, ByteView payload) {
    FUZZ_CHECK(payload.size() <= session->options().max_message_size);
    FUZZ_CHECK(type != MessageType::text || is_valid_utf8(payload));
    messages.emplace_back(type, std::string(as_text(payload)));
    if (echo_) FUZZ_CHECK(session->send(type, payload) == SendStatus::ok);
  }
  bool echo_;
  bool streaming_ = false;
  std::string streamed_;
};

// What the session must do with the stream, as long as it holds only well-formed messages.
struct Prediction {
  std::vector<Message> messages;
  std::vector<std::uint16_t> error_codes;  // acceptable codes to fail with; empty: no failure
  std::optional<std::uint16_t> peer_close;
  bool done = false;  // an error or a CLOSE was predicted: the rest is never read

  // `wire_size`: the payload bytes on the wire, which the frame decoder holds to `wire_limit`
  // before any inflating: the limit itself for an uncompressed message, and for a compressed
  // one the limit plus the transform's allowance for DEFLATE's expansion.
  void message(MessageType type, std::string text, std::size_t wire_size, std::uint64_t wire_limit,
               std::uint64_t max) {
    if (done) return;
    const bool bad_text = type == MessageType::text && !is_valid_utf8(as_bytes(text));
    if (text.size() > max || wire_size > wire_limit)
      error_codes.push_back(close_code::message_too_big);
    if (bad_text) error_codes.push_back(close_code::invalid_payload);
    done = !error_codes.empty();
    if (!done) messages.emplace_back(type, std::move(text));
  }
  void close(std::string_view payload) {
    if (done) return;
    ClosePayload cp;
    FrameError err;
    if (parse_close_payload(as_bytes(payload), cp, err))
      peer_close = cp.code;
    else
      error_codes.push_back(err.close_code);
    done = true;
  }
};

void move_output(Session& s, std::vector<std::byte>& log, std::size_t n) {
  const ByteView out = s.pending_output();
  n = std::min(n, out.size());
  log.insert(log.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
  s.consume_output(n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in(data, size);
  DeflateOptions client_options = options_from(in.byte());
  client_options.compress_threshold = 0;  // compress everything, the empty message included
  DeflateOptions server_options = options_from(in.byte());
  // A small hash table: with a 512-byte window zlib slides it every few hundred bytes, and a
  // full-size one made that most of the run time. The transforms around zlib are the same.
  client_options.mem_level = server_options.mem_level = 1;
  const std::uint8_t flags = in.byte();
  Chunker chunks(in.byte());
  const std::uint64_t max = limits[flags >> 4 & 3];
  // Level 0 makes stored blocks, the others Huffman ones; 1 is the cheapest of those.
  constexpr int levels[4] = {1, 0, 6, 9};
  client_options.compression_level = levels[flags >> 6 & 3];

  // Negotiation (RFC 7692 §7.1) through the real header grammar, both ways.
  const PerMessageDeflate client_ext(client_options), server_ext(server_options);
  const auto offers = parse_extension_header("permessage-deflate; " + client_ext.client_offer());
  FUZZ_CHECK(offers && offers->size() == 1);
  std::string params;
  std::unique_ptr<MessageTransform> server_transform =
      server_ext.server_accept(offers->front(), params);
  FUZZ_CHECK(server_transform != nullptr);
  const std::uint64_t compressed_limit = server_transform->max_encoded_size(max);
  FUZZ_CHECK(compressed_limit >= max);
  const auto answer =
      parse_extension_header("permessage-deflate" + (params.empty() ? "" : "; " + params));
  FUZZ_CHECK(answer && answer->size() == 1);
  std::string error;
  std::unique_ptr<MessageTransform> client_transform =
      client_ext.client_accept(answer->front(), error);
  if (!client_transform)
    std::fprintf(stderr, "client refused '%s': %s\n", params.c_str(), error.c_str());
  FUZZ_CHECK(client_transform != nullptr);
  // A second client transform with the same agreement reads what the server sends.
  auto* agreed = dynamic_cast<DeflateTransform*>(client_transform.get());
  FUZZ_CHECK(agreed != nullptr);
  DeflateTransform client_reader(Role::client, agreed->agreement(), client_options);

  // Build the stream from the records.
  std::vector<std::byte> wire;
  Prediction predicted;
  bool well_formed = true;
  std::uint32_t key = 0x37fa213d;
  auto frame = [&](unsigned opcode, bool fin, bool rsv1, std::string_view payload) {
    key = key * 1103515245u + 12345u;  // varying keys move the unmasking phase around
    append_frame(wire, opcode, fin, rsv1, payload, true, key);
  };
  while (in.left() > 0) {
    const std::uint8_t kind = in.byte();
    std::size_t len = in.byte();
    if (kind & 0x80) len = len << 8 | in.byte();
    const std::string_view bytes = in.take(len);
    switch (kind & 3) {
      case 0: {
        constexpr unsigned opcodes[4] = {1, 2, 0, 1};
        frame(opcodes[kind >> 4 & 3], kind & 4, kind & 8, bytes);
        well_formed = false;
        break;
      }
      case 1: {
        std::string plain;
        plain.reserve(max_plaintext);
        const std::size_t repeat = std::size_t{1} << (2 * (kind >> 3 & 7));
        for (std::size_t i = 0; i < repeat && plain.size() + bytes.size() <= max_plaintext; ++i)
          plain += bytes;
        const MessageType type = (kind & 4) ? MessageType::binary : MessageType::text;
        std::vector<std::byte> compressed;
        FUZZ_CHECK(client_transform->encode(type, as_bytes(plain), compressed));
        const std::string_view z = as_text(compressed);
        if (kind & 0x40) {
          const std::size_t third = z.size() / 3;
          frame(static_cast<unsigned>(type), false, true, z.substr(0, third));
          frame(0, false, false, z.substr(third, third));
          frame(0, true, false, z.substr(2 * third));
        } else {
          frame(static_cast<unsigned>(type), true, true, z);
        }
        if (well_formed) predicted.message(type, std::move(plain), z.size(), compressed_limit, max);
        break;
      }
      case 2: {
        const unsigned which = kind >> 2 & 3;
        if (which == 3) {
          const MessageType type = (kind & 0x10) ? MessageType::binary : MessageType::text;
          frame(static_cast<unsigned>(type), true, false, bytes);
          if (well_formed) predicted.message(type, std::string(bytes), bytes.size(), max, max);
          break;
        }
        constexpr unsigned opcodes[3] = {9, 10, 8};
        const std::string_view payload = bytes.substr(0, max_control_payload);
        frame(opcodes[which], true, false, payload);
        if (which == 2 && well_formed) predicted.close(payload);
        break;
      }
      default: {
        const auto raw = as_bytes(bytes);
        wire.insert(wire.end(), raw.begin(), raw.end());
        well_formed = false;
        break;
      }
    }
  }

  SessionOptions options;
  options.max_message_size = max;
  options.stream_fragments = flags & stream_fragments;
  if (flags & small_fragments) options.fragment_size = 7;
  Handler handler(flags & echo);
  Session session(Role::server, options, handler, std::move(server_transform));
  handler.session = &session;

  // Inflating is bounded by the limit: nothing may hold much more than one message.
  const std::size_t memory_bound = max + (256 << 10) + 2 * wire.size();
  std::vector<std::byte> log;
  for (std::size_t pos = 0; pos < wire.size();) {
    const std::size_t n = std::min(chunks.next(), wire.size() - pos);
    session.receive(MutableByteView(wire.data() + pos, n));
    pos += n;
    if (handler.errors) FUZZ_CHECK(session.state() == SessionState::closed);
    if (!(flags & echo)) FUZZ_CHECK(session.memory_used() <= memory_bound);
    move_output(session, log, (flags & partial_writes) ? chunks.next() : SIZE_MAX);
  }
  for (int i = 0; i < 1'000'000 && !session.pending_output().empty(); ++i)
    move_output(session, log, (flags & partial_writes) ? 1 + i % 97 : SIZE_MAX);

  if (handler.errors) {
    FUZZ_CHECK(handler.error == close_code::protocol_error ||
               handler.error == close_code::invalid_payload ||
               handler.error == close_code::message_too_big);
  }
  if (well_formed) {
    FUZZ_CHECK(handler.messages == predicted.messages);
    if (!predicted.error_codes.empty()) {
      FUZZ_CHECK(std::find(predicted.error_codes.begin(), predicted.error_codes.end(),
                           handler.error) != predicted.error_codes.end());
    } else if (predicted.peer_close) {
      FUZZ_CHECK(!handler.errors && session.close_code() == *predicted.peer_close);
    } else {
      FUZZ_CHECK(!handler.errors && session.state() == SessionState::open);
    }
  }

  // What the server wrote: valid frames, and its compressed echoes decode to the messages.
  const std::vector<WireFrame> out = parse_output(log, Role::server, true);
  std::vector<Message> echoed;
  std::vector<std::byte> assembled;
  bool compressed = false;
  MessageType type = MessageType::text;
  for (const WireFrame& f : out) {
    if (is_control(f.opcode)) continue;
    if (f.opcode != Opcode::continuation) {
      type = static_cast<MessageType>(f.opcode);
      compressed = f.rsv1;
      assembled.clear();
    }
    if (compressed) {
      const TransformStatus st = client_reader.decode(f.payload, f.fin, assembled, 4 * max);
      FUZZ_CHECK(st.close_code == 0);
    } else {
      assembled.insert(assembled.end(), f.payload.begin(), f.payload.end());
    }
    if (f.fin) echoed.emplace_back(type, std::string(as_text(assembled)));
  }
  FUZZ_CHECK(echoed.size() <= handler.messages.size());
  FUZZ_CHECK(std::equal(echoed.begin(), echoed.end(), handler.messages.begin()));
  if ((flags & echo) && !handler.errors && session.state() == SessionState::open)
    FUZZ_CHECK(echoed.size() == handler.messages.size());

  session.receive_eof();
  FUZZ_CHECK(session.finished() && handler.closes == 1);
  const std::uint16_t code = session.close_code();
  FUZZ_CHECK(is_valid_wire_close_code(code) || code == close_code::no_status ||
             code == close_code::abnormal);
  return 0;
}
