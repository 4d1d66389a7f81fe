// The runtime's connection: a Session driven by a non-blocking socket on one EventLoop.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/socket.hpp"
#include "runtime/tls_channel.hpp"
#include "tether/connection.hpp"
#include "tether/event_loop.hpp"
#include "tether/observe.hpp"
#include "tether/server.hpp"
#include "tether/session.hpp"

namespace tether::detail {

class ConnectionImpl;

/// Callbacks of a connection; the client adapts its handlers to the same shape.
using ConnectionCallbacks = ServerBehavior;

/// What a connection needs from the server or client that owns it. Called on the loop thread.
/// The owner outlives every call: it detaches (abort()) its connections before it goes.
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  /// Server: chooses the route and answers the upgrade; returns the route's callbacks, or
  /// nullptr when `decision` refuses.
  virtual const ConnectionCallbacks* on_handshake(ConnectionImpl& c, const HttpRequestHead& req,
                                                  const std::vector<std::string>& offered,
                                                  HandshakeDecision& decision) = 0;
  /// The handshake succeeded. Returning false refuses the connection (it is aborted and the
  /// application never sees it open); the owner reports why.
  virtual bool on_connection_open(ConnectionImpl& c) = 0;
  /// The socket is closed; the owner drops its reference. Called from an end-of-turn task,
  /// never from inside the connection's own call stack.
  virtual void on_connection_finished(ConnectionImpl& c) = 0;
  virtual void log(LogLevel level, std::string_view message) = 0;
  /// The trace callback, or nullptr when tracing is off.
  virtual const TraceCallback* tracer() = 0;
};

/// One connection. Created by the server (accepted socket) or the client (connected socket),
/// always held by shared_ptr; its loop-thread state is touched only on the loop thread.
class ConnectionImpl final : public Connection,
                             public SessionHandler,
                             public IoHandler,
                             public TurnTask,
                             public TimerTask,
                             public std::enable_shared_from_this<ConnectionImpl> {
 public:
  struct Setup {
    EventLoop* loop;
    ConnectionOwner* owner;
    net::Fd fd;
    std::string remote_address;
    SessionOptions session;
    BackpressureOptions backpressure;
    const ConnectionCallbacks* callbacks = nullptr;  // client: known up front
    std::unique_ptr<tls::TlsChannel> tls = nullptr;  // wss: bytes pass through it
  };
  ConnectionImpl(Setup setup, ServerHandshakeConfig handshake);
  ConnectionImpl(Setup setup, ClientHandshakeConfig handshake);
  ~ConnectionImpl() override;

  /// Registers the socket and starts the session (the client's request goes out). Loop thread.
  void start();
  /// Closes the socket now, without a closing handshake (shutdown timeout, owner going away).
  /// on_close fires with `code` if the connection was open. Loop thread.
  void abort(std::uint16_t code, std::string_view reason);
  /// Session state, loop thread.
  SessionState state() const noexcept { return session_.state(); }
  const Session& session() const noexcept { return session_; }
  void set_target(std::string target) { target_ = std::move(target); }
  TimePoint opened_at() const noexcept { return opened_at_; }

  // Connection
  SendResult send(MessageType type, ByteView payload) override;
  SendResult send(MessageType type, std::string&& payload) override;
  SendResult send(MessageType type, std::vector<std::byte>&& payload) override;
  SendResult ping(ByteView payload) override;
  SendResult close(std::uint16_t code, std::string_view reason) override;
  std::size_t buffered_amount() const noexcept override;
  bool is_open() const noexcept override { return open_.load(std::memory_order_acquire); }
  std::uint64_t id() const noexcept override { return id_; }
  const std::string& remote_address() const noexcept override { return remote_; }
  const std::string& target() const noexcept override { return target_; }
  const std::string& subprotocol() const noexcept override { return session_.subprotocol(); }
  bool tls_session_resumed() const noexcept override {
    return tls_resumed_.load(std::memory_order_acquire);
  }
  /// Loop thread only (tests): the TLS channel holds a buffer grown by a burst.
  bool tls_holds_burst_buffers() const noexcept { return tls_ && tls_->holds_burst_buffers(); }

 private:
  // Work handed over from other threads.
  struct Outgoing {
    enum class Kind : std::uint8_t { message, ping, close } kind;
    MessageType type = MessageType::text;
    std::uint16_t code = 0;
    std::string text;
    std::vector<std::byte> bytes;
  };

  // IoHandler
  void on_io(std::uint32_t events) override;
  // TurnTask: the corked flush
  void on_end_of_turn() override { flush(); }
  void on_timer() override;
  // SessionHandler
  void on_handshake(const HttpRequestHead& request, const std::vector<std::string>& offered,
                    HandshakeDecision& decision) override;
  void on_open() override;
  void on_message(MessageType type, ByteView payload) override;
  void on_ping(ByteView payload) override;
  void on_pong(ByteView payload) override;
  void on_close(std::uint16_t code, std::string_view reason) override;
  void on_error(int code, std::string_view message) override;
  void on_frame(const FrameTrace& frame) override;

  template <class Payload>
  SendResult send_any(MessageType type, Payload&& payload);
  SendResult admit(std::size_t size);
  SendResult session_result(SendStatus s) const noexcept;
  void post_outgoing(Outgoing&& item);
  void drain_inbox();
  void read_ready(std::uint32_t events);
  std::uint32_t interest() const noexcept;
  void flush();
  bool flush_tls();
  bool feed_tls(ByteView ciphertext);
  bool output_pending() noexcept;
  bool write_some(ByteView bytes, std::size_t& written);
  void after_activity();
  void rearm_timer();
  void set_writable_interest(bool on);
  void close_socket();
  void publish_buffered() noexcept;

  EventLoop& loop_;
  ConnectionOwner* owner_;
  net::Fd fd_;
  std::string remote_;
  std::string target_;
  Session session_;
  BackpressureOptions backpressure_;
  const ConnectionCallbacks* callbacks_;
  std::unique_ptr<tls::TlsChannel> tls_;
  const std::uint64_t id_;
  TimePoint opened_at_{};
  EventLoop::TimerId timer_ = 0;
  TimePoint timer_at_{};
  std::optional<TimePoint> tls_release_due_;  // next look at TLS buffers grown by a burst
  std::atomic<bool> open_{false};
  std::atomic<bool> finished_{false};
  // Copied from the channel, which only the loop thread may touch, before on_open.
  std::atomic<bool> tls_resumed_{false};
  std::atomic<std::size_t> buffered_{0};  // session bytes, published after each loop action
  bool flush_scheduled_ = false;
  bool want_write_ = false;
  // EventLoop::edge when I/O results can be trusted (net::IoOps::truthful): the loop then
  // serves connections in the order their data came, where level triggering put the ones
  // served last turn first and doubled the latency of the others (bench/RESULTS.md).
  const std::uint32_t trigger_ = net::io_ops().truthful ? EventLoop::edge : 0u;
  bool above_low_water_ = false;
  bool awaiting_eof_ = false;  // client: closed, waiting for the server to close TCP first

  mutable std::mutex inbox_mutex_;
  std::vector<Outgoing> inbox_;  // guarded by inbox_mutex_
  std::size_t inbox_bytes_ = 0;  // guarded by inbox_mutex_
};

}  // namespace tether::detail
