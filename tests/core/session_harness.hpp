// Test support for sessions: an event recorder, an in-memory pipe with random partial
// writes, and a reference frame parser written independently of the codec under test.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tether/session.hpp"

namespace tether::test {

inline std::vector<std::byte> bytes_of(std::string_view s) {
  auto b = as_bytes(s);
  return {b.begin(), b.end()};
}
inline std::string text_of(ByteView b) {
  return std::string(as_text(b));
}

/// Records every event of a session as a line of text, and messages whole.
class Recorder : public SessionHandler {
 public:
  struct Message {
    MessageType type;
    std::string data;
  };
  std::vector<std::string> events;
  std::vector<Message> messages;
  std::vector<std::string> pings, pongs;
  std::optional<std::pair<std::uint16_t, std::string>> closed;
  std::optional<std::pair<int, std::string>> error;
  bool opened = false;
  HandshakeDecision decision;  // what on_handshake answers
  std::vector<std::string> offered;
  std::vector<std::string> trace_lines;

  void on_handshake(const HttpRequestHead&, const std::vector<std::string>& subprotocols,
                    HandshakeDecision& d) override {
    offered = subprotocols;
    d = decision;
    events.push_back("handshake");
  }
  void on_open() override {
    opened = true;
    events.push_back("open");
  }
  void on_message(MessageType type, ByteView payload) override {
    messages.push_back({type, text_of(payload)});
    events.push_back(std::string(type == MessageType::text ? "text:" : "binary:") +
                     text_of(payload));
  }
  void on_fragment(MessageType type, ByteView data, bool first, bool last) override {
    events.push_back(std::string("fragment:") + (type == MessageType::text ? "t" : "b") +
                     (first ? "F" : "-") + (last ? "L" : "-") + ":" + text_of(data));
  }
  void on_ping(ByteView p) override {
    pings.push_back(text_of(p));
    events.push_back("ping:" + text_of(p));
  }
  void on_pong(ByteView p) override {
    pongs.push_back(text_of(p));
    events.push_back("pong:" + text_of(p));
  }
  void on_close(std::uint16_t code, std::string_view reason) override {
    closed = {code, std::string(reason)};
    events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
  }
  void on_error(int code, std::string_view message) override {
    error = {code, std::string(message)};
    events.push_back("error:" + std::to_string(code) + ":" + std::string(message));
  }
  void on_frame(const FrameTrace& f) override {
    trace_lines.push_back(std::string(f.outgoing ? "out " : "in ") +
                          std::string(opcode_name(f.header.opcode)) + (f.header.fin ? " fin" : "") +
                          " len=" + std::to_string(f.header.length) + " " +
                          text_of(f.payload_head));
  }
};

/// Moves up to `max` bytes of `from`'s output into `to` (or everything when max == 0).
/// Returns the number moved.
inline std::size_t transfer(Session& from, Session& to, std::size_t max = 0) {
  ByteView out = from.pending_output();
  std::size_t n = max == 0 ? out.size() : std::min(max, out.size());
  if (n == 0) return 0;
  std::vector<std::byte> chunk(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
  from.consume_output(n);
  to.receive(chunk);
  return n;
}

/// Pumps both directions until neither has output left (bounded).
inline void pump(Session& a, Session& b) {
  for (int i = 0; i < 1000; ++i) {
    std::size_t moved = transfer(a, b) + transfer(b, a);
    if (moved == 0) return;
  }
}

/// Reference frame parser for whole streams, written independently of FrameDecoder: it
/// parses the simplest way (byte by byte, no spill logic) and checks the RFC's layout.
struct RefFrame {
  int opcode = 0;
  bool fin = false;
  bool rsv1 = false;
  bool masked = false;
  std::string payload;  // unmasked
};
/// Parses `stream` completely; returns nullopt if it is not a sequence of whole frames.
inline std::optional<std::vector<RefFrame>> ref_parse(const std::vector<std::byte>& stream) {
  std::vector<RefFrame> frames;
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<unsigned>(stream[k]); };
  while (i < stream.size()) {
    if (stream.size() - i < 2) return std::nullopt;
    RefFrame f;
    f.fin = at(i) & 0x80;
    f.rsv1 = at(i) & 0x40;
    if (at(i) & 0x30) return std::nullopt;
    f.opcode = static_cast<int>(at(i) & 0x0F);
    f.masked = at(i + 1) & 0x80;
    std::uint64_t len = at(i + 1) & 0x7F;
    i += 2;
    int ext = len == 126 ? 2 : len == 127 ? 8 : 0;
    if (ext) {
      if (stream.size() - i < static_cast<std::size_t>(ext)) return std::nullopt;
      len = 0;
      for (int k = 0; k < ext; ++k) len = (len << 8) | at(i++);
    }
    unsigned char key[4] = {0, 0, 0, 0};
    if (f.masked) {
      if (stream.size() - i < 4) return std::nullopt;
      for (int k = 0; k < 4; ++k) key[k] = static_cast<unsigned char>(at(i++));
    }
    if (stream.size() - i < len) return std::nullopt;
    for (std::uint64_t k = 0; k < len; ++k)
      f.payload.push_back(static_cast<char>(at(i + k) ^ key[k % 4]));
    i += len;
    frames.push_back(std::move(f));
  }
  return frames;
}

/// Encodes one frame the simple way (for feeding sessions hand-made input).
inline std::vector<std::byte> make_frame(int opcode, std::string_view payload, bool fin = true,
                                         bool masked = true, bool rsv1 = false,
                                         std::uint32_t key = 0x37fa213d) {
  std::vector<std::byte> f;
  auto push = [&](unsigned v) { f.push_back(static_cast<std::byte>(v & 0xFF)); };
  push((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<unsigned>(opcode));
  std::uint64_t len = payload.size();
  unsigned m = masked ? 0x80 : 0;
  if (len < 126) {
    push(m | static_cast<unsigned>(len));
  } else if (len <= 0xFFFF) {
    push(m | 126);
    push(static_cast<unsigned>(len >> 8));
    push(static_cast<unsigned>(len));
  } else {
    push(m | 127);
    for (int s = 56; s >= 0; s -= 8) push(static_cast<unsigned>(len >> s));
  }
  unsigned char k[4] = {static_cast<unsigned char>(key >> 24),
                        static_cast<unsigned char>(key >> 16), static_cast<unsigned char>(key >> 8),
                        static_cast<unsigned char>(key)};
  if (masked)
    for (unsigned char c : k) push(c);
  for (std::size_t i = 0; i < payload.size(); ++i)
    push(static_cast<unsigned char>(payload[i]) ^ (masked ? k[i % 4] : 0));
  return f;
}

inline std::vector<std::byte> concat(std::initializer_list<std::vector<std::byte>> parts) {
  std::vector<std::byte> all;
  for (auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

/// Drains all pending output of `s` into a byte vector.
inline std::vector<std::byte> drain(Session& s) {
  ByteView out = s.pending_output();
  std::vector<std::byte> v(out.begin(), out.end());
  s.consume_output(out.size());
  return v;
}

/// Drains until nothing is pending (queued fragments are encoded as output drains).
inline std::vector<std::byte> drain_all(Session& s) {
  std::vector<std::byte> all;
  while (!s.pending_output().empty()) {
    auto d = drain(s);
    all.insert(all.end(), d.begin(), d.end());
  }
  return all;
}

}  // namespace tether::test
