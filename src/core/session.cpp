#include "tether/session.hpp"

#include <openssl/rand.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace tether {

namespace {

// Masking keys must be unpredictable (RFC 6455 §10.3), so they come from OpenSSL's CSPRNG;
// drawing them in batches keeps RAND_bytes off the per-frame path.
std::array<std::byte, 4> random_mask() {
  thread_local std::array<std::byte, 1024> pool;
  thread_local std::size_t used = pool.size();
  if (used == pool.size()) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(pool.data()), static_cast<int>(pool.size())) !=
        1)
      throw std::runtime_error("tether: OpenSSL RAND_bytes failed");
    used = 0;
  }
  std::array<std::byte, 4> key;
  std::memcpy(key.data(), pool.data() + used, 4);
  used += 4;
  return key;
}

constexpr std::size_t trace_head = 32;
// An idle connection should not keep the memory of its largest message alive.
constexpr std::size_t keep_idle_capacity = 64 * 1024;
// Buffers up to this size stay with a connection: not worth a timer, a free and a malloc.
constexpr std::size_t burst_floor = 1024;

// Buffers above keep_idle_capacity that a session gives up once its message is delivered or
// written. Freed at once, a steady stream of large messages would pay a malloc and a free per
// message, and glibc would trim and regrow the heap top (a brk pair) as often. Kept here, up to
// 4 MiB of each kind per thread, they serve the next large message of any session on the
// thread: memory bounded per thread, none held by idle connections.
template <typename Buffer>
struct SparePool {
  static constexpr std::size_t max_bytes = std::size_t{4} << 20;
  static constexpr std::size_t max_count = 64;
  std::vector<Buffer> items;
  std::size_t bytes = 0;
  std::uint64_t uses = 0;  // buffers kept or lent so far: tells an idle pool from a busy one

  // Takes `b` (empty, above keep_idle_capacity) if it fits the budget.
  bool keep(Buffer& b) {
    const std::size_t cap = b.capacity();
    if (cap > max_bytes - bytes || items.size() >= max_count) return false;
    if (items.capacity() < max_count) items.reserve(max_count);
    items.push_back(std::move(b));
    bytes += cap;
    ++uses;
    return true;
  }
  std::size_t release_all() noexcept {
    const std::size_t n = bytes;
    items.clear();
    bytes = 0;
    return n;
  }
  // Into a buffer that holds no storage (nothing is lost by replacing it): the smallest spare
  // that holds `needed`, and none more than four times that. Without the cap a session with a
  // 16 KiB limit could hold a 4 MiB spare mid-message; a spare too small would only be
  // reallocated at once.
  void lend(Buffer& b, std::size_t needed) {
    if (b.capacity() != 0) return;
    std::size_t best = items.size();
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::size_t cap = items[i].capacity();
      if (cap >= needed && cap / 4 <= needed &&
          (best == items.size() || cap < items[best].capacity()))
        best = i;
    }
    if (best == items.size()) return;
    b = std::move(items[best]);
    if (best + 1 != items.size()) items[best] = std::move(items.back());
    items.pop_back();
    bytes -= b.capacity();
    ++uses;
  }
};

// How long the spares of a thread may sit unused before they are freed.
constexpr Duration spare_idle_interval = std::chrono::seconds(10);

struct SpareBuffers {
  SparePool<std::vector<std::byte>> messages;
  SparePool<ByteBuffer> outputs;
  std::uint64_t uses_at_check = 0;
  std::optional<TimePoint> checked;
  std::size_t released = 0;

  // Called by the release checks of the thread's sessions, with what they freed. The spares
  // serve a steady stream of large messages; once a whole interval passed without one, they
  // go. glibc keeps freed memory resident (only a free top of the heap above 128 KiB goes
  // back by itself), so a burst would leave the process's RSS at its peak for good: whatever
  // was freed is handed back to the kernel, at most once per interval per thread.
  void age(TimePoint now, std::size_t freed) {
    released += freed;
    if (!checked || now < *checked) checked = now;  // first call, or another clock (tests)
    if (now - *checked < spare_idle_interval) return;
    const std::uint64_t uses = messages.uses + outputs.uses;
    if (uses == uses_at_check) released += messages.release_all() + outputs.release_all();
    uses_at_check = uses;
    checked = now;
#if defined(__GLIBC__)
    if (released > 0) malloc_trim(0);
#endif
    released = 0;
  }
};

SpareBuffers& spares() {
  thread_local SpareBuffers s;
  return s;
}

void give_back(std::vector<std::byte>& v) {
  if (v.capacity() <= keep_idle_capacity) return;
  v.clear();
  spares().messages.keep(v);
  std::vector<std::byte>().swap(v);  // moved-from or refused: either way, no storage kept
}

void give_back(ByteBuffer& b) {
  if (!b.empty() || b.capacity() <= keep_idle_capacity) return;
  spares().outputs.keep(b);  // moved from when kept: no storage left
  b.shrink_if_idle(keep_idle_capacity);
}
}  // namespace

std::size_t thread_spare_bytes() noexcept {
  return spares().messages.bytes + spares().outputs.bytes;
}

struct Session::QueuedMessage {
  std::string text;
  std::vector<std::byte> bytes;
  std::size_t offset = 0;
  MessageType type = MessageType::binary;
  bool rsv1 = false;
  ByteView view() const { return text.empty() ? ByteView(bytes) : as_bytes(text); }
};

Session::Session(SessionOptions options, ClientHandshakeConfig handshake, SessionHandler& handler)
    : options_(options),
      handler_(handler),
      decoder_(Role::client, options.max_message_size),
      role_(Role::client) {
  client_hs_ = std::make_unique<ClientHandshake>(std::move(handshake));
  out_.append(as_bytes(client_hs_->request()));
}

Session::Session(SessionOptions options, ServerHandshakeConfig handshake, SessionHandler& handler)
    : options_(options),
      handler_(handler),
      decoder_(Role::server, options.max_message_size),
      role_(Role::server) {
  server_hs_ = std::make_unique<ServerHandshake>(std::move(handshake));
}

Session::Session(Role role, SessionOptions options, SessionHandler& handler,
                 std::unique_ptr<MessageTransform> transform)
    : options_(options),
      handler_(handler),
      decoder_(role, options.max_message_size),
      transform_(std::move(transform)),
      role_(role) {
  apply_transform_limits();
  state_ = SessionState::open;
  was_open_ = true;
}

Session::~Session() = default;

void Session::apply_transform_limits() {
  decoder_.set_rsv1_allowed(transform_ != nullptr);
  decoder_.set_max_message_size(transform_ ? transform_->max_encoded_size(options_.max_message_size)
                                           : options_.max_message_size);
}

// ---- input ----------------------------------------------------------------------------

void Session::receive(MutableByteView data) {
  if (state_ == SessionState::closed || data.empty()) return;
  received_since_ping_ = true;
  if (state_ == SessionState::connecting) {
    if (server_hs_)
      handle_server_handshake(data);
    else
      handle_client_handshake(data);
    if (state_ == SessionState::connecting || state_ == SessionState::closed) return;
  }
  receive_frames(data);
}

void Session::handle_server_handshake(MutableByteView& data) {
  std::size_t consumed = 0;
  auto status = server_hs_->receive(data, consumed);
  if (status == ServerHandshake::Status::incomplete) return;
  if (status == ServerHandshake::Status::failed) {
    out_.append(as_bytes(server_hs_->response()));
    handler_.on_error(server_hs_->http_status(), server_hs_->error());
    finish(close_code::abnormal, server_hs_->error());
    return;
  }
  HandshakeDecision decision;
  auto offered = server_hs_->offered_subprotocols();
  handler_.on_handshake(server_hs_->request(), offered, decision);
  if (!decision.accept) {
    out_.append(as_bytes(http_error_response(decision.status, decision.body, decision.headers)));
    std::string why =
        "upgrade refused by the application with HTTP " + std::to_string(decision.status);
    handler_.on_error(decision.status, why);
    finish(close_code::abnormal, why);
    return;
  }
  // A subprotocol the client did not offer would make a conforming client fail; choose none.
  if (!decision.subprotocol.empty() &&
      std::find(offered.begin(), offered.end(), decision.subprotocol) == offered.end())
    decision.subprotocol.clear();
  std::string response;
  try {
    response = server_hs_->accept(decision.subprotocol, decision.headers);
  } catch (const std::exception& e) {
    // The application's headers could not be sent (CR/LF injection, bad name): its bug, but
    // the peer gets a clean 500 and the process goes on.
    std::string why = std::string("cannot build the upgrade response: ") + e.what();
    out_.append(as_bytes(http_error_response(500, "internal error\n")));
    handler_.on_error(500, why);
    finish(close_code::abnormal, why);
    return;
  }
  out_.append(as_bytes(response));
  subprotocol_ = decision.subprotocol;
  transform_ = server_hs_->take_transform();
  apply_transform_limits();
  server_hs_.reset();
  data = data.subspan(consumed);
  open();
}

void Session::handle_client_handshake(MutableByteView& data) {
  std::size_t consumed = 0;
  auto status = client_hs_->receive(data, consumed);
  if (status == ClientHandshake::Status::incomplete) return;
  if (status == ClientHandshake::Status::failed) {
    // A refusal's body usually says why (auth, rate limit): its first line joins the error.
    std::string why = client_hs_->error();
    std::string_view body = client_hs_->body();
    body = body.substr(0, std::min(body.find_first_of("\r\n"), std::size_t{200}));
    if (!body.empty()) why.append(": ").append(body);
    handler_.on_error(client_hs_->http_status(), why);
    finish(close_code::abnormal, why, true);
    return;
  }
  subprotocol_ = client_hs_->subprotocol();
  transform_ = client_hs_->take_transform();
  apply_transform_limits();
  client_hs_.reset();
  data = data.subspan(consumed);
  open();
}

void Session::open() {
  state_ = SessionState::open;
  was_open_ = true;
  timers_dirty_ = true;
  handler_.on_open();
}

void Session::receive_frames(MutableByteView data) {
  for (;;) {
    auto r = decoder_.next(data);
    switch (r.status) {
      case FrameDecoder::Status::need_more:
        return;
      case FrameDecoder::Status::header: {
        const FrameHeader& h = decoder_.header();
        if (is_control(h.opcode)) {
          control_.clear();
        } else if (decoder_.frame_starts_message()) {
          message_type_ = static_cast<MessageType>(h.opcode);
          message_transformed_ = h.rsv1;
          message_wire_bytes_ = 0;
          message_first_piece_ = true;
          streamed_ = 0;
          message_.clear();
          utf8_.reset();
        }
        direct_ = {};
        if (options_.trace && h.length == 0) trace(false, h, {});
        // With a transform the decoder allows for encoding overhead; an untransformed message
        // is still held to the exact limit here.
        if (transform_ && !is_control(h.opcode) && !message_transformed_) {
          message_wire_bytes_ += h.length;
          if (message_wire_bytes_ > options_.max_message_size)
            return fail(close_code::message_too_big, "message exceeds the size limit");
        }
        break;
      }
      case FrameDecoder::Status::payload:
        on_frame_payload(r.payload);
        break;
      case FrameDecoder::Status::frame_end:
        on_frame_complete();
        break;
      case FrameDecoder::Status::error:
        fail(decoder_.error().close_code, decoder_.error().message);
        return;
    }
    if (state_ == SessionState::closed) return;
  }
}

void Session::on_frame_payload(MutableByteView piece) {
  const FrameHeader& h = decoder_.header();
  // The trace shows the head of the frame's first piece: enough to spot corruption.
  if (options_.trace && decoder_.remaining() + piece.size() == h.length)
    trace(false, h, ByteView(piece).first(std::min(piece.size(), trace_head)));
  if (is_control(h.opcode)) {
    control_.insert(control_.end(), piece.begin(), piece.end());
    return;
  }
  if (close_sent_) return;  // RFC 6455 §7.1.3: data after our CLOSE is discarded
  if (message_transformed_) {
    std::size_t before = message_.size();
    // Streamed pieces leave message_, so the limit counts what was already delivered.
    auto st = transform_->decode(piece, false, message_, options_.max_message_size - streamed_);
    if (st.close_code) return fail(st.close_code, st.message);
    ByteView produced = ByteView(message_).subspan(before);
    if (message_type_ == MessageType::text && !utf8_.feed(produced))
      return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
    if (options_.stream_fragments && !produced.empty()) {
      handler_.on_fragment(message_type_, produced, message_first_piece_, false);
      message_first_piece_ = false;
      streamed_ += produced.size();
      message_high_ = std::max(message_high_, message_.size());
      message_.clear();
    }
    return;
  }
  if (message_type_ == MessageType::text && !utf8_.feed(piece))
    return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
  if (options_.stream_fragments) {
    handler_.on_fragment(message_type_, piece, message_first_piece_, false);
    message_first_piece_ = false;
  } else if (h.fin && decoder_.frame_starts_message() && piece.size() == h.length) {
    direct_ = piece;  // whole message contiguous in the input: delivered without a copy
  } else {
    // The frame header tells how much of this frame is still to come.
    if (message_.capacity() - message_.size() < piece.size())
      spares().messages.lend(message_, message_.size() + piece.size() + decoder_.remaining());
    message_.insert(message_.end(), piece.begin(), piece.end());
  }
}

void Session::on_frame_complete() {
  const FrameHeader& h = decoder_.header();
  if (is_control(h.opcode)) return deliver_control();
  if (close_sent_ || !h.fin) return;
  if (message_transformed_) {
    std::size_t before = message_.size();
    auto st = transform_->decode({}, true, message_, options_.max_message_size - streamed_);
    if (st.close_code) return fail(st.close_code, st.message);
    if (message_type_ == MessageType::text && !utf8_.feed(ByteView(message_).subspan(before)))
      return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
  }
  if (message_type_ == MessageType::text && !utf8_.complete())
    return fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
  if (options_.stream_fragments) {
    handler_.on_fragment(message_type_, message_, message_first_piece_, true);
  } else if (!direct_.empty()) {
    handler_.on_message(message_type_, direct_);
  } else {
    handler_.on_message(message_type_, message_);
  }
  direct_ = {};
  message_high_ = std::max(message_high_, message_.size());
  message_.clear();
  give_back(message_);
  if (release_unarmed() && (message_.capacity() > burst_floor || thread_spare_bytes() > 0))
    timers_dirty_ = true;
}

void Session::deliver_control() {
  const FrameHeader& h = decoder_.header();
  ByteView payload(control_);
  switch (h.opcode) {
    case Opcode::ping:
      if (!close_sent_) write_control(Opcode::pong, payload);
      handler_.on_ping(payload);
      break;
    case Opcode::pong:
      ++pongs_received_;
      handler_.on_pong(payload);
      break;
    case Opcode::close: {
      ClosePayload cp;
      FrameError err;
      if (!parse_close_payload(payload, cp, err)) return fail(err.close_code, err.message);
      std::string reason(cp.reason);
      if (!close_sent_) {
        // Echo the peer's code (none for none), RFC 6455 §5.5.1; queued messages are dropped.
        queue_.clear();
        queue_head_ = 0;
        queued_bytes_ = 0;
        write_close(cp.code, {});
      }
      finish(cp.code, reason);
      break;
    }
    default:
      break;
  }
}

void Session::receive_eof() {
  if (state_ == SessionState::closed) return;
  if (state_ == SessionState::connecting && client_hs_) {
    client_hs_->receive_eof();
    handler_.on_error(client_hs_->http_status(), client_hs_->error());
    return finish(close_code::abnormal, client_hs_->error(), true);
  }
  if (state_ == SessionState::connecting) {
    handler_.on_error(0, "connection closed during the opening handshake");
    return finish(close_code::abnormal, "connection closed during the opening handshake", true);
  }
  finish(close_code::abnormal, "connection closed without a close frame", true);
}

void Session::fail(std::uint16_t code, std::string_view message) {
  std::string why(message);  // may point into state that the close below changes
  handler_.on_error(code, why);
  if (!close_sent_) {
    queue_.clear();
    queue_head_ = 0;
    queued_bytes_ = 0;
    write_close(code, why.substr(0, max_control_payload - 2));
  }
  finish(code, why);
}

void Session::finish(std::uint16_t code, std::string_view reason, bool abort) {
  if (state_ == SessionState::closed) return;
  state_ = SessionState::closed;
  close_code_ = code;
  close_reason_.assign(reason);
  if (abort) out_.clear();
  close_deferred_ = false;  // a CLOSE already went out (or never will): refill() must not add one
  queue_.clear();
  queue_head_ = 0;
  queued_bytes_ = 0;
  if (was_open_) handler_.on_close(close_code_, close_reason_);
}

// ---- time -----------------------------------------------------------------------------

void Session::tick(TimePoint now) {
  timers_dirty_ = false;
  switch (state_) {
    case SessionState::closed:
      return;
    case SessionState::connecting:
      if (options_.handshake_timeout.count() <= 0) return;
      if (!handshake_deadline_) {
        handshake_deadline_ = now + options_.handshake_timeout;
      } else if (now >= *handshake_deadline_) {
        handler_.on_error(0, "opening handshake timed out");
        finish(close_code::abnormal, "opening handshake timed out", true);
      }
      return;
    case SessionState::open:
    case SessionState::closing:
      break;
  }
  if (state_ == SessionState::open && options_.buffer_release_interval.count() > 0) {
    if (release_due_ && now >= *release_due_) release_burst_buffers(now);
    if (!release_due_ || now >= *release_due_)
      release_due_ = holds_burst_buffers()
                         ? std::optional<TimePoint>(now + options_.buffer_release_interval)
                         : std::nullopt;
  }
  if (state_ == SessionState::closing) {
    if (!close_deadline_) {
      close_deadline_ = now + options_.close_timeout;
    } else if (now >= *close_deadline_) {
      handler_.on_error(close_code::abnormal, "close handshake timed out");
      finish(close_code::abnormal, "close handshake timed out", true);
    }
    return;
  }
  if (options_.ping_interval.count() <= 0) return;
  if (pong_deadline_) {
    if (received_since_ping_) {
      pong_deadline_.reset();
    } else if (now >= *pong_deadline_) {
      handler_.on_error(close_code::abnormal, "keepalive timeout");
      return finish(close_code::abnormal, "keepalive timeout", true);
    }
  }
  if (!next_ping_) {
    next_ping_ = now + options_.ping_interval;
  } else if (now >= *next_ping_ && state_ == SessionState::open) {
    write_control(Opcode::ping, {});
    ++pings_sent_;
    received_since_ping_ = false;
    if (!pong_deadline_ && options_.pong_timeout.count() > 0)
      pong_deadline_ = now + options_.pong_timeout;
    next_ping_ = now + options_.ping_interval;
  }
}

// Whether a release check is worth arming: a buffer above the floor, or spares on the thread
// that only a check can free.
bool Session::holds_burst_buffers() const noexcept {
  return out_.capacity() > burst_floor || message_.capacity() > burst_floor ||
         transformed_.capacity() > burst_floor ||
         queue_.capacity() * sizeof(QueuedMessage) > burst_floor || thread_spare_bytes() > 0;
}

// A session keeps its buffers between messages, so that a steady stream allocates nothing.
// After a burst (a stall caught up, a broadcast storm, a slow reader) they would keep the
// burst's size for the life of the connection: up to keep_idle_capacity each, times thousands
// of connections. At each buffer_release_interval, a buffer more than twice as large as
// anything the interval needed is freed; the next message allocates what it needs.
void Session::release_burst_buffers(TimePoint now) {
  auto oversized = [](std::size_t capacity, std::size_t used) {
    return capacity > burst_floor && capacity / 2 > used;
  };
  std::size_t freed = 0;
  // out_ is rarely empty here on a busy connection (a frame queued earlier in this loop turn),
  // so it shrinks to what it holds rather than waiting to be seen empty.
  if (oversized(out_.capacity(), out_high_)) {
    freed += out_.capacity();
    out_.shrink_to_contents();
    freed -= out_.capacity();
  }
  if (message_.empty() && oversized(message_.capacity(), message_high_)) {
    freed += message_.capacity();
    std::vector<std::byte>().swap(message_);
  }
  // Holds the last encoded message only until its frame is written, which is done by now.
  if (oversized(transformed_.capacity(), transformed_high_)) {
    freed += transformed_.capacity();
    std::vector<std::byte>().swap(transformed_);
  }
  if (queue_.empty() &&
      oversized(queue_.capacity() * sizeof(QueuedMessage), queue_high_ * sizeof(QueuedMessage))) {
    freed += queue_.capacity() * sizeof(QueuedMessage);
    std::vector<QueuedMessage>().swap(queue_);
  }
  out_high_ = out_.size();
  message_high_ = message_.size();
  transformed_high_ = 0;
  queue_high_ = queue_.size();
  spares().age(now, freed);
}

std::optional<TimePoint> Session::next_deadline() const noexcept {
  // A state change not yet seen by tick() has deadlines to arm: ask for a tick right away.
  if (timers_dirty_) return TimePoint::min();
  switch (state_) {
    case SessionState::closed:
      return std::nullopt;
    case SessionState::connecting:
      if (options_.handshake_timeout.count() <= 0) return std::nullopt;
      return handshake_deadline_ ? *handshake_deadline_ : TimePoint::min();
    case SessionState::open:
    case SessionState::closing:
      break;
  }
  if (state_ == SessionState::closing) return close_deadline_ ? *close_deadline_ : TimePoint::min();
  std::optional<TimePoint> t = release_due_;
  if (options_.ping_interval.count() > 0) {
    if (!next_ping_) return TimePoint::min();
    TimePoint keepalive = *next_ping_;
    if (pong_deadline_ && *pong_deadline_ < keepalive) keepalive = *pong_deadline_;
    if (!t || keepalive < *t) t = keepalive;
  }
  return t;
}

// ---- output ---------------------------------------------------------------------------

void Session::consume_output(std::size_t n) {
  out_.consume(std::min(n, out_.size()));
  if (queue_head_ < queue_.size() || close_deferred_) refill();
  if (out_.empty()) give_back(out_);
}

void Session::trace(bool outgoing, const FrameHeader& h, ByteView payload_head) {
  handler_.on_frame(FrameTrace{outgoing, h, payload_head});
}

void Session::write_frame(Opcode op, bool fin, bool rsv1, ByteView payload) {
  FrameHeader h;
  h.opcode = op;
  h.fin = fin;
  h.rsv1 = rsv1;
  h.length = payload.size();
  h.masked = role_ == Role::client;
  if (h.masked) h.mask = random_mask();
  if (out_.capacity() - out_.size() < max_frame_header_size + payload.size())
    spares().outputs.lend(out_, out_.size() + max_frame_header_size + payload.size());
  std::byte* dst = out_.prepare(max_frame_header_size + payload.size());
  std::size_t n = encode_frame_header(h, dst);
  if (h.masked) {
    apply_mask(payload.data(), dst + n, payload.size(), h.mask, 0);
  } else if (!payload.empty()) {
    std::memcpy(dst + n, payload.data(), payload.size());
  }
  out_.commit(n + payload.size());
  out_high_ = std::max(out_high_, out_.size());
  if (release_unarmed() && out_.capacity() > burst_floor) timers_dirty_ = true;
  if (options_.trace) trace(true, h, payload.first(std::min(payload.size(), trace_head)));
}

void Session::write_control(Opcode op, ByteView payload) {
  // out_ holds whole frames only, so appending lands exactly on a frame boundary.
  write_frame(op, true, false, payload);
}

void Session::write_close(std::uint16_t code, std::string_view reason) {
  std::array<std::byte, max_control_payload> buf;
  std::size_t n = 0;
  if (code != close_code::no_status) {
    buf[0] = static_cast<std::byte>(code >> 8);
    buf[1] = static_cast<std::byte>(code & 0xFF);
    reason = reason.substr(0, max_control_payload - 2);
    if (!reason.empty()) std::memcpy(buf.data() + 2, reason.data(), reason.size());
    n = 2 + reason.size();
  }
  write_control(Opcode::close, ByteView(buf.data(), n));
  close_sent_ = true;
  timers_dirty_ = true;
}

void Session::refill() {
  const std::size_t frag = options_.fragment_size;
  while (queue_head_ < queue_.size() && (frag == 0 || out_.size() < frag)) {
    QueuedMessage& m = queue_[queue_head_];
    ByteView all = m.view();
    std::size_t chunk = frag == 0 ? all.size() : std::min(frag, all.size() - m.offset);
    bool first = m.offset == 0;
    bool fin = m.offset + chunk == all.size();
    write_frame(first ? static_cast<Opcode>(m.type) : Opcode::continuation, fin, first && m.rsv1,
                all.subspan(m.offset, chunk));
    m.offset += chunk;
    queued_bytes_ -= chunk;
    if (fin) {
      m = QueuedMessage{};
      if (++queue_head_ == queue_.size()) {
        queue_.clear();
        queue_head_ = 0;
      }
    }
  }
  if (close_deferred_ && queue_head_ == queue_.size()) {
    close_deferred_ = false;
    write_close(deferred_code_, deferred_reason_);
  }
}

SendStatus Session::enqueue(MessageType type, ByteView payload, std::string* owned_text,
                            std::vector<std::byte>* owned_bytes) {
  if (state_ != SessionState::open) return SendStatus::not_open;
  bool rsv1 = false;
  if (transform_ && transform_->encode(type, payload, transformed_)) {
    rsv1 = true;
    payload = transformed_;
    transformed_high_ = std::max(transformed_high_, transformed_.size());
    if (release_unarmed() && transformed_.capacity() > burst_floor) timers_dirty_ = true;
  }
  const std::size_t frag = options_.fragment_size;
  bool queue_busy = queue_head_ < queue_.size();
  if (!queue_busy && (frag == 0 || payload.size() <= frag)) {
    write_frame(static_cast<Opcode>(type), true, rsv1, payload);
    return SendStatus::ok;
  }
  // Large (or behind a large one): kept whole and encoded a fragment at a time as the
  // transport drains, so control frames can pass between fragments.
  QueuedMessage m;
  m.type = type;
  m.rsv1 = rsv1;
  if (rsv1)
    m.bytes.swap(transformed_);
  else if (owned_text && !owned_text->empty())
    m.text = std::move(*owned_text);
  else if (owned_bytes)
    m.bytes = std::move(*owned_bytes);
  else
    m.bytes.assign(payload.begin(), payload.end());
  queued_bytes_ += payload.size();
  queue_.push_back(std::move(m));
  queue_high_ = std::max(queue_high_, queue_.size());
  if (release_unarmed() && queue_.capacity() * sizeof(QueuedMessage) > burst_floor)
    timers_dirty_ = true;
  refill();
  return SendStatus::ok;
}

SendStatus Session::send(MessageType type, ByteView payload) {
  return enqueue(type, payload, nullptr, nullptr);
}
SendStatus Session::send(MessageType type, std::string&& payload) {
  return enqueue(type, as_bytes(payload), &payload, nullptr);
}
SendStatus Session::send(MessageType type, std::vector<std::byte>&& payload) {
  return enqueue(type, payload, nullptr, &payload);
}

SendStatus Session::ping(ByteView payload) {
  if (state_ != SessionState::open) return SendStatus::not_open;
  if (payload.size() > max_control_payload) return SendStatus::invalid_payload;
  write_control(Opcode::ping, payload);
  return SendStatus::ok;
}

SendStatus Session::pong(ByteView payload) {
  if (state_ != SessionState::open) return SendStatus::not_open;
  if (payload.size() > max_control_payload) return SendStatus::invalid_payload;
  write_control(Opcode::pong, payload);
  return SendStatus::ok;
}

SendStatus Session::close(std::uint16_t code, std::string_view reason) {
  if (code != close_code::no_status &&
      (!is_valid_wire_close_code(code) || reason.size() > max_control_payload - 2 ||
       !is_valid_utf8(as_bytes(reason))))
    return SendStatus::invalid_payload;
  if (code == close_code::no_status && !reason.empty()) return SendStatus::invalid_payload;
  if (state_ == SessionState::connecting) {
    finish(code, reason, true);
    return SendStatus::ok;
  }
  if (state_ != SessionState::open) return SendStatus::not_open;
  state_ = SessionState::closing;
  timers_dirty_ = true;
  if (queue_head_ < queue_.size()) {
    // Messages accepted before close() still go out whole, then the CLOSE.
    close_deferred_ = true;
    deferred_code_ = code;
    deferred_reason_.assign(reason);
  } else {
    write_close(code, reason);
  }
  return SendStatus::ok;
}

std::size_t Session::memory_used() const noexcept {
  std::size_t n = out_.capacity() + message_.capacity() + control_.capacity() +
                  transformed_.capacity() + queue_.capacity() * sizeof(QueuedMessage);
  for (std::size_t i = queue_head_; i < queue_.size(); ++i)
    n += queue_[i].text.capacity() + queue_[i].bytes.capacity();
  if (transform_) n += transform_->memory_used();
  return n;
}

}  // namespace tether
