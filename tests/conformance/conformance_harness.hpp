// Autobahn-equivalent conformance harness: a raw WebSocket peer over a plain socket, speaking
// hand-made frames (test::make_frame) and reading the other side's frames with the reference
// parser (test::ref_parse), against Tether in either role:
//
//   ServerEndpoint  tether::Server echoing every message, on an EventLoop in its own thread;
//                   the raw peer is a client that does the HTTP upgrade by hand and masks.
//   ClientEndpoint  tether::Client whose on_message echoes, on an EventLoop in its own thread;
//                   the raw peer is a server on 127.0.0.1:0 that answers the upgrade by hand.
//
// That is Autobahn's set-up in both of its modes (fuzzingclient against a server, and
// fuzzingserver against an echoing client). A case written once with AUTOBAHN_CASE runs in
// both roles. Every wait is bounded (poll() with a deadline); nothing sleeps.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/session_harness.hpp"
#include "runtime/loop_harness.hpp"
#include "tether/client.hpp"
#include "tether/handshake.hpp"
#include "tether/permessage_deflate.hpp"
#include "tether/server.hpp"

namespace tether::conformance {

using namespace std::chrono_literals;

/// Bound on any single expected event (a frame, EOF, an upgrade): a hang guard, never a
/// timing assertion. Generous because the 2-core CI box runs several suites at once.
inline constexpr Duration event_bound = std::chrono::seconds(10);
/// Bound on writing one batch of bytes (a 16 MiB message included).
inline constexpr Duration send_bound = std::chrono::seconds(30);

/// Opcodes as integers, reserved ones included, for hand-made frames.
namespace op {
inline constexpr int cont = 0x0;
inline constexpr int text = 0x1;
inline constexpr int binary = 0x2;
inline constexpr int close = 0x8;
inline constexpr int ping = 0x9;
inline constexpr int pong = 0xA;
}  // namespace op

/// RSV bits the way Autobahn numbers them: `rsv` is shifted into bits 6..4 of the first
/// byte, so 4 is RSV1, 2 is RSV2, 1 is RSV3 ("RSV = 7" sets all three).
inline constexpr unsigned rsv1 = 4;

/// One frame as read from the wire.
struct WireFrame {
  int opcode = -1;
  bool fin = false;
  unsigned rsv = 0;  // Autobahn numbering (RSV1 = 4)
  bool masked = false;
  std::uint32_t mask_key = 0;  // when masked
  std::string payload;         // unmasked
};

inline std::string opcode_label(int opcode) {
  switch (opcode) {
    case op::cont:
      return "CONT";
    case op::text:
      return "TEXT";
    case op::binary:
      return "BINARY";
    case op::close:
      return "CLOSE";
    case op::ping:
      return "PING";
    case op::pong:
      return "PONG";
    default:
      return "OPCODE(" + std::to_string(opcode) + ")";
  }
}

inline std::string hex_head(std::string_view s, std::size_t max = 24) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (!out.empty()) out += ' ';
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  if (s.size() > max) out += " ...";
  return out;
}

inline std::string describe(const WireFrame& f) {
  return opcode_label(f.opcode) + (f.fin ? " fin" : " nofin") +
         (f.rsv ? " rsv=" + std::to_string(f.rsv) : "") +
         " len=" + std::to_string(f.payload.size()) + " [" + hex_head(f.payload) + "]";
}

/// Payload of a CLOSE frame: a big-endian code and a reason.
inline std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xFF);
  p.append(reason);
  return p;
}

/// Where two byte strings first differ, for failure messages that never print megabytes.
inline std::string first_difference(std::string_view got, std::string_view want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, expected " + std::to_string(want.size()) +
         "; first difference at offset " + std::to_string(i) + ": got [" +
         hex_head(got.substr(std::min(i, got.size()))) + "] expected [" +
         hex_head(want.substr(std::min(i, want.size()))) + "]";
}

/// Joins frames into one byte stream.
inline std::vector<std::byte> concat_all(const std::vector<std::vector<std::byte>>& parts) {
  std::vector<std::byte> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

/// UTF-8 check (RFC 3629) written independently of Tether's, for what the other side sends.
inline bool utf8_ok(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    static constexpr std::uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// ---- permessage-deflate on the raw side (zlib, RFC 7692 §7.2) ------------------------------

/// Negotiated permessage-deflate parameters (RFC 7692 §7.1), as stated by a response.
struct PmdParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
};

/// Splits "a; b=1; c" (one extension element) into (name, value) pairs; value "" if absent.
inline std::vector<std::pair<std::string, std::string>> split_params(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
  };
  while (!text.empty()) {
    std::size_t semi = text.find(';');
    std::string_view item = text.substr(0, semi);
    std::size_t eq = item.find('=');
    std::string name = trim(item.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : trim(item.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    out.emplace_back(name, value);
    if (semi == std::string_view::npos) break;
    text.remove_prefix(semi + 1);
  }
  return out;
}

/// Parses a permessage-deflate response element; nullopt (with `error`) when it is not a
/// valid RFC 7692 response (unknown or repeated parameter, bits outside 8..15, ...).
inline std::optional<PmdParams> parse_pmd_response(std::string_view header, std::string& error) {
  auto items = split_params(header);
  if (items.empty() || items[0].first != "permessage-deflate") {
    error = "not a permessage-deflate response: '" + std::string(header) + "'";
    return std::nullopt;
  }
  PmdParams p;
  std::vector<std::string> seen;
  for (std::size_t i = 1; i < items.size(); ++i) {
    const auto& [name, value] = items[i];
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      error = "parameter " + name + " twice";
      return std::nullopt;
    }
    seen.push_back(name);
    auto bits = [&](int& out) {
      if (value.empty() || value.size() > 2 || value[0] == '0') return false;
      if (!std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
      int n = std::stoi(value);
      if (n < 8 || n > 15) return false;
      out = n;
      return true;
    };
    if (name == "server_no_context_takeover" && value.empty()) {
      p.server_no_context_takeover = true;
    } else if (name == "client_no_context_takeover" && value.empty()) {
      p.client_no_context_takeover = true;
    } else if (name == "server_max_window_bits" && bits(p.server_max_window_bits)) {
    } else if (name == "client_max_window_bits" && bits(p.client_max_window_bits)) {
    } else {
      error = "invalid parameter '" + name + (value.empty() ? "" : "=" + value) + "'";
      return std::nullopt;
    }
  }
  return p;
}

/// Raw DEFLATE of whole messages with a sync flush and the 00 00 ff ff tail removed.
class RawDeflater {
 public:
  RawDeflater(int window_bits, bool no_context_takeover) : reset_(no_context_takeover) {
    // zlib refuses an 8-bit raw window; 9 bits never reaches back further than 250 bytes,
    // inside the peer's 256-byte window.
    int rc = deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -std::max(window_bits, 9), 8,
                          Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) ADD_FAILURE() << "deflateInit2 failed: " << rc;
  }
  ~RawDeflater() { deflateEnd(&z_); }
  RawDeflater(const RawDeflater&) = delete;
  RawDeflater& operator=(const RawDeflater&) = delete;

  std::string compress(std::string_view in) {
    std::string out;
    std::vector<unsigned char> buf(64 * 1024);
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    do {
      z_.next_out = buf.data();
      z_.avail_out = static_cast<uInt>(buf.size());
      int rc = deflate(&z_, Z_SYNC_FLUSH);
      if (rc != Z_OK && rc != Z_BUF_ERROR) ADD_FAILURE() << "deflate failed: " << rc;
      out.append(reinterpret_cast<const char*>(buf.data()), buf.size() - z_.avail_out);
    } while (z_.avail_out == 0 || z_.avail_in > 0);
    if (out.size() < 4 || out.compare(out.size() - 4, 4, std::string("\0\0\xff\xff", 4)) != 0)
      ADD_FAILURE() << "sync flush did not end with 00 00 ff ff";
    else
      out.resize(out.size() - 4);
    if (reset_) deflateReset(&z_);
    return out;
  }

 private:
  z_stream z_{};
  bool reset_;
};

/// Inflates whole messages. Output goes out in small pieces so that zlib checks every
/// back-reference against the agreed window (it only checks distances reaching past the
/// output of the current call), and the context is dropped after each message when the
/// peer agreed to no context takeover: a peer that breaks either promise fails to decode.
class RawInflater {
 public:
  RawInflater(int window_bits, bool no_context_takeover) : reset_(no_context_takeover) {
    int rc = inflateInit2(&z_, -window_bits);
    if (rc != Z_OK) ADD_FAILURE() << "inflateInit2 failed: " << rc;
  }
  ~RawInflater() { inflateEnd(&z_); }
  RawInflater(const RawInflater&) = delete;
  RawInflater& operator=(const RawInflater&) = delete;

  bool inflate_message(std::string in, std::string& out, std::string& error) {
    in.append("\0\0\xff\xff", 4);
    out.clear();
    unsigned char buf[256];
    z_.next_in = reinterpret_cast<Bytef*>(in.data());
    z_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      z_.next_out = buf;
      z_.avail_out = sizeof buf;
      int rc = inflate(&z_, Z_SYNC_FLUSH);
      out.append(reinterpret_cast<const char*>(buf), sizeof buf - z_.avail_out);
      if (rc == Z_STREAM_END) {
        // A final block (allowed by RFC 7692 §7.2.3.4, never sent by Tether): keep the
        // window and go on with the rest as a new stream.
        unsigned char dict[32768];
        uInt n = sizeof dict;
        inflateGetDictionary(&z_, dict, &n);
        inflateReset(&z_);
        inflateSetDictionary(&z_, dict, n);
        if (z_.avail_in == 0) break;
        continue;
      }
      if (rc == Z_BUF_ERROR && z_.avail_in == 0) break;
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        error = std::string("inflate failed: ") + (z_.msg ? z_.msg : std::to_string(rc));
        return false;
      }
      if (z_.avail_in == 0 && z_.avail_out != 0) break;
    }
    if (reset_) inflateReset(&z_);
    return true;
  }

 private:
  z_stream z_{};
  bool reset_;
};

// ---- the Tether side's view of one connection -----------------------------------------------

/// What the Tether endpoint reported for one connection (written on its loop thread).
struct Observed {
  std::mutex mutex;
  std::condition_variable changed;
  bool opened = false;
  std::optional<std::pair<std::uint16_t, std::string>> closed;
  std::vector<std::pair<int, std::string>> errors;
  std::vector<std::string> send_failures;  // echoes the endpoint could not send

  void on_open() {
    std::lock_guard lock(mutex);
    opened = true;
    changed.notify_all();
  }
  void on_close(std::uint16_t code, std::string_view reason) {
    std::lock_guard lock(mutex);
    closed = {code, std::string(reason)};
    changed.notify_all();
  }
  void on_error(int code, std::string_view message) {
    std::lock_guard lock(mutex);
    errors.emplace_back(code, std::string(message));
    changed.notify_all();
  }
  void on_send(SendResult r) {
    if (r == SendResult::ok) return;
    std::lock_guard lock(mutex);
    send_failures.emplace_back(send_result_name(r));
  }
  /// Waits (bounded) for the first on_error; nullopt if none came.
  std::optional<std::pair<int, std::string>> wait_error(Duration bound) {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, bound, [&] { return !errors.empty(); });
    if (errors.empty()) return std::nullopt;
    return errors.front();
  }
  bool was_opened() {
    std::lock_guard lock(mutex);
    return opened;
  }
  /// Waits (bounded) for on_close; nullopt if it never came.
  std::optional<std::pair<std::uint16_t, std::string>> wait_closed(Duration bound) {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, bound, [&] { return closed.has_value(); });
    return closed;
  }
};

// ---- the raw peer -----------------------------------------------------------------------------

/// How a raw peer sends a data message.
struct Shape {
  std::size_t fragment = 0;  ///< payload bytes per frame; 0: one frame
  std::size_t chop = 0;      ///< bytes per write() call; 0: everything in one write
  bool compress = false;     ///< permessage-deflate (RSV1), when negotiated
};

/// One raw WebSocket connection to the Tether endpoint under test. Blocking-free: every read
/// and write goes through poll() with a deadline.
class RawPeer {
 public:
  enum class Got { frame, eof, timeout };

  RawPeer(int fd, Role raw_role, std::shared_ptr<Observed> observed, std::string leftover)
      : fd_(fd), raw_role_(raw_role), observed_(std::move(observed)), rx_(std::move(leftover)) {
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawPeer() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  /// The raw side's role: client (masks) against a Tether server, server against a client.
  Role raw_role() const noexcept { return raw_role_; }
  /// The Tether endpoint's role.
  Role tether_role() const noexcept {
    return raw_role_ == Role::client ? Role::server : Role::client;
  }
  Observed& observed() { return *observed_; }

  /// Sets up permessage-deflate as agreed by `params`.
  void enable_deflate(const PmdParams& p) {
    const bool client = raw_role_ == Role::client;
    deflater_ = std::make_unique<RawDeflater>(
        client ? p.client_max_window_bits : p.server_max_window_bits,
        client ? p.client_no_context_takeover : p.server_no_context_takeover);
    inflater_ = std::make_unique<RawInflater>(
        client ? p.server_max_window_bits : p.client_max_window_bits,
        client ? p.server_no_context_takeover : p.client_no_context_takeover);
  }
  bool deflate_enabled() const noexcept { return deflater_ != nullptr; }
  /// The Sec-WebSocket-Extensions value of the handshake response (empty when none).
  const std::string& extensions() const noexcept { return extensions_; }
  void set_extensions(std::string e) { extensions_ = std::move(e); }

  // ---- sending ------------------------------------------------------------------------

  /// Encodes one frame, masked with a fresh key when the raw side is the client.
  std::vector<std::byte> frame(int opcode, std::string_view payload, bool fin = true,
                               unsigned rsv = 0) {
    const bool masked = raw_role_ == Role::client;
    auto f =
        test::make_frame(opcode, payload, fin, masked, false, static_cast<std::uint32_t>(rng_()));
    f[0] |= static_cast<std::byte>((rsv & 7u) << 4);
    return f;
  }

  /// Writes `bytes`, `chop` bytes per write() (0: all at once), reading whatever arrives
  /// meanwhile so that neither side can block the other. False when the peer is gone.
  bool send_bytes(ByteView bytes, std::size_t chop = 0) {
    const auto deadline = Clock::now() + send_bound;
    std::size_t off = 0;
    while (off < bytes.size()) {
      const std::size_t n = chop ? std::min(chop, bytes.size() - off) : bytes.size() - off;
      std::size_t done = 0;
      while (done < n) {
        ssize_t w = ::send(fd_, bytes.data() + off + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
          done += static_cast<std::size_t>(w);
          continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          pollfd p{fd_, static_cast<short>(POLLOUT | (eof_ ? 0 : POLLIN)), 0};
          int ms = remaining_ms(deadline);
          if (ms <= 0) {
            ADD_FAILURE() << "watchdog: could not write " << bytes.size() << " bytes within "
                          << send_bound.count() << " ms";
            return false;
          }
          ::poll(&p, 1, ms);
          if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !eof_) read_some();
          continue;
        }
        return false;  // EPIPE, ECONNRESET: the other side is gone
      }
      off += n;
    }
    return true;
  }
  bool send_bytes(const std::vector<std::byte>& bytes, std::size_t chop = 0) {
    return send_bytes(ByteView(bytes), chop);
  }

  /// One hand-made frame.
  bool send_frame(int opcode, std::string_view payload, bool fin = true, unsigned rsv = 0,
                  std::size_t chop = 0) {
    return send_bytes(frame(opcode, payload, fin, rsv), chop);
  }

  /// Several frames: in one write (chop 0), one write per frame (`frame_wise`), or `chop`
  /// bytes per write.
  bool send_frames(const std::vector<std::vector<std::byte>>& frames, std::size_t chop = 0,
                   bool frame_wise = false) {
    if (frame_wise) {
      for (const auto& f : frames)
        if (!send_bytes(f, chop)) return false;
      return true;
    }
    return send_bytes(concat_all(frames), chop);
  }

  /// A data message, possibly fragmented and compressed.
  bool send_message(MessageType type, std::string_view data, Shape shape = {}) {
    std::string compressed;
    std::string_view payload = data;
    if (shape.compress) {
      if (!deflater_) {
        ADD_FAILURE() << "send_message: permessage-deflate was not negotiated";
        return false;
      }
      compressed = deflater_->compress(data);
      payload = compressed;
    }
    std::vector<std::vector<std::byte>> frames;
    const std::size_t step =
        shape.fragment ? shape.fragment : std::max<std::size_t>(payload.size(), 1);
    std::size_t off = 0;
    do {
      std::size_t n = std::min(step, payload.size() - off);
      bool first = off == 0;
      bool fin = off + n == payload.size();
      frames.push_back(frame(first ? static_cast<int>(type) : op::cont, payload.substr(off, n), fin,
                             first && shape.compress ? rsv1 : 0));
      off += n;
    } while (off < payload.size());
    return send_frames(frames, shape.chop);
  }
  bool send_text(std::string_view text, Shape shape = {}) {
    return send_message(MessageType::text, text, shape);
  }
  bool send_close(std::uint16_t code, std::string_view reason = {}) {
    return send_frame(op::close, close_payload(code, reason));
  }

  /// Half-closes our sending side (the raw server's TCP close after a close handshake).
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // ---- receiving ----------------------------------------------------------------------

  /// The next frame, EOF (FIN or reset, after every buffered frame) or a timeout.
  Got next(WireFrame& out, Duration bound = event_bound) {
    const auto deadline = Clock::now() + bound;
    for (;;) {
      if (parse_one(out)) return Got::frame;
      if (eof_) return Got::eof;
      int ms = remaining_ms(deadline);
      if (ms <= 0) return Got::timeout;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, ms) > 0) read_some();
    }
  }

  /// Expects one frame of `opcode` with exactly `payload`.
  testing::AssertionResult expect_frame(int opcode, std::string_view payload) {
    WireFrame f;
    if (auto r = need_frame(f, "a " + opcode_label(opcode)); !r) return r;
    if (f.opcode != opcode || !f.fin || f.rsv != 0 || f.payload != payload)
      return testing::AssertionFailure() << "expected " << opcode_label(opcode) << " fin ["
                                         << hex_head(payload) << "], got " << describe(f);
    return testing::AssertionSuccess();
  }
  testing::AssertionResult expect_pong(std::string_view payload) {
    return expect_frame(op::pong, payload);
  }

  /// Reads one whole data message (reassembling fragments and inflating it when RSV1 is
  /// set); any control frame before it completes is a failure. `frame_sizes` gets the
  /// payload size of each frame.
  testing::AssertionResult read_message(MessageType& type, std::string& data,
                                        std::vector<std::size_t>* frame_sizes = nullptr) {
    WireFrame f;
    if (auto r = need_frame(f, "a data message"); !r) return r;
    if (f.opcode != op::text && f.opcode != op::binary)
      return testing::AssertionFailure() << "expected a data message, got " << describe(f);
    if ((f.rsv & ~rsv1) != 0 || ((f.rsv & rsv1) && !inflater_))
      return testing::AssertionFailure() << "reserved bits without an extension: " << describe(f);
    type = static_cast<MessageType>(f.opcode);
    const bool compressed = (f.rsv & rsv1) != 0;
    std::string payload = std::move(f.payload);
    if (frame_sizes) frame_sizes->assign(1, payload.size());
    while (!f.fin) {
      if (auto r = need_frame(f, "a continuation frame"); !r) return r;
      if (f.opcode != op::cont || f.rsv != 0)
        return testing::AssertionFailure()
               << "expected a continuation frame of the message, got " << describe(f);
      payload += f.payload;
      if (frame_sizes) frame_sizes->push_back(f.payload.size());
    }
    last_compressed_ = compressed;
    if (!compressed) {
      data = std::move(payload);
      return testing::AssertionSuccess();
    }
    std::string error;
    if (!inflater_->inflate_message(std::move(payload), data, error))
      return testing::AssertionFailure() << "compressed message does not inflate: " << error;
    return testing::AssertionSuccess();
  }

  /// Expects the next message to be exactly `want` of `type`.
  testing::AssertionResult expect_message(MessageType type, std::string_view want) {
    MessageType got_type{};
    std::string got;
    if (auto r = read_message(got_type, got); !r) return r;
    if (got_type != type)
      return testing::AssertionFailure()
             << "expected a " << (type == MessageType::text ? "text" : "binary") << " message, got "
             << (got_type == MessageType::text ? "text" : "binary");
    if (got != want)
      return testing::AssertionFailure() << "echo differs: " << first_difference(got, want);
    return testing::AssertionSuccess();
  }
  testing::AssertionResult expect_text(std::string_view want) {
    return expect_message(MessageType::text, want);
  }

  /// Expects a CLOSE with `code` (1005: an empty payload) and a valid reason.
  testing::AssertionResult expect_close(std::uint16_t code) {
    WireFrame f;
    if (auto r = need_frame(f, "CLOSE " + std::to_string(code)); !r) return r;
    if (f.opcode != op::close || !f.fin || f.rsv != 0)
      return testing::AssertionFailure() << "expected CLOSE " << code << ", got " << describe(f);
    if (code == close_code::no_status) {
      if (!f.payload.empty())
        return testing::AssertionFailure()
               << "expected a CLOSE without payload, got " << describe(f);
      return testing::AssertionSuccess();
    }
    if (f.payload.size() < 2)
      return testing::AssertionFailure() << "expected CLOSE " << code << ", got " << describe(f);
    auto got = static_cast<std::uint16_t>((static_cast<unsigned char>(f.payload[0]) << 8) |
                                          static_cast<unsigned char>(f.payload[1]));
    if (got != code)
      return testing::AssertionFailure() << "expected close code " << code << ", got " << got
                                         << " (reason '" << f.payload.substr(2) << "')";
    if (!utf8_ok(f.payload.substr(2)))
      return testing::AssertionFailure() << "close reason is not UTF-8: " << describe(f);
    return testing::AssertionSuccess();
  }

  /// Expects the TCP connection to end (after every frame was read): nothing else may come.
  testing::AssertionResult expect_eof(Duration bound = event_bound) {
    WireFrame f;
    switch (next(f, bound)) {
      case Got::eof:
        return testing::AssertionSuccess();
      case Got::frame:
        return testing::AssertionFailure() << "expected the connection to end, got " << describe(f);
      case Got::timeout:
        break;
    }
    return testing::AssertionFailure()
           << "the " << role_name(tether_role()) << " did not close the TCP connection within "
           << bound.count() << " ms";
  }

  /// The TCP close after a close handshake. The server closes first (RFC 6455 §7.1.1): a raw
  /// client waits for Tether's FIN; a raw server half-closes and waits for the client's.
  testing::AssertionResult finish_tcp() {
    if (raw_role_ == Role::server) shutdown_write();
    return expect_eof();
  }

  /// The whole closing handshake started by us: our CLOSE, the exact echo of the code
  /// (none for none), the TCP close by the right party, and Tether reporting that code.
  testing::AssertionResult close_normally(std::uint16_t code = close_code::normal,
                                          std::string_view reason = {}) {
    bool sent =
        code == close_code::no_status ? send_frame(op::close, "") : send_close(code, reason);
    if (!sent) return testing::AssertionFailure() << "could not send our CLOSE";
    if (auto r = expect_close(code); !r) return r;
    if (auto r = finish_tcp(); !r) return r;
    return tether_closed_with(code, reason);
  }

  /// Tether failed the connection: its CLOSE carries exactly `code`, nothing comes after it,
  /// the TCP connection ends, and Tether reports `code`.
  testing::AssertionResult expect_failure(std::uint16_t code) {
    if (auto r = expect_close(code); !r) return r;
    send_close(code);  // our echo, as Autobahn does; the server may have closed already
    if (auto r = finish_tcp(); !r) return r;
    return tether_closed_with(code);
  }

  /// Tether's on_close for this connection, with `code` (and `reason` unless nullopt).
  testing::AssertionResult tether_closed_with(std::uint16_t code,
                                              std::optional<std::string_view> reason = {}) {
    auto closed = observed_->wait_closed(event_bound);
    if (!closed)
      return testing::AssertionFailure() << "the Tether " << role_name(tether_role())
                                         << " never reported the connection closed";
    if (closed->first != code)
      return testing::AssertionFailure() << "Tether reported close code " << closed->first << " ('"
                                         << closed->second << "'), expected " << code;
    if (reason && !reason->empty() && closed->second != *reason)
      return testing::AssertionFailure()
             << "Tether reported reason '" << closed->second << "', expected '" << *reason << "'";
    return testing::AssertionSuccess();
  }

  /// Whether the last message read_message() returned had RSV1 (was compressed).
  bool last_message_compressed() const noexcept { return last_compressed_; }

  static const char* role_name(Role r) { return r == Role::server ? "server" : "client"; }

 private:
  static int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
  }

  testing::AssertionResult need_frame(WireFrame& f, const std::string& what) {
    switch (next(f)) {
      case Got::frame:
        return testing::AssertionSuccess();
      case Got::eof:
        return testing::AssertionFailure() << "expected " << what << ", but the "
                                           << role_name(tether_role()) << " closed the connection";
      case Got::timeout:
        break;
    }
    return testing::AssertionFailure()
           << "expected " << what << ", nothing came within " << event_bound.count() << " ms";
  }

  // Reads what is available; sets eof_ on FIN or a reset.
  void read_some() {
    char buf[256 * 1024];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        rx_.append(buf, static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < sizeof buf) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      eof_ = true;  // 0 (FIN) or ECONNRESET: either way the other side closed
      return;
    }
  }

  // Takes one whole frame off the front of rx_, parsed by the reference parser. Rules a
  // conforming sender never breaks are checked here and fail the test.
  bool parse_one(WireFrame& out) {
    const std::size_t avail = rx_.size() - rx_off_;
    if (avail < 2) return false;
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(rx_[rx_off_ + k]); };
    std::size_t len = at(1) & 0x7F;
    const bool masked = at(1) & 0x80;
    std::size_t header = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (avail < header) return false;
    if (len >= 126) {
      const std::size_t ext = len == 126 ? 2 : 8;
      std::uint64_t l = 0;
      for (std::size_t k = 0; k < ext; ++k) l = (l << 8) | at(2 + k);
      if ((ext == 2 && l < 126) || (ext == 8 && l <= 0xFFFF))
        ADD_FAILURE() << "the " << role_name(tether_role())
                      << " used a longer length encoding than needed (RFC 6455 §5.2)";
      len = static_cast<std::size_t>(l);
    }
    if (avail < header + len) return false;
    std::uint32_t key = 0;
    if (masked)
      for (std::size_t k = header - 4; k < header; ++k) key = (key << 8) | at(k);
    std::vector<std::byte> one(
        reinterpret_cast<const std::byte*>(rx_.data() + rx_off_),
        reinterpret_cast<const std::byte*>(rx_.data() + rx_off_ + header + len));
    rx_off_ += header + len;
    if (rx_off_ > (1u << 20) && rx_off_ * 2 > rx_.size()) {
      rx_.erase(0, rx_off_);
      rx_off_ = 0;
    }
    out.rsv = (static_cast<unsigned>(one[0]) >> 4) & 7u;
    if (out.rsv & 3u) ADD_FAILURE() << "the " << role_name(tether_role()) << " set RSV2/RSV3";
    one[0] &= std::byte{0x8F};  // the reference parser refuses RSV2/RSV3; they are reported
    auto frames = test::ref_parse(one);
    if (!frames || frames->size() != 1) {
      ADD_FAILURE() << "reference parser refused a frame";
      return false;
    }
    test::RefFrame& rf = frames->front();
    out.opcode = rf.opcode;
    out.fin = rf.fin;
    out.masked = rf.masked;
    out.mask_key = key;
    out.payload = std::move(rf.payload);
    // RFC 6455 §5.1: clients mask every frame, servers none.
    if (out.masked != (tether_role() == Role::client))
      ADD_FAILURE() << "the " << role_name(tether_role()) << " sent a "
                    << (out.masked ? "masked" : "unmasked") << " frame: " << describe(out);
    if ((out.opcode & 8) && (!out.fin || out.payload.size() > 125))
      ADD_FAILURE() << "invalid control frame from the " << role_name(tether_role()) << ": "
                    << describe(out);
    return true;
  }

  int fd_;
  Role raw_role_;
  std::shared_ptr<Observed> observed_;
  std::string rx_;
  std::size_t rx_off_ = 0;
  bool eof_ = false;
  bool last_compressed_ = false;
  std::mt19937 rng_{0x5eed};
  std::string extensions_;
  std::unique_ptr<RawDeflater> deflater_;
  std::unique_ptr<RawInflater> inflater_;
};

// ---- HTTP heads of the upgrade ------------------------------------------------------------

/// An HTTP head split into its start line and header fields.
struct HttpHead {
  std::string start_line;
  std::vector<std::pair<std::string, std::string>> fields;

  /// First value of `name` (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const {
    for (const auto& [n, v] : fields)
      if (n.size() == name.size() &&
          std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          }))
        return &v;
    return nullptr;
  }
  /// Whether `name` holds `token` in its comma-separated list (case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const {
    const std::string* v = find(name);
    if (!v) return false;
    std::string lower;
    for (char c : *v) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string t;
    for (char c : token) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t pos = 0;
    while (pos <= lower.size()) {
      std::size_t comma = lower.find(',', pos);
      std::string item =
          lower.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (item == t) return true;
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    return false;
  }
};

inline HttpHead parse_http_head(std::string_view head) {
  HttpHead h;
  std::size_t pos = head.find("\r\n");
  h.start_line = std::string(head.substr(0, pos));
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    std::size_t start = pos + 2;
    pos = head.find("\r\n", start);
    std::string_view line = head.substr(start, pos - start);
    if (line.empty()) break;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    h.fields.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return h;
}

/// Reads from `fd` up to and including the blank line ending an HTTP head; bytes after it
/// go to `rest`. False on EOF or when the bound expires.
inline bool read_http_head(int fd, std::string& head, std::string& rest, Duration bound) {
  const auto deadline = Clock::now() + bound;
  std::string buf;
  for (;;) {
    if (std::size_t end = buf.find("\r\n\r\n"); end != std::string::npos) {
      head = buf.substr(0, end + 4);
      rest = buf.substr(end + 4);
      return true;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char tmp[4096];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
  }
}

inline bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// ---- the Tether endpoints under test ------------------------------------------------------

/// What to negotiate when opening a connection.
struct OpenOptions {
  /// Server role: the raw client's Sec-WebSocket-Extensions offer (empty: none).
  std::string offer{};
  /// Client role: the Tether client's permessage-deflate options (nullopt: no extension).
  std::optional<DeflateOptions> client_deflate{};
  /// Client role: the raw server's Sec-WebSocket-Extensions answer to the offer it received
  /// (empty string when the client offered nothing); nullopt answers without extensions.
  std::function<std::optional<std::string>(const std::string& offer)> answer{};
};

/// The Tether side under test, running on its own loop thread.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  /// Tether's role.
  virtual Role role() const = 0;
  /// A new connection, upgraded; nullptr (and a test failure) when the upgrade fails.
  virtual std::unique_ptr<RawPeer> open(const OpenOptions& options = {}) = 0;
};

/// Session options of the endpoints: keepalive off, so that no PING of Tether's own ever
/// comes between the frames a case expects; and a close timeout far beyond event_bound, so
/// that a TCP connection closed only when that timer fires (instead of right after the
/// closing handshake) fails the case instead of passing slowly.
inline SessionOptions conformance_session() {
  SessionOptions s;
  s.ping_interval = Duration(0);
  s.close_timeout = std::chrono::seconds(60);
  return s;
}

/// tether::Server with an echo route on 127.0.0.1:0; the raw peer is a client.
class ServerEndpoint final : public Endpoint {
 public:
  explicit ServerEndpoint(SessionOptions session = conformance_session(),
                          std::vector<std::shared_ptr<const Extension>> extensions = {})
      : server_(loop_, options(session, std::move(extensions))) {
    ServerBehavior b;
    b.on_open = [this](const ConnectionPtr& c) {
      if (auto o = find(c)) o->on_open();
    };
    b.on_message = [this](const ConnectionPtr& c, MessageType type, ByteView payload) {
      SendResult r = c->send(type, payload);
      if (auto o = find(c)) o->on_send(r);
    };
    b.on_close = [this](const ConnectionPtr& c, std::uint16_t code, std::string_view reason) {
      if (auto o = find(c)) o->on_close(code, reason);
    };
    b.on_error = [this](const ConnectionPtr& c, int code, std::string_view message) {
      if (auto o = find(c)) o->on_error(code, message);
    };
    server_.route("*", b);
    std::string error;
    if (!server_.listen(&error)) ADD_FAILURE() << "server listen failed: " << error;
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~ServerEndpoint() override {
    loop_.stop();
    thread_.join();
  }

  Role role() const override { return Role::server; }

  std::unique_ptr<RawPeer> open(const OpenOptions& options = {}) override {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "connect to the server failed: " << std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return nullptr;
    }
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    auto observed = std::make_shared<Observed>();
    {
      std::lock_guard lock(mutex_);
      by_remote_["127.0.0.1:" + std::to_string(ntohs(local.sin_port))] = observed;
    }
    // RFC 6455 §1.3's sample key, whose accept value is printed there.
    std::string request =
        "GET /conformance HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server_.port()) +
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n";
    if (!options.offer.empty()) request += "Sec-WebSocket-Extensions: " + options.offer + "\r\n";
    request += "\r\n";
    std::string head, rest;
    if (!write_all(fd, request) || !read_http_head(fd, head, rest, event_bound)) {
      ADD_FAILURE() << "no upgrade response from the server";
      ::close(fd);
      return nullptr;
    }
    HttpHead h = parse_http_head(head);
    const std::string* accept = h.find("Sec-WebSocket-Accept");
    if (h.start_line.rfind("HTTP/1.1 101", 0) != 0 || !h.has_token("Upgrade", "websocket") ||
        !h.has_token("Connection", "upgrade") || !accept ||
        *accept != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
        *accept != websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ==")) {
      ADD_FAILURE() << "invalid upgrade response:\n" << head;
      ::close(fd);
      return nullptr;
    }
    auto peer = std::make_unique<RawPeer>(fd, Role::client, observed, rest);
    if (const std::string* ext = h.find("Sec-WebSocket-Extensions")) {
      peer->set_extensions(*ext);
      std::string error;
      if (options.offer.empty())
        ADD_FAILURE() << "the server answered extensions nobody offered: " << *ext;
      else if (auto params = parse_pmd_response(*ext, error))
        peer->enable_deflate(*params);
      else
        ADD_FAILURE() << "invalid permessage-deflate response: " << error;
    }
    return peer;
  }

 private:
  static ServerOptions options(SessionOptions session,
                               std::vector<std::shared_ptr<const Extension>> extensions) {
    ServerOptions o = test::local_server_options();
    o.session = session;
    o.extensions = std::move(extensions);
    return o;
  }
  std::shared_ptr<Observed> find(const ConnectionPtr& c) {
    std::lock_guard lock(mutex_);
    auto it = by_remote_.find(c->remote_address());
    return it == by_remote_.end() ? nullptr : it->second;
  }

  EventLoop loop_;
  Server server_;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Observed>> by_remote_;
};

/// tether::Client instances echoing every message; the raw peer is a server on 127.0.0.1:0
/// that accepts one connection per open().
class ClientEndpoint final : public Endpoint {
 public:
  explicit ClientEndpoint(SessionOptions session = conformance_session()) : session_(session) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      ADD_FAILURE() << "raw server cannot listen: " << std::strerror(errno);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop_.run(); });
    // Client::connect() is documented for any thread, but EventLoop::is_loop_thread() answers
    // true on every thread until run() has begun, so a connect() in that window runs on the
    // calling thread and races with the loop thread entering run() (ThreadSanitizer reports
    // it). Waiting for the loop to run keeps the cases about the protocol only.
    std::promise<void> running;
    std::future<void> started = running.get_future();
    loop_.post([&running] { running.set_value(); });
    if (started.wait_for(event_bound) != std::future_status::ready)
      ADD_FAILURE() << "the client's event loop did not start";
  }
  ~ClientEndpoint() override {
    loop_.stop();
    thread_.join();
    clients_.clear();  // the loop is not running: any thread may touch it now
    ::close(listen_fd_);
  }

  Role role() const override { return Role::client; }

  std::unique_ptr<RawPeer> open(const OpenOptions& options = {}) override {
    auto observed = std::make_shared<Observed>();
    ClientOptions co;
    co.url = "ws://127.0.0.1:" + std::to_string(port_) + "/conformance";
    co.session = session_;
    if (options.client_deflate)
      co.extensions.push_back(std::make_shared<PerMessageDeflate>(*options.client_deflate));
    ClientHandlers h;
    h.on_open = [observed](const ConnectionPtr&) { observed->on_open(); };
    h.on_message = [observed](const ConnectionPtr& c, MessageType type, ByteView payload) {
      observed->on_send(c->send(type, payload));
    };
    h.on_close = [observed](const ConnectionPtr&, std::uint16_t code, std::string_view reason) {
      observed->on_close(code, reason);
    };
    h.on_error = [observed](int code, std::string_view message) {
      observed->on_error(code, message);
    };
    clients_.push_back(std::make_unique<Client>(loop_, co, h));
    std::string error;
    if (!clients_.back()->connect(&error)) {
      ADD_FAILURE() << "client connect failed: " << error;
      return nullptr;
    }
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(event_bound.count())) != 1) {
      ADD_FAILURE() << "the client did not connect within " << event_bound.count() << " ms";
      return nullptr;
    }
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      ADD_FAILURE() << "accept failed: " << std::strerror(errno);
      return nullptr;
    }
    std::string head, rest;
    if (!read_http_head(fd, head, rest, event_bound)) {
      ADD_FAILURE() << "no upgrade request from the client";
      ::close(fd);
      return nullptr;
    }
    HttpHead h2 = parse_http_head(head);
    const std::string* key = h2.find("Sec-WebSocket-Key");
    const std::string* version = h2.find("Sec-WebSocket-Version");
    if (h2.start_line != "GET /conformance HTTP/1.1" || !h2.find("Host") ||
        !h2.has_token("Upgrade", "websocket") || !h2.has_token("Connection", "upgrade") ||
        !version || *version != "13" || !key || key->size() != 24 || key->substr(22) != "==" ||
        !rest.empty()) {
      ADD_FAILURE() << "invalid upgrade request:\n" << head;
      ::close(fd);
      return nullptr;
    }
    const std::string* offer_field = h2.find("Sec-WebSocket-Extensions");
    const std::string offer = offer_field ? *offer_field : std::string();
    std::optional<std::string> answer;
    if (options.answer) answer = options.answer(offer);
    std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
        websocket_accept_key(*key) + "\r\n";
    if (answer) response += "Sec-WebSocket-Extensions: " + *answer + "\r\n";
    response += "\r\n";
    if (!write_all(fd, response)) {
      ADD_FAILURE() << "cannot answer the upgrade";
      ::close(fd);
      return nullptr;
    }
    auto peer = std::make_unique<RawPeer>(fd, Role::server, observed, std::string());
    peer->set_extensions(offer);
    // An answer that is not a valid permessage-deflate response leaves deflate off: the
    // tests that send one expect the client to refuse it.
    if (answer)
      if (auto params = parse_pmd_response(*answer, error)) peer->enable_deflate(*params);
    return peer;
  }

 private:
  EventLoop loop_;  // outlives the clients
  SessionOptions session_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
  std::thread thread_;
};

/// Defines a case body run once against tether::Server (ServerRole.Name) and once against
/// tether::Client (ClientRole.Name). Inside, `target` is the Endpoint.
#define AUTOBAHN_CASE(Name)                                  \
  void Name##_body(::tether::conformance::Endpoint& target); \
  TEST(ServerRole, Name) {                                   \
    ::tether::conformance::ServerEndpoint endpoint;          \
    Name##_body(endpoint);                                   \
  }                                                          \
  TEST(ClientRole, Name) {                                   \
    ::tether::conformance::ClientEndpoint endpoint;          \
    Name##_body(endpoint);                                   \
  }                                                          \
  void Name##_body(::tether::conformance::Endpoint& target)

}  // namespace tether::conformance
