// Randomized properties of the session, with a fixed seed that every failure prints.
// ctest names contain "property" so they can be selected with `ctest -R property`.
#include <gtest/gtest.h>

#include <random>

#include "core/session_harness.hpp"
#include "tether/session.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using test::make_frame;
using test::Recorder;

constexpr std::uint64_t kSeed = 20261125;
constexpr int kCases = 10000;

SessionOptions quiet() {
  SessionOptions o;
  o.ping_interval = 0ms;
  return o;
}

std::string random_payload(std::mt19937_64& rng, std::size_t max_len, bool text) {
  std::size_t len = std::uniform_int_distribution<std::size_t>(0, max_len)(rng);
  std::string s;
  s.reserve(len + 4);
  while (s.size() < len) {
    if (!text) {
      s.push_back(static_cast<char>(rng() & 0xFF));
      continue;
    }
    switch (rng() % 4) {  // valid UTF-8 of every width
      case 0:
        s += static_cast<char>('a' + rng() % 26);
        break;
      case 1:
        s += "\xc3\xa9";
        break;
      case 2:
        s += "\xe2\x82\xac";
        break;
      default:
        s += "\xf0\x9f\x98\x80";
        break;
    }
  }
  return s;
}

// (a) Any sequence of valid frames gives the same events whether fed whole or in any chunking.
TEST(property, SessionAnyChunkingGivesSameEvents) {
  std::mt19937_64 rng(kSeed);
  for (int c = 0; c < kCases; ++c) {
    SCOPED_TRACE("seed=" + std::to_string(kSeed) + " case=" + std::to_string(c));
    std::vector<std::byte> stream;
    std::vector<std::string> expected;
    int messages = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < messages; ++m) {
      bool text = rng() % 2;
      std::string payload = random_payload(rng, 300, text);
      // Split at random points, never inside a UTF-8 sequence boundary concern: the session
      // must handle splits anywhere, so split anywhere.
      std::size_t pos = 0;
      bool first = true;
      do {
        std::size_t take = std::min<std::size_t>(payload.size() - pos, rng() % 120);
        bool fin = pos + take == payload.size() || rng() % 3 == 0;
        if (fin) take = payload.size() - pos;
        auto f = make_frame(first ? (text ? 1 : 2) : 0, std::string_view(payload).substr(pos, take),
                            fin, true, false, static_cast<std::uint32_t>(rng()));
        stream.insert(stream.end(), f.begin(), f.end());
        pos += take;
        first = false;
        if (!fin && rng() % 4 == 0) {
          auto ping = make_frame(0x9, random_payload(rng, 20, true), true, true, false,
                                 static_cast<std::uint32_t>(rng()));
          stream.insert(stream.end(), ping.begin(), ping.end());
        }
        if (fin) break;
      } while (true);
      expected.push_back(std::string(text ? "text:" : "binary:") + payload);
    }
    Recorder whole_ev, chunk_ev;
    Session whole(Role::server, quiet(), whole_ev);
    Session chunked(Role::server, quiet(), chunk_ev);
    auto copy = stream;
    whole.receive(copy);
    std::size_t pos = 0;
    while (pos < stream.size()) {
      std::size_t n = std::min<std::size_t>(stream.size() - pos, 1 + rng() % 40);
      std::vector<std::byte> piece(stream.begin() + pos, stream.begin() + pos + n);
      chunked.receive(piece);
      pos += n;
    }
    ASSERT_EQ(whole_ev.events, chunk_ev.events);
    ASSERT_EQ(whole_ev.messages.size(), expected.size());
    std::vector<std::string> data_events;
    for (auto& e : whole_ev.events)
      if (e.rfind("ping:", 0) != 0) data_events.push_back(e);
    ASSERT_EQ(data_events, expected);
    ASSERT_FALSE(whole_ev.error);
  }
}

// (b) App messages plus PING/PONG/CLOSE at random moments, drained by random partial writes
// (1 byte included): the byte stream, parsed independently, is exactly the app's messages in
// order, with control frames only between frames.
TEST(property, SessionInterleavingKeepsFramesWhole) {
  std::mt19937_64 rng(kSeed + 1);
  for (int c = 0; c < kCases; ++c) {
    SCOPED_TRACE("seed=" + std::to_string(kSeed + 1) + " case=" + std::to_string(c));
    SessionOptions o = quiet();
    o.fragment_size = 1 + rng() % 700;
    Role role = rng() % 2 ? Role::client : Role::server;
    Recorder ev;
    Session s(role, o, ev);
    std::vector<std::string> sent;
    std::vector<std::pair<int, std::string>> controls;
    std::vector<std::byte> wire;
    bool closed = false;
    int ops = 1 + static_cast<int>(rng() % 12);
    auto write_some = [&] {
      ByteView out = s.pending_output();
      if (out.empty()) return;
      std::size_t n = rng() % 3 == 0 ? 1 : 1 + rng() % (out.size());
      wire.insert(wire.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
      s.consume_output(n);
    };
    for (int i = 0; i < ops; ++i) {
      switch (rng() % 6) {
        case 0:
        case 1:
        case 2: {
          bool text = rng() % 2;
          std::string p = random_payload(rng, 2000, text);
          auto st = s.send(text ? MessageType::text : MessageType::binary, as_bytes(p));
          if (closed) {
            ASSERT_EQ(st, SendStatus::not_open);
          } else {
            ASSERT_EQ(st, SendStatus::ok);
            sent.push_back((text ? "t:" : "b:") + p);
          }
          break;
        }
        case 3: {
          std::string p = random_payload(rng, 125, false).substr(0, 125);
          if (s.ping(as_bytes(p)) == SendStatus::ok) controls.push_back({9, p});
          break;
        }
        case 4: {
          std::string p = random_payload(rng, 125, false).substr(0, 125);
          if (s.pong(as_bytes(p)) == SendStatus::ok) controls.push_back({10, p});
          break;
        }
        default:
          if (!closed && rng() % 3 == 0) {
            ASSERT_EQ(s.close(1000, "bye"), SendStatus::ok);
            closed = true;
          }
          break;
      }
      int writes = static_cast<int>(rng() % 4);
      for (int w = 0; w < writes; ++w) write_some();
    }
    while (!s.pending_output().empty()) write_some();

    auto frames = test::ref_parse(wire);
    ASSERT_TRUE(frames) << "output is not a sequence of whole frames";
    std::vector<std::string> got;
    std::vector<std::pair<int, std::string>> got_controls;
    std::string current;
    int current_op = -1;
    bool saw_close = false;
    for (auto& f : *frames) {
      ASSERT_FALSE(saw_close) << "frame after CLOSE";
      ASSERT_EQ(f.masked, role == Role::client);
      ASSERT_FALSE(f.rsv1);
      if (f.opcode == 8) {
        saw_close = true;
        ASSERT_EQ(current_op, -1) << "CLOSE inside a fragmented message";
        continue;
      }
      if (f.opcode == 9 || f.opcode == 10) {
        ASSERT_TRUE(f.fin);
        got_controls.push_back({f.opcode, f.payload});
        continue;
      }
      if (f.opcode == 0) {
        ASSERT_NE(current_op, -1) << "continuation without a message";
      } else {
        ASSERT_EQ(current_op, -1) << "new message inside a fragmented one";
        current_op = f.opcode;
        current.clear();
      }
      current += f.payload;
      if (f.fin) {
        got.push_back((current_op == 1 ? "t:" : "b:") + current);
        current_op = -1;
      }
    }
    ASSERT_EQ(current_op, -1);
    ASSERT_EQ(got, sent);
    ASSERT_EQ(got_controls, controls);
    ASSERT_EQ(saw_close, closed);
  }
}

// (c) The caller's buffer is bit-identical after send, in both roles and at every size.
TEST(property, SessionNeverWritesTheCallersBuffer) {
  std::mt19937_64 rng(kSeed + 2);
  for (int c = 0; c < kCases; ++c) {
    SCOPED_TRACE("seed=" + std::to_string(kSeed + 2) + " case=" + std::to_string(c));
    SessionOptions o = quiet();
    o.fragment_size = 1 + rng() % 512;
    Recorder ev;
    Session s(rng() % 2 ? Role::client : Role::server, o, ev);
    std::string payload = random_payload(rng, 1500, false);
    const std::string before = payload;
    ASSERT_EQ(s.send(MessageType::binary, as_bytes(payload)), SendStatus::ok);
    ASSERT_EQ(payload, before);
    auto frames = test::ref_parse(test::drain_all(s));
    ASSERT_TRUE(frames);
    ASSERT_EQ(payload, before);
    std::string joined;
    for (auto& f : *frames) joined += f.payload;
    ASSERT_EQ(joined, before);
  }
}

}  // namespace
}  // namespace tether
