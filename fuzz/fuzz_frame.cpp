// Frame layer fuzz target: FrameDecoder and an open Session fed arbitrary bytes from the
// peer. Built twice, as fuzz_frame_server and fuzz_frame_client (TETHER_FUZZ_CLIENT=1), since
// the roles accept opposite masking and so reach different code.
//
// Input: [flags] [more flags] [decoder chunking] [session chunking] [bytes from the peer...]
//
// Oracles, beyond "no crash, no sanitizer report":
//  - the decoder reports the same frames, payload bytes and error whether the bytes arrive at
//    once or in chunks the input chooses;
//  - without application interference, the session delivers exactly the messages, pings,
//    CLOSE and error that a byte-at-a-time model of RFC 6455 §5 predicts;
//  - after an error the session is closed, on_close comes exactly once, and everything it
//    wrote parses as whole, valid frames for its role with the right close code last.
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_common.hpp"
#include "tether/session.hpp"

namespace {

using namespace tether;
using namespace tether::fuzz;

#ifndef TETHER_FUZZ_CLIENT
#define TETHER_FUZZ_CLIENT 0
#endif
constexpr Role local_role = TETHER_FUZZ_CLIENT ? Role::client : Role::server;

enum Flags : std::uint8_t {
  stream_fragments = 1,
  trace = 2,
  small_limit = 4,
  echo = 8,        // the application sends every message and ping back from its callbacks
  app_close = 16,  // the application closes after a few messages (see close_after)
  small_fragments = 32,
  tick = 64,  // time advances 7 s per tick, 1-4 ticks per chunk (see ticks_per_chunk)
  partial_writes = 128,
};
enum Flags2 : std::uint8_t {
  decoder_rsv1 = 1,  // the standalone decoder allows RSV1 (the session has no extension)
  // bits 1-2: close_after - 1; bits 3-4: ticks_per_chunk - 1. One tick per chunk keeps the
  // peer alive (every read counts); more, and a PING goes unanswered into the pong timeout.
};

// Small enough that a few fragments of a short input reach it.
constexpr std::uint64_t small_max_message = 100;

using Message = std::pair<MessageType, std::string>;

std::string text(ByteView b) {
  return std::string(as_text(b));
}

// ---- decoder: chunking must not matter ---------------------------------------------------

std::string decode_trace(std::string_view wire, Chunker chunks, std::uint64_t max, bool rsv1) {
  FrameDecoder d(local_role, max);
  d.set_rsv1_allowed(rsv1);
  std::vector<std::byte> buf = to_bytes(wire);
  std::string trace;
  std::uint64_t delivered = 0;
  std::size_t pos = 0;
  while (pos < buf.size()) {
    const std::size_t n = std::min(chunks.next(), buf.size() - pos);
    MutableByteView input(buf.data() + pos, n);
    pos += n;
    for (bool more = true; more;) {
      const auto r = d.next(input);
      switch (r.status) {
        case FrameDecoder::Status::need_more:
          FUZZ_CHECK(input.empty());
          more = false;
          break;
        case FrameDecoder::Status::header: {
          const FrameHeader& h = d.header();
          FUZZ_CHECK(!h.rsv2 && !h.rsv3 && (rsv1 || !h.rsv1));
          FUZZ_CHECK(h.masked == (local_role == Role::server));
          FUZZ_CHECK(!is_control(h.opcode) || (h.fin && h.length <= max_control_payload));
          FUZZ_CHECK(is_control(h.opcode) || h.length <= max);
          FUZZ_CHECK(d.remaining() == h.length);
          delivered = 0;
          trace += "H" + std::to_string(static_cast<int>(h.opcode)) + (h.fin ? "F" : "-") +
                   (h.rsv1 ? "R" : "-") + std::to_string(h.length) + ":";
          break;
        }
        case FrameDecoder::Status::payload:
          FUZZ_CHECK(!r.payload.empty());
          delivered += r.payload.size();
          FUZZ_CHECK(delivered + d.remaining() == d.header().length);
          trace += text(r.payload);
          break;
        case FrameDecoder::Status::frame_end:
          FUZZ_CHECK(d.remaining() == 0 && delivered == d.header().length);
          trace += "|";
          break;
        case FrameDecoder::Status::error: {
          const FrameError& e = d.error();
          FUZZ_CHECK(e.close_code == close_code::protocol_error ||
                     e.close_code == close_code::message_too_big);
          FUZZ_CHECK(!e.message.empty());
          // The error state is sticky until reset().
          MutableByteView again = input;
          FUZZ_CHECK(d.next(again).status == FrameDecoder::Status::error);
          return trace + "E" + std::to_string(e.close_code) + std::string(e.message);
        }
      }
    }
  }
  return trace;
}

// ---- the model: what RFC 6455 says a receiver does with these bytes -----------------------

struct Expected {
  std::vector<Message> messages;
  std::vector<std::string> pings, pongs;
  std::uint16_t error = 0;  // close code the receiver fails with; 0 when it does not
  std::optional<std::pair<std::uint16_t, std::string>> close;  // the peer's CLOSE, if whole
};

// Written straight from the RFC, a frame at a time, sharing nothing with FrameDecoder or
// Session but the UTF-8 validator and the CLOSE payload rules, which have their own tests.
Expected model(std::string_view w, std::uint64_t max) {
  Expected e;
  auto u = [&](std::size_t k) { return static_cast<unsigned char>(w[k]); };
  std::size_t i = 0;
  unsigned open = 0;  // opcode of the message in progress
  std::uint64_t message_size = 0;
  std::string message;
  Utf8Validator utf8;
  while (w.size() - i >= 2) {
    const unsigned b0 = u(i), b1 = u(i + 1);
    const unsigned len7 = b1 & 0x7F;
    const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const bool masked = b1 & 0x80;
    const std::size_t header = 2 + ext + (masked ? 4 : 0);
    if (w.size() - i < header) break;
    std::uint64_t len = len7;
    if (ext) {
      len = 0;
      for (std::size_t k = 0; k < ext; ++k) len = (len << 8) | u(i + 2 + k);
    }
    const bool fin = b0 & 0x80;
    const unsigned op = b0 & 0x0F;
    const bool control = op >= 8;
    const bool starts = op == 1 || op == 2;
    const bool violation = (b0 & 0x70) != 0 || !is_known_opcode(op) || (ext == 2 && len < 126) ||
                           (ext == 8 && ((len >> 63) != 0 || len <= 0xFFFF)) ||
                           (control && (!fin || len > max_control_payload)) ||
                           masked != (local_role == Role::server) || (op == 0 && !open) ||
                           (starts && open);
    if (violation) {
      e.error = close_code::protocol_error;
      return e;
    }
    if (!control) {
      if (starts) message_size = 0;
      if (len > max - message_size) {
        e.error = close_code::message_too_big;
        return e;
      }
      message_size += len;
    }
    const std::size_t key = i + header - 4;
    i += header;
    const std::size_t avail = static_cast<std::size_t>(std::min<std::uint64_t>(len, w.size() - i));
    std::string payload(w.substr(i, avail));
    if (masked)
      for (std::size_t k = 0; k < avail; ++k)
        payload[k] = static_cast<char>(payload[k] ^ w[key + k % 4]);
    i += avail;
    if (!control) {
      if (starts) {
        open = op;
        message.clear();
        utf8.reset();
      }
      // An invalid prefix fails at once, even in a frame not yet complete.
      if (open == 1 && !utf8.feed(as_bytes(payload))) {
        e.error = close_code::invalid_payload;
        return e;
      }
      message += payload;
    }
    if (avail < len) break;
    if (op == 9) e.pings.push_back(payload);
    if (op == 10) e.pongs.push_back(payload);
    if (op == 8) {
      ClosePayload cp;
      FrameError err;
      if (!parse_close_payload(as_bytes(payload), cp, err)) {
        e.error = err.close_code;
      } else {
        e.close = std::pair{cp.code, std::string(cp.reason)};
      }
      return e;
    }
    if (!control && fin) {
      if (open == 1 && !utf8.complete()) {
        e.error = close_code::invalid_payload;
        return e;
      }
      e.messages.emplace_back(static_cast<MessageType>(open), std::move(message));
      message.clear();
      open = 0;
    }
  }
  return e;
}

// ---- the application ---------------------------------------------------------------------

class Handler final : public SessionHandler {
 public:
  Handler(std::uint64_t max, bool echo, std::size_t close_after)
      : max_(max), echo_(echo), close_after_(close_after) {}

  Session* session = nullptr;
  std::vector<Message> messages;
  std::vector<std::string> pings, pongs;
  int errors = 0;
  std::uint16_t error = 0;
  int closes = 0;
  std::uint16_t close_code = 0;
  std::string close_reason;

  void on_message(MessageType type, ByteView payload) override {
    FUZZ_CHECK(!session->options().stream_fragments);
    deliver(type, payload);
  }
  void on_fragment(MessageType type, ByteView data, bool first, bool last) override {
    FUZZ_CHECK(session->options().stream_fragments);
    FUZZ_CHECK(first == !streaming_);
    if (first) {
      streamed_type_ = type;
      streamed_.clear();
    }
    FUZZ_CHECK(type == streamed_type_);
    streamed_ += text(data);
    FUZZ_CHECK(streamed_.size() <= max_);
    streaming_ = !last;
    if (last) deliver(type, as_bytes(streamed_));
  }
  void on_ping(ByteView payload) override {
    FUZZ_CHECK(payload.size() <= max_control_payload);
    pings.push_back(text(payload));
    if (echo_) (void)session->ping(payload);
  }
  void on_pong(ByteView payload) override {
    FUZZ_CHECK(payload.size() <= max_control_payload);
    pongs.push_back(text(payload));
  }
  void on_error(int code, std::string_view message) override {
    FUZZ_CHECK(closes == 0 && errors == 0);
    FUZZ_CHECK(!message.empty());
    ++errors;
    error = static_cast<std::uint16_t>(code);
  }
  void on_close(std::uint16_t code, std::string_view reason) override {
    FUZZ_CHECK(closes == 0);
    FUZZ_CHECK(session->state() == SessionState::closed);
    FUZZ_CHECK(is_valid_utf8(as_bytes(reason)));
    ++closes;
    close_code = code;
    close_reason = reason;
  }
  void on_frame(const FrameTrace& f) override { FUZZ_CHECK(f.payload_head.size() <= 32); }

 private:
  void deliver(MessageType type, ByteView payload) {
    FUZZ_CHECK(session->state() != SessionState::closed);
    FUZZ_CHECK(payload.size() <= max_);
    FUZZ_CHECK(type != MessageType::text || is_valid_utf8(payload));
    messages.emplace_back(type, text(payload));
    if (echo_) {
      const SendStatus st = session->send(type, payload);
      FUZZ_CHECK(st == SendStatus::ok || session->state() != SessionState::open);
    }
    if (close_after_ != 0 && messages.size() == close_after_)
      (void)session->close(close_code::normal, "bye");
  }

  std::uint64_t max_;
  bool echo_;
  std::size_t close_after_;
  bool streaming_ = false;
  MessageType streamed_type_ = MessageType::text;
  std::string streamed_;
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
  const std::uint8_t flags = in.byte();
  const std::uint8_t flags2 = in.byte();
  const Chunker decoder_chunks(in.byte());
  Chunker session_chunks(in.byte());
  const std::string_view wire = in.rest();
  const std::uint64_t max = (flags & small_limit) ? small_max_message : default_max_message_size;

  // Decoder alone: whole input vs the input's own chunking.
  const bool rsv1 = flags2 & decoder_rsv1;
  FUZZ_CHECK(decode_trace(wire, Chunker(0), max, rsv1) ==
             decode_trace(wire, decoder_chunks, max, rsv1));

  // Session.
  SessionOptions options;
  options.max_message_size = max;
  options.stream_fragments = flags & stream_fragments;
  options.trace = flags & trace;
  if (flags & small_fragments) options.fragment_size = 7;
  const std::size_t close_after = (flags & app_close) ? 1 + (flags2 >> 1 & 3) : 0;
  Handler handler(max, flags & echo, close_after);
  Session session(local_role, options, handler);
  handler.session = &session;

  std::vector<std::byte> buf = to_bytes(wire);  // receive() unmasks in place
  std::vector<std::byte> log;                   // everything the session wrote, in order
  TimePoint now{};
  const int ticks_per_chunk = 1 + (flags2 >> 3 & 3);
  std::size_t pos = 0;
  while (pos < buf.size()) {
    const std::size_t n = std::min(session_chunks.next(), buf.size() - pos);
    session.receive(MutableByteView(buf.data() + pos, n));
    pos += n;
    if (handler.errors) FUZZ_CHECK(session.state() == SessionState::closed);
    for (int i = 0; (flags & tick) && i < ticks_per_chunk; ++i) {
      now += std::chrono::seconds(7);
      session.tick(now);
      (void)session.next_deadline();
    }
    move_output(session, log, (flags & partial_writes) ? session_chunks.next() : SIZE_MAX);
  }
  // Queued fragments are encoded as the output drains, so drain until nothing is left.
  for (int i = 0; i < 1'000'000 && !session.pending_output().empty(); ++i)
    move_output(session, log, (flags & partial_writes) ? 1 + i % 97 : SIZE_MAX);
  FUZZ_CHECK(session.pending_output().empty());

  // A timeout aborts: the pending output is dropped, possibly in the middle of a frame the
  // transport had half written, which is fine as the socket closes. Judge only whole frames.
  const bool aborted = handler.closes && handler.close_code == close_code::abnormal;
  if (aborted) {
    std::size_t whole = 0;
    for (std::size_t i = 0; log.size() - i >= 2;) {
      const unsigned b1 = static_cast<unsigned>(log[i + 1]);
      std::uint64_t len = b1 & 0x7F;
      std::size_t header = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
      if (log.size() - i < header) break;
      if (len >= 126) {
        len = 0;
        for (std::size_t k = 2; k < header - ((b1 & 0x80) ? 4 : 0); ++k)
          len = (len << 8) | static_cast<unsigned>(log[i + k]);
      }
      if (log.size() - i - header < len) break;
      i += header + static_cast<std::size_t>(len);
      whole = i;
    }
    log.resize(whole);
  }
  const std::vector<WireFrame> out = parse_output(log, local_role, false);

  std::vector<std::string> pongs_sent;
  std::optional<std::uint16_t> close_sent;
  for (const WireFrame& f : out) {
    if (f.opcode == Opcode::pong) pongs_sent.push_back(text(f.payload));
    if (f.opcode == Opcode::close) close_sent = close_code_of(f);
    if (f.opcode == Opcode::text) {
      // Echoed messages go out fragmented by fragment_size, but a single frame is checkable.
      if (f.fin) FUZZ_CHECK(is_valid_utf8(f.payload));
    }
  }
  if (handler.errors && handler.error != close_code::abnormal) {
    FUZZ_CHECK(handler.error == close_code::protocol_error ||
               handler.error == close_code::invalid_payload ||
               handler.error == close_code::message_too_big);
    FUZZ_CHECK(handler.close_code == handler.error);
    // We fail with our code, unless our own CLOSE (application close) went out first.
    FUZZ_CHECK(close_sent.has_value());
    if (!close_after) FUZZ_CHECK(*close_sent == handler.error);
  }

  // Without the application closing or time passing, the session is a function of the bytes.
  if (!(flags & app_close) && !(flags & tick)) {
    const Expected want = model(wire, max);
    FUZZ_CHECK(handler.messages == want.messages);
    FUZZ_CHECK(handler.pings == want.pings);
    FUZZ_CHECK(handler.pongs == want.pongs);
    FUZZ_CHECK(pongs_sent == want.pings);
    FUZZ_CHECK(handler.error == want.error);
    if (want.error) {
      FUZZ_CHECK(session.state() == SessionState::closed && session.close_code() == want.error);
      FUZZ_CHECK(close_sent == want.error);
    } else if (want.close) {
      FUZZ_CHECK(session.state() == SessionState::closed);
      FUZZ_CHECK(session.close_code() == want.close->first);
      FUZZ_CHECK(handler.close_reason == want.close->second);
      FUZZ_CHECK(close_sent == want.close->first);  // the peer's code echoed (1005: none)
    } else {
      FUZZ_CHECK(session.state() == SessionState::open && !close_sent);
    }
  } else if (!(flags & tick)) {
    // The application's close only ever drops messages that follow it.
    const Expected want = model(wire, max);
    FUZZ_CHECK(handler.messages.size() <= want.messages.size());
    FUZZ_CHECK(std::equal(handler.messages.begin(), handler.messages.end(), want.messages.begin()));
  }

  const bool was_closed = session.state() == SessionState::closed;
  session.receive_eof();
  FUZZ_CHECK(session.state() == SessionState::closed && session.finished());
  FUZZ_CHECK(handler.closes == 1);
  if (!was_closed) FUZZ_CHECK(session.close_code() == close_code::abnormal);
  return 0;
}
