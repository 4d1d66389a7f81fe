#include "runtime/connection_impl.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace tether::detail {

namespace {

std::atomic<std::uint64_t> next_connection_id{1};

// One receive buffer per loop thread: the session keeps nothing of it after receive()
// returns, so idle connections cost no read buffer at all. It is zero-filled when made, so
// all its pages are resident from the start: otherwise the first burst that fills more of it
// than usual faults pages in (on the hot path) and raises the RSS for good, a step that looks
// like a leak in a soak.
// Twice the common 64 KiB message: such a message and its header arrive in one read, and the
// session hands it to the application straight from this buffer. At 64 KiB every one took two
// reads and a copy into the session's message buffer (bench/RESULTS.md, "One read per 64 KiB
// message").
constexpr std::size_t read_buffer_size = 128 * 1024;
MutableByteView read_buffer() {
  thread_local std::unique_ptr<std::byte[]> buf(new std::byte[read_buffer_size]());
  return {buf.get(), read_buffer_size};
}

// Reads per readiness event, so one busy peer cannot starve the others on the loop.
constexpr int max_reads_per_event = 4;

}  // namespace

ConnectionImpl::ConnectionImpl(Setup setup, ServerHandshakeConfig handshake)
    : loop_(*setup.loop),
      owner_(setup.owner),
      fd_(std::move(setup.fd)),
      remote_(std::move(setup.remote_address)),
      session_(setup.session, std::move(handshake), *this),
      backpressure_(setup.backpressure),
      callbacks_(setup.callbacks),
      tls_(std::move(setup.tls)),
      id_(next_connection_id.fetch_add(1, std::memory_order_relaxed)) {}

ConnectionImpl::ConnectionImpl(Setup setup, ClientHandshakeConfig handshake)
    : loop_(*setup.loop),
      owner_(setup.owner),
      fd_(std::move(setup.fd)),
      remote_(std::move(setup.remote_address)),
      target_(handshake.target),
      session_(setup.session, std::move(handshake), *this),
      backpressure_(setup.backpressure),
      callbacks_(setup.callbacks),
      tls_(std::move(setup.tls)),
      id_(next_connection_id.fetch_add(1, std::memory_order_relaxed)) {}

ConnectionImpl::~ConnectionImpl() = default;

void ConnectionImpl::start() {
  loop_.add_fd(fd_.get(), interest(), this);
  after_activity();
}

// ---- sending --------------------------------------------------------------------------

SendResult ConnectionImpl::session_result(SendStatus s) const noexcept {
  switch (s) {
    case SendStatus::ok:
      return SendResult::ok;
    case SendStatus::not_open:
      return SendResult::closed;
    case SendStatus::invalid_payload:
      return SendResult::invalid;
  }
  return SendResult::invalid;
}

SendResult ConnectionImpl::admit(std::size_t size) {
  if (!is_open()) return SendResult::closed;
  if (buffered_amount() + size <= backpressure_.limit) return SendResult::ok;
  switch (backpressure_.policy) {
    case BackpressurePolicy::refuse:
      return SendResult::backpressure;
    case BackpressurePolicy::drop:
      return SendResult::dropped;
    case BackpressurePolicy::close:
      close(close_code::policy_violation, "send buffer limit exceeded");
      return SendResult::closed;
  }
  return SendResult::backpressure;
}

template <class Payload>
SendResult ConnectionImpl::send_any(MessageType type, Payload&& payload) {
  std::size_t size = payload.size();
  if (SendResult r = admit(size); r != SendResult::ok) {
    if (r == SendResult::backpressure || r == SendResult::dropped)
      if (owner_) owner_->log(LogLevel::warn, "send refused: buffered bytes at the limit");
    return r;
  }
  if (loop_.is_loop_thread()) {
    SendResult r = session_result(session_.send(type, std::forward<Payload>(payload)));
    if (r == SendResult::ok) {
      if (session_.buffered_amount() > backpressure_.low_water) above_low_water_ = true;
      after_activity();
    }
    return r;
  }
  Outgoing item{Outgoing::Kind::message, type, 0, {}, {}};
  using P = std::decay_t<Payload>;
  if constexpr (std::is_same_v<P, std::string>) {
    item.text = std::forward<Payload>(payload);
  } else if constexpr (std::is_same_v<P, std::vector<std::byte>>) {
    item.bytes = std::forward<Payload>(payload);
  } else {
    item.bytes.assign(payload.begin(), payload.end());
  }
  post_outgoing(std::move(item));
  return SendResult::ok;
}

SendResult ConnectionImpl::send(MessageType type, ByteView payload) {
  return send_any(type, payload);
}
SendResult ConnectionImpl::send(MessageType type, std::string&& payload) {
  return send_any(type, std::move(payload));
}
SendResult ConnectionImpl::send(MessageType type, std::vector<std::byte>&& payload) {
  return send_any(type, std::move(payload));
}

SendResult ConnectionImpl::ping(ByteView payload) {
  if (payload.size() > max_control_payload) return SendResult::invalid;
  if (!is_open()) return SendResult::closed;
  if (loop_.is_loop_thread()) {
    SendResult r = session_result(session_.ping(payload));
    after_activity();
    return r;
  }
  Outgoing item{Outgoing::Kind::ping, MessageType::binary, 0, {}, {}};
  item.bytes.assign(payload.begin(), payload.end());
  post_outgoing(std::move(item));
  return SendResult::ok;
}

SendResult ConnectionImpl::close(std::uint16_t code, std::string_view reason) {
  if ((code != close_code::no_status && !is_valid_wire_close_code(code)) ||
      reason.size() > max_control_payload - 2 || !is_valid_utf8(as_bytes(reason)))
    return SendResult::invalid;
  if (!is_open()) return SendResult::closed;
  if (loop_.is_loop_thread()) {
    SendResult r = session_result(session_.close(code, reason));
    open_.store(false, std::memory_order_release);
    after_activity();
    return r;
  }
  Outgoing item{Outgoing::Kind::close, MessageType::text, code, std::string(reason), {}};
  post_outgoing(std::move(item));
  return SendResult::ok;
}

void ConnectionImpl::post_outgoing(Outgoing&& item) {
  bool wake;
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_bytes_ += item.text.size() + item.bytes.size();
    wake = inbox_.empty();
    inbox_.push_back(std::move(item));
  }
  // One wake-up per batch: later items ride on the task already posted.
  if (wake) loop_.post([self = shared_from_this()] { self->drain_inbox(); });
}

void ConnectionImpl::drain_inbox() {
  std::vector<Outgoing> items;
  {
    std::lock_guard lock(inbox_mutex_);
    items.swap(inbox_);
    inbox_bytes_ = 0;
  }
  for (auto& item : items) {
    switch (item.kind) {
      case Outgoing::Kind::message:
        if (!item.text.empty())
          session_.send(item.type, std::move(item.text));
        else
          session_.send(item.type, std::move(item.bytes));
        break;
      case Outgoing::Kind::ping:
        session_.ping(item.bytes);
        break;
      case Outgoing::Kind::close:
        session_.close(item.code, item.text);
        open_.store(false, std::memory_order_release);
        break;
    }
  }
  if (session_.buffered_amount() > backpressure_.low_water) above_low_water_ = true;
  after_activity();
}

std::size_t ConnectionImpl::buffered_amount() const noexcept {
  std::size_t inbox;
  {
    std::lock_guard lock(inbox_mutex_);
    inbox = inbox_bytes_;
  }
  // On the loop thread the session's own figure is exact; elsewhere the published one is.
  if (loop_.is_loop_thread()) return session_.buffered_amount() + inbox;
  return buffered_.load(std::memory_order_acquire) + inbox;
}

void ConnectionImpl::publish_buffered() noexcept {
  buffered_.store(session_.buffered_amount(), std::memory_order_release);
}

// ---- I/O ------------------------------------------------------------------------------

void ConnectionImpl::on_io(std::uint32_t events) {
  auto keep = shared_from_this();  // callbacks below may drop the owner's reference
  if (events & (EventLoop::readable | EventLoop::hangup | EventLoop::error)) read_ready(events);
  if (fd_ && (events & EventLoop::writable)) flush();
}

void ConnectionImpl::read_ready(std::uint32_t events) {
  MutableByteView buf = read_buffer();
  // An edge is reported once: a FIN that came with the last bytes is read now, not left
  // behind by the short read that would otherwise end the event.
  const bool to_eof = (events & (EventLoop::hangup | EventLoop::error)) != 0;
  bool drained = false;
  for (int i = 0; i < max_reads_per_event && fd_; ++i) {
    ssize_t n = net::io_ops().read(fd_.get(), buf.data(), buf.size());
    if (n > 0) {
      loop_.note_read(static_cast<std::size_t>(n));
      if (awaiting_eof_) continue;  // closed already: drain until the server's FIN
      if (tls_) {
        if (!feed_tls(buf.first(static_cast<std::size_t>(n)))) return;
      } else {
        session_.receive(buf.first(static_cast<std::size_t>(n)));
      }
      if (static_cast<std::size_t>(n) < buf.size() && !to_eof) {
        drained = true;
        break;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      drained = true;
      break;
    }
    if (n < 0 && owner_)
      owner_->log(LogLevel::info,
                  "connection " + std::to_string(id_) + " read error: " + std::strerror(errno));
    // EOF or a hard error: the peer is gone. After an EOF, what this turn queued for it (the
    // reply to its last message) still goes out: a peer that shut down only its sending half
    // reads on.
    if (n == 0 && !want_write_ && output_pending()) flush();
    if (!fd_) return;
    session_.receive_eof();
    close_socket();
    return;
  }
  // Data left unread for fairness (max_reads_per_event) makes no new edge: ask again.
  if (fd_ && !drained && trigger_) loop_.modify_fd(fd_.get(), interest(), this);
  after_activity();
}

// Writes what it can of `bytes`. False when the socket failed (the connection is then gone);
// `written` short of the size means the socket buffer is full and EPOLLOUT is awaited.
bool ConnectionImpl::write_some(ByteView bytes, std::size_t& written) {
  written = 0;
  for (;;) {
    iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
    ssize_t n = net::io_ops().writev(fd_.get(), &iov, 1);
    if (n >= 0) {
      written = static_cast<std::size_t>(n);
      // A short write means the socket buffer is full: wait for EPOLLOUT instead of spinning.
      if (written < bytes.size()) set_writable_interest(true);
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      set_writable_interest(true);
      return true;
    }
    if (owner_)
      owner_->log(LogLevel::info,
                  "connection " + std::to_string(id_) + " write error: " + std::strerror(errno));
    session_.receive_eof();
    close_socket();
    return false;
  }
}

// TLS: plaintext goes into the channel (bounded by its backlog), ciphertext out to the socket,
// until either side stops. False when the connection is gone.
bool ConnectionImpl::flush_tls() {
  for (;;) {
    ByteView out = session_.pending_output();
    while (!out.empty()) {
      std::size_t k = tls_->write_plaintext(out);
      if (k == 0) break;
      session_.consume_output(k);
      out = session_.pending_output();
    }
    if (session_.finished() && out.empty() && !tls_->close_sent() && tls_->handshake_done())
      tls_->close();  // close_notify after the WebSocket CLOSE (RFC 8446 §6.1)
    ByteView cipher = tls_->pending_ciphertext();
    if (cipher.empty()) return true;
    std::size_t written = 0;
    if (!write_some(cipher, written)) return false;
    tls_->consume_ciphertext(written);
    if (written < cipher.size()) return true;
  }
}

bool ConnectionImpl::feed_tls(ByteView ciphertext) {
  tls_->feed_ciphertext(ciphertext);
  // The receive buffer held the ciphertext, now copied into the channel: reuse it for plaintext.
  MutableByteView plain = read_buffer();
  for (;;) {
    std::size_t m = tls_->read_plaintext(plain);
    if (m == 0) break;
    session_.receive(plain.first(m));
    if (!fd_) return false;
  }
  if (tls_->failed()) {
    std::string why = tls_->error();
    on_error(session_.state() == SessionState::connecting ? 0 : close_code::tls_handshake, why);
    flush_tls();  // the alert, if any
    if (session_.state() != SessionState::closed) {
      session_.receive_eof();
    }
    close_socket();
    return false;
  }
  if (tls_->peer_closed() && session_.state() != SessionState::closed) session_.receive_eof();
  return true;
}

bool ConnectionImpl::output_pending() noexcept {
  return !session_.pending_output().empty() || (tls_ && !tls_->pending_ciphertext().empty());
}

void ConnectionImpl::flush() {
  flush_scheduled_ = false;
  if (!fd_) return;
  if (tls_) {
    if (!flush_tls()) return;
  } else {
    while (fd_) {
      ByteView out = session_.pending_output();
      if (out.empty()) break;
      std::size_t written = 0;
      if (!write_some(out, written)) return;
      session_.consume_output(written);
      if (written < out.size()) break;
    }
  }
  if (!fd_) return;
  if (!output_pending()) set_writable_interest(false);
  publish_buffered();
  if (above_low_water_ && session_.buffered_amount() <= backpressure_.low_water) {
    above_low_water_ = false;
    if (callbacks_ && callbacks_->on_drain) callbacks_->on_drain(shared_from_this());
  }
  if (session_.finished() && !output_pending()) {
    if (session_.role() == Role::server || session_.close_code() == close_code::abnormal) {
      close_socket();  // RFC 6455 §7.1.1: the server closes TCP first
    } else if (!awaiting_eof_) {
      awaiting_eof_ = true;  // wait (bounded by the close timeout) for the server's FIN
      ::shutdown(fd_.get(), SHUT_WR);
      if (timer_) loop_.cancel(timer_);
      timer_ = loop_.call_after(session_.options().close_timeout, [weak = weak_from_this()] {
        if (auto self = weak.lock()) {
          self->timer_ = 0;
          self->close_socket();
        }
      });
    }
  }
}

std::uint32_t ConnectionImpl::interest() const noexcept {
  return EventLoop::readable | trigger_ | (want_write_ ? EventLoop::writable : 0u);
}

// Under edge triggering a write that fell short while EPOLLOUT was asked for already needs no
// new request: the kernel marked the socket out of room and wakes epoll when room returns.
void ConnectionImpl::set_writable_interest(bool on) {
  if (on == want_write_ || !fd_) return;
  want_write_ = on;
  loop_.modify_fd(fd_.get(), interest(), this);
}

void ConnectionImpl::after_activity() {
  if (!fd_) return;
  if (output_pending() && !flush_scheduled_ && !want_write_) {
    flush_scheduled_ = true;
    // Corking: everything queued during this loop turn leaves in one write at its end.
    loop_.at_end_of_turn(std::static_pointer_cast<TurnTask>(shared_from_this()));
  } else if (session_.finished() && !flush_scheduled_ && !awaiting_eof_) {
    flush();
    return;
  }
  publish_buffered();
  if (!awaiting_eof_) rearm_timer();
}

void ConnectionImpl::rearm_timer() {
  std::optional<TimePoint> due = session_.next_deadline();
  for (int i = 0; i < 3 && due && *due == TimePoint::min(); ++i) {
    session_.tick(loop_.now());
    due = session_.next_deadline();
  }
  if (due && *due == TimePoint::min()) due.reset();
  // The TLS buffers follow the session's release rule, on the same interval.
  const Duration interval = session_.options().buffer_release_interval;
  if (tls_ && !tls_release_due_ && interval.count() > 0 && tls_->holds_burst_buffers())
    tls_release_due_ = loop_.now() + interval;
  if (tls_release_due_ && (!due || *tls_release_due_ < *due)) due = tls_release_due_;
  if (!due) {
    if (timer_) loop_.cancel(timer_);
    timer_ = 0;
    return;
  }
  if (timer_ && timer_at_ == *due) return;
  if (timer_) loop_.cancel(timer_);
  timer_at_ = *due;
  timer_ = loop_.call_at(*due, std::weak_ptr<TimerTask>(weak_from_this()));
}

void ConnectionImpl::on_timer() {
  timer_ = 0;
  if (!fd_) return;
  if (tls_release_due_ && loop_.now() >= *tls_release_due_) {
    tls_release_due_.reset();  // re-armed by rearm_timer() while a buffer is still large
    tls_->release_burst_buffers();
  }
  session_.tick(loop_.now());
  if (session_.state() == SessionState::closed && !session_.finished()) {
    // Closed by a timeout with output still pending (a peer that stopped reading).
    after_activity();
    return;
  }
  if (session_.finished() && session_.close_code() == close_code::abnormal) {
    close_socket();
    return;
  }
  after_activity();
}

void ConnectionImpl::abort(std::uint16_t code, std::string_view reason) {
  if (!fd_) return;
  if (session_.state() != SessionState::closed) {
    // Reported as the session would report a lost connection, with the caller's reason.
    std::string why(reason);
    if (open_.exchange(false) && callbacks_ && callbacks_->on_close)
      callbacks_->on_close(shared_from_this(), code, why);
  }
  owner_ = nullptr;
  close_socket();
}

void ConnectionImpl::close_socket() {
  if (!fd_) return;
  open_.store(false, std::memory_order_release);
  finished_.store(true, std::memory_order_release);
  if (timer_) loop_.cancel(timer_);
  timer_ = 0;
  loop_.remove_fd(fd_.get());
  fd_.reset();
  publish_buffered();
  if (owner_) {
    loop_.at_end_of_turn([self = shared_from_this()] {
      if (self->owner_) self->owner_->on_connection_finished(*self);
    });
  }
}

// ---- session events -------------------------------------------------------------------

void ConnectionImpl::on_handshake(const HttpRequestHead& request,
                                  const std::vector<std::string>& offered,
                                  HandshakeDecision& decision) {
  target_ = request.target;
  if (!owner_) {
    decision.accept = false;
    decision.status = 503;
    return;
  }
  callbacks_ = owner_->on_handshake(*this, request, offered, decision);
}

void ConnectionImpl::on_open() {
  opened_at_ = loop_.now();
  // The WebSocket handshake travels inside TLS, so the TLS handshake is over by now.
  if (tls_) tls_resumed_.store(tls_->session_reused(), std::memory_order_release);
  open_.store(true, std::memory_order_release);  // the owner may send (offline queue)
  if (owner_ && !owner_->on_connection_open(*this)) {
    open_.store(false, std::memory_order_release);
    close_socket();
    return;
  }
  if (callbacks_ && callbacks_->on_open) callbacks_->on_open(shared_from_this());
}

void ConnectionImpl::on_message(MessageType type, ByteView payload) {
  if (!fd_) return;  // refused or aborted while the rest of a read is processed
  if (callbacks_ && callbacks_->on_message)
    callbacks_->on_message(shared_from_this(), type, payload);
}

void ConnectionImpl::on_ping(ByteView payload) {
  if (!fd_) return;  // refused or aborted while the rest of a read is processed
  if (callbacks_ && callbacks_->on_ping) callbacks_->on_ping(shared_from_this(), payload);
}

void ConnectionImpl::on_pong(ByteView payload) {
  if (!fd_) return;  // refused or aborted while the rest of a read is processed
  if (callbacks_ && callbacks_->on_pong) callbacks_->on_pong(shared_from_this(), payload);
}

void ConnectionImpl::on_close(std::uint16_t code, std::string_view reason) {
  open_.store(false, std::memory_order_release);
  if (callbacks_ && callbacks_->on_close) callbacks_->on_close(shared_from_this(), code, reason);
}

void ConnectionImpl::on_error(int code, std::string_view message) {
  if (owner_)
    owner_->log(code >= 1000 || code == 0 ? LogLevel::info : LogLevel::warn,
                "connection " + std::to_string(id_) + " (" + remote_ +
                    "): " + std::string(message) + (code ? " [" + std::to_string(code) + "]" : ""));
  if (callbacks_ && callbacks_->on_error) callbacks_->on_error(shared_from_this(), code, message);
}

void ConnectionImpl::on_frame(const FrameTrace& frame) {
  const TraceCallback* tracer = owner_ ? owner_->tracer() : nullptr;
  if (tracer && *tracer)
    (*tracer)(TraceEvent{id_, loop_.now(), frame.outgoing, frame.header, frame.payload_head});
}

}  // namespace tether::detail
