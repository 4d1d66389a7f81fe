#include "tether/client.hpp"

#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>

#include "runtime/connection_impl.hpp"
#include "runtime/socket.hpp"

namespace tether {

struct Client::Impl final : detail::ConnectionOwner, std::enable_shared_from_this<Impl> {
  // Watches a socket whose non-blocking connect() is in progress.
  struct ConnectWatch final : IoHandler {
    Impl* owner = nullptr;
    void on_io(std::uint32_t) override { owner->connect_finished(); }
  };

  EventLoop& loop;
  ClientOptions options;
  ClientHandlers handlers;
  detail::ConnectionCallbacks callbacks;  // handlers in the connection's shape
  WebSocketUrl url;
  LogCallback log_cb;
  TraceCallback trace_cb;
  std::unique_ptr<net::Resolver> resolver;
  std::shared_ptr<tls::TlsContext> tls_context;  // wss://; kept across reconnects (resumption)
  std::vector<net::ResolvedAddress> addresses;
  std::size_t address_index = 0;
  std::string last_error;
  net::Fd connecting;
  ConnectWatch watch;
  EventLoop::TimerId attempt_timer = 0;
  EventLoop::TimerId retry_timer = 0;
  std::shared_ptr<detail::ConnectionImpl> active;  // loop thread
  unsigned failures = 0;
  bool connected_before = false;
  bool stopped = false;
  bool finished = false;
  std::atomic<unsigned> reconnect_count{0};
  std::mt19937_64 rng{std::random_device{}()};

  mutable std::mutex mutex;                         // guards `current` and the offline queue
  std::shared_ptr<detail::ConnectionImpl> current;  // open connection, for other threads
  std::vector<std::pair<MessageType, std::vector<std::byte>>> offline;
  std::size_t offline_bytes = 0;

  Impl(EventLoop& l, ClientOptions o, ClientHandlers h)
      : loop(l), options(std::move(o)), handlers(std::move(h)) {
    watch.owner = this;
    callbacks.on_open = handlers.on_open;
    callbacks.on_message = handlers.on_message;
    callbacks.on_close = handlers.on_close;
    callbacks.on_drain = handlers.on_drain;
    callbacks.on_ping = handlers.on_ping;
    callbacks.on_pong = handlers.on_pong;
    callbacks.on_error = [this](const ConnectionPtr&, int code, std::string_view message) {
      if (handlers.on_error) handlers.on_error(code, message);
    };
  }

  ~Impl() override {
    if (attempt_timer) loop.cancel(attempt_timer);
    if (retry_timer) loop.cancel(retry_timer);
    if (connecting) loop.remove_fd(connecting.get());
    if (active) active->abort(close_code::going_away, "client destroyed");
  }

  void say(LogLevel level, std::string_view message) {
    if (log_cb) log_cb(level, message);
  }

  void start_attempt() {
    retry_timer = 0;
    if (stopped) return;
    attempt_timer = loop.call_after(options.connect_timeout, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->attempt_timed_out();
    });
    // An IP literal needs no lookup: no resolver thread for the common loopback/IP case.
    if (auto numeric = net::resolve_numeric(url.host, url.port); !numeric.empty()) {
      addresses = std::move(numeric);
      address_index = 0;
      return try_next_address();
    }
    if (!resolver) resolver = std::make_unique<net::Resolver>(loop);
    resolver->resolve(url.host, url.port, [weak = weak_from_this()](auto addrs, std::string err) {
      auto self = weak.lock();
      if (!self || self->stopped || !self->attempt_timer) return;
      if (!err.empty())
        return self->attempt_failed(0, "DNS lookup of '" + self->url.host + "' failed: " + err);
      self->addresses = std::move(addrs);
      self->address_index = 0;
      self->try_next_address();
    });
  }

  void try_next_address() {
    while (address_index < addresses.size()) {
      const auto& a = addresses[address_index];
      std::string where = net::format_address(reinterpret_cast<const sockaddr*>(&a.addr), a.len);
      int err = 0;
      connecting = net::connect_nonblocking(a.addr, a.len, err);
      if (connecting) {
        if (options.socket_send_buffer || options.socket_receive_buffer)
          net::set_buffer_sizes(connecting.get(), options.socket_send_buffer,
                                options.socket_receive_buffer);
        last_error = where;
        loop.add_fd(connecting.get(), EventLoop::writable, &watch);
        return;
      }
      last_error = "connect to " + where + " failed: " + std::strerror(err);
      ++address_index;
    }
    attempt_failed(0, last_error.empty() ? "no address to connect to" : last_error);
  }

  void connect_finished() {
    loop.remove_fd(connecting.get());
    int err = net::socket_error(connecting.get());
    const auto& a = addresses[address_index];
    std::string where = net::format_address(reinterpret_cast<const sockaddr*>(&a.addr), a.len);
    if (err != 0) {
      connecting.reset();
      last_error = "connect to " + where + " failed: " + std::strerror(err);
      ++address_index;
      return try_next_address();
    }
    ClientHandshakeConfig hs;
    hs.host = url.host_header();
    hs.target = url.target;
    hs.subprotocols = options.subprotocols;
    hs.headers = options.headers;
    hs.extensions = options.extensions;
    detail::ConnectionImpl::Setup setup{
        &loop,     this, std::move(connecting), where, options.session, options.backpressure,
        &callbacks};
    setup.session.trace = static_cast<bool>(trace_cb);
    if (tls_context) {
      if (!options.tls.verify)
        say(LogLevel::warn, "TLS certificate verification is OFF for " + url.host_header() +
                                ": anyone on the path can read and alter this connection");
      setup.tls = std::make_unique<tls::TlsChannel>(tls_context, Role::client, url.host, url.port);
    }
    active = std::make_shared<detail::ConnectionImpl>(std::move(setup), std::move(hs));
    active->start();
  }

  void attempt_timed_out() {
    attempt_timer = 0;
    if (connecting) {
      loop.remove_fd(connecting.get());
      connecting.reset();
    }
    if (active && active->state() == SessionState::connecting) {
      auto c = std::move(active);
      c->abort(close_code::abnormal, "connect timeout");
    }
    attempt_failed(0, "timed out after " + std::to_string(options.connect_timeout.count()) +
                          " ms connecting to " + url.host_header());
  }

  void attempt_failed(int code, std::string message) {
    if (attempt_timer) loop.cancel(attempt_timer);
    attempt_timer = 0;
    say(LogLevel::warn, message);
    if (handlers.on_error) handlers.on_error(code, message);
    ++failures;
    retry_or_finish();
  }

  void retry_or_finish() {
    if (stopped || !options.reconnect.enabled ||
        (options.reconnect.max_attempts && failures >= options.reconnect.max_attempts)) {
      return finish();
    }
    // Full jitter (random between 0 and the exponential cap) spreads reconnecting clients.
    double cap = static_cast<double>(options.reconnect.initial_delay.count()) *
                 static_cast<double>(1ull << std::min(failures, 30u));
    cap = std::min(cap, static_cast<double>(options.reconnect.max_delay.count()));
    Duration delay(static_cast<Duration::rep>(
        std::uniform_real_distribution<double>(0, std::max(cap, 1.0))(rng)));
    if (handlers.on_reconnect) handlers.on_reconnect(std::max(failures, 1u), delay);
    say(LogLevel::info, "reconnecting in " + std::to_string(delay.count()) + " ms");
    retry_timer = loop.call_after(delay, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->start_attempt();
    });
  }

  void finish() {
    if (finished) return;
    finished = true;
    if (handlers.on_finished) handlers.on_finished();
  }

  // ConnectionOwner
  const detail::ConnectionCallbacks* on_handshake(detail::ConnectionImpl&, const HttpRequestHead&,
                                                  const std::vector<std::string>&,
                                                  HandshakeDecision&) override {
    return &callbacks;  // never called for a client session
  }

  bool on_connection_open(detail::ConnectionImpl& c) override {
    if (attempt_timer) loop.cancel(attempt_timer);
    attempt_timer = 0;
    if (options.require_subprotocol && !options.subprotocols.empty() && c.subprotocol().empty()) {
      std::string why = "server accepted none of the offered subprotocols";
      say(LogLevel::warn, why);
      if (handlers.on_error) handlers.on_error(0, why);
      stopped = true;  // retrying cannot help: the server does not speak them
      return false;
    }
    if (connected_before) reconnect_count.fetch_add(1, std::memory_order_relaxed);
    connected_before = true;
    std::vector<std::pair<MessageType, std::vector<std::byte>>> queued;
    {
      std::lock_guard lock(mutex);
      queued.swap(offline);
      offline_bytes = 0;
    }
    // Sent before `current` is published, so later sends from other threads queue behind.
    for (auto& [type, bytes] : queued) c.send(type, std::move(bytes));
    std::lock_guard lock(mutex);
    current = active;
    return true;
  }

  void on_connection_finished(detail::ConnectionImpl& c) override {
    bool was_open = c.opened_at() != TimePoint{};
    {
      std::lock_guard lock(mutex);
      if (current.get() == &c) current.reset();
    }
    if (active.get() == &c) active.reset();
    if (was_open && loop.now() - c.opened_at() >= options.reconnect.stable_after) failures = 0;
    if (!was_open) {
      if (attempt_timer) loop.cancel(attempt_timer);
      attempt_timer = 0;
      ++failures;
    }
    if (stopped) return finish();
    retry_or_finish();
  }

  void log(LogLevel level, std::string_view message) override { say(level, message); }
  const TraceCallback* tracer() override { return trace_cb ? &trace_cb : nullptr; }
};

Client::Client(EventLoop& loop, ClientOptions options, ClientHandlers handlers)
    : impl_(std::make_shared<Impl>(loop, std::move(options), std::move(handlers))) {}

Client::~Client() = default;

Client& Client::on_log(LogCallback log) {
  impl_->log_cb = std::move(log);
  return *this;
}

Client& Client::on_trace(TraceCallback trace) {
  impl_->trace_cb = std::move(trace);
  return *this;
}

bool Client::connect(std::string* error) {
  auto url = parse_websocket_url(impl_->options.url, error);
  if (!url) return false;
  if (url->secure && !impl_->tls_context) {
    std::string err;
    impl_->tls_context = tls::TlsContext::client(impl_->options.tls, err);
    if (!impl_->tls_context) {
      if (error) *error = err;
      return false;
    }
  }
  impl_->url = *url;
  auto impl = impl_;
  if (impl->loop.is_loop_thread())
    impl->start_attempt();
  else
    impl->loop.post([impl] { impl->start_attempt(); });
  return true;
}

SendResult Client::send(MessageType type, ByteView payload) {
  std::unique_lock lock(impl_->mutex);
  if (auto c = impl_->current; c && c->is_open()) {
    lock.unlock();
    return c->send(type, payload);
  }
  if (impl_->options.offline_queue_limit == 0) return SendResult::closed;
  if (impl_->offline_bytes + payload.size() > impl_->options.offline_queue_limit)
    return SendResult::backpressure;
  impl_->offline.emplace_back(type, std::vector<std::byte>(payload.begin(), payload.end()));
  impl_->offline_bytes += payload.size();
  return SendResult::ok;
}

void Client::close(std::uint16_t code, std::string_view reason) {
  auto impl = impl_;
  auto run = [impl, code, reason = std::string(reason)] {
    impl->stopped = true;
    if (impl->retry_timer) impl->loop.cancel(impl->retry_timer);
    impl->retry_timer = 0;
    if (impl->active && impl->active->is_open()) {
      impl->active->close(code, reason);
    } else if (impl->active) {
      auto c = std::move(impl->active);
      c->abort(code, reason);
      impl->finish();
    } else {
      if (impl->attempt_timer) impl->loop.cancel(impl->attempt_timer);
      impl->attempt_timer = 0;
      if (impl->connecting) {
        impl->loop.remove_fd(impl->connecting.get());
        impl->connecting.reset();
      }
      impl->finish();
    }
  };
  if (impl->loop.is_loop_thread())
    run();
  else
    impl->loop.post(std::move(run));
}

ConnectionPtr Client::connection() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->current;
}

unsigned Client::reconnects() const noexcept {
  return impl_->reconnect_count.load();
}

}  // namespace tether
