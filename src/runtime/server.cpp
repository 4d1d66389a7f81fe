#include "tether/server.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "runtime/connection_impl.hpp"
#include "runtime/socket.hpp"

namespace tether {

struct Server::Impl final : detail::ConnectionOwner, IoHandler, std::enable_shared_from_this<Impl> {
  EventLoop& loop;
  ServerOptions options;
  std::vector<std::pair<std::string, ServerBehavior>> routes;
  LogCallback log_cb;
  TraceCallback trace_cb;
  net::Fd listener;
  std::uint16_t bound_port = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<detail::ConnectionImpl>> connections;
  std::size_t open_count = 0;
  bool shutting_down = false;
  bool accept_paused = false;
  EventLoop::TimerId shutdown_timer = 0;
  std::function<void()> shutdown_done;
  std::shared_ptr<tls::TlsContext> tls_context;  // set when serving wss://

  Impl(EventLoop& l, ServerOptions o) : loop(l), options(std::move(o)) {}

  ~Impl() override {
    stop_listening();
    for (auto& [id, c] : connections) c->abort(close_code::going_away, "server destroyed");
    if (shutdown_timer) loop.cancel(shutdown_timer);
  }

  void stop_listening() {
    if (!listener) return;
    if (!accept_paused) loop.remove_fd(listener.get());
    listener.reset();
  }

  void say(LogLevel level, std::string_view message) {
    if (log_cb) log_cb(level, message);
  }

  // Accepting: level-triggered, a bounded batch per turn so accepts cannot starve I/O.
  void on_io(std::uint32_t) override {
    for (int i = 0; i < 64 && listener; ++i) {
      std::string peer;
      int err = 0;
      net::Fd fd = net::accept_nonblocking(listener.get(), peer, err);
      if (!fd) {
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return;
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
          pause_accepting(err);
          return;
        }
        say(LogLevel::error, std::string("accept failed: ") + std::strerror(err));
        return;
      }
      if (options.socket_send_buffer || options.socket_receive_buffer)
        net::set_buffer_sizes(fd.get(), options.socket_send_buffer, options.socket_receive_buffer);
      detail::ConnectionImpl::Setup setup{
          &loop,  this, std::move(fd), std::move(peer), options.session, options.backpressure,
          nullptr};
      ServerHandshakeConfig hs;
      hs.max_header_bytes = options.max_header_bytes;
      hs.extensions = options.extensions;
      if (tls_context) setup.tls = std::make_unique<tls::TlsChannel>(tls_context, Role::server);
      auto c = std::make_shared<detail::ConnectionImpl>(std::move(setup), std::move(hs));
      connections.emplace(c->id(), c);
      c->start();
    }
  }

  // Out of descriptors: stop polling the listener (it would report readiness forever) and
  // retry shortly, instead of a busy loop.
  void pause_accepting(int err) {
    if (accept_paused || !listener) return;
    say(LogLevel::warn, std::string("accept paused for 100 ms: ") + std::strerror(err));
    accept_paused = true;
    loop.remove_fd(listener.get());
    loop.call_after(std::chrono::milliseconds(100), [weak = weak_from_this()] {
      auto self = weak.lock();
      if (!self || !self->accept_paused) return;
      self->accept_paused = false;
      if (self->listener) self->loop.add_fd(self->listener.get(), EventLoop::readable, self.get());
    });
  }

  const ServerBehavior* find_route(std::string_view path) const {
    const ServerBehavior* fallback = nullptr;
    for (auto& [p, b] : routes) {
      if (p == path) return &b;
      if (p == "*") fallback = &b;
    }
    return fallback;
  }

  const detail::ConnectionCallbacks* on_handshake(detail::ConnectionImpl& c,
                                                  const HttpRequestHead& req,
                                                  const std::vector<std::string>& offered,
                                                  HandshakeDecision& decision) override {
    if (shutting_down) {
      decision = {false, {}, {}, 503, "server shutting down\n"};
      return nullptr;
    }
    if (open_count >= options.max_connections) {
      decision = {false, {}, {}, 503, "too many connections\n"};
      say(LogLevel::warn, "refused " + c.remote_address() + ": connection limit " +
                              std::to_string(options.max_connections) + " reached (HTTP 503)");
      return nullptr;
    }
    std::string_view path = req.target;
    path = path.substr(0, path.find('?'));
    const ServerBehavior* route = find_route(path);
    if (!route) {
      decision = {false, {}, {}, 404, "no WebSocket endpoint at this path\n"};
      say(LogLevel::info,
          "refused " + c.remote_address() + ": no route for " + std::string(path) + " (HTTP 404)");
      return nullptr;
    }
    for (const std::string& mine : options.subprotocols) {
      if (std::find(offered.begin(), offered.end(), mine) != offered.end()) {
        decision.subprotocol = mine;
        break;
      }
    }
    if (route->on_upgrade) route->on_upgrade(req, decision);
    if (!decision.accept) {
      say(LogLevel::info, "refused " + c.remote_address() + " by on_upgrade (HTTP " +
                              std::to_string(decision.status) + ")");
      return nullptr;
    }
    return route;
  }

  bool on_connection_open(detail::ConnectionImpl&) override {
    ++open_count;
    return true;
  }

  void on_connection_finished(detail::ConnectionImpl& c) override {
    if (c.opened_at() != TimePoint{}) --open_count;
    connections.erase(c.id());
    if (shutting_down && connections.empty()) finish_shutdown();
  }

  void log(LogLevel level, std::string_view message) override { say(level, message); }
  const TraceCallback* tracer() override { return trace_cb ? &trace_cb : nullptr; }

  void begin_shutdown(std::function<void()> done) {
    if (shutting_down) return;
    shutting_down = true;
    shutdown_done = std::move(done);
    stop_listening();
    if (connections.empty()) return finish_shutdown();
    // Connections still in their handshake are just dropped; open ones get 1001.
    std::vector<std::shared_ptr<detail::ConnectionImpl>> all;
    for (auto& [id, c] : connections) all.push_back(c);
    for (auto& c : all) {
      if (c->is_open())
        c->close(close_code::going_away, "server shutdown");
      else if (c->state() == SessionState::connecting)
        c->abort(close_code::going_away, "server shutdown");
    }
    shutdown_timer = loop.call_after(options.shutdown_timeout, [weak = weak_from_this()] {
      auto self = weak.lock();
      if (!self) return;
      self->shutdown_timer = 0;
      std::vector<std::shared_ptr<detail::ConnectionImpl>> rest;
      for (auto& [id, c] : self->connections) rest.push_back(c);
      for (auto& c : rest) c->abort(close_code::going_away, "shutdown timeout");
      self->connections.clear();
      self->finish_shutdown();
    });
  }

  void finish_shutdown() {
    if (shutdown_timer) loop.cancel(shutdown_timer);
    shutdown_timer = 0;
    if (auto done = std::move(shutdown_done)) {
      shutdown_done = nullptr;
      done();
    }
  }
};

Server::Server(EventLoop& loop, ServerOptions options)
    : impl_(std::make_shared<Impl>(loop, std::move(options))) {}

Server::~Server() = default;

Server& Server::route(std::string path, ServerBehavior behavior) {
  impl_->routes.emplace_back(std::move(path), std::move(behavior));
  return *this;
}

Server& Server::on_log(LogCallback log) {
  impl_->log_cb = std::move(log);
  return *this;
}

Server& Server::on_trace(TraceCallback trace) {
  impl_->trace_cb = std::move(trace);
  impl_->options.session.trace = static_cast<bool>(impl_->trace_cb);
  return *this;
}

bool Server::listen(std::string* error) {
  std::string err;
  if (impl_->options.tls && !impl_->tls_context) {
    impl_->tls_context = tls::TlsContext::server(*impl_->options.tls, err);
    if (!impl_->tls_context) {
      if (error) *error = err;
      impl_->say(LogLevel::error, err);
      return false;
    }
  }
  impl_->listener = net::listen_tcp(impl_->options.host, impl_->options.port, 1024, err);
  if (!impl_->listener) {
    if (error) *error = err;
    impl_->say(LogLevel::error, err);
    return false;
  }
  impl_->bound_port = net::local_port(impl_->listener.get());
  impl_->loop.add_fd(impl_->listener.get(), EventLoop::readable, impl_.get());
  return true;
}

std::uint16_t Server::port() const noexcept {
  return impl_->bound_port;
}

std::size_t Server::connection_count() const noexcept {
  return impl_->open_count;
}

std::vector<ConnectionPtr> Server::connections() const {
  std::vector<ConnectionPtr> out;
  out.reserve(impl_->open_count);
  for (auto& [id, c] : impl_->connections)
    if (c->is_open()) out.push_back(c);
  return out;
}

void Server::shutdown(std::function<void()> done) {
  auto impl = impl_;
  if (impl->loop.is_loop_thread()) return impl->begin_shutdown(std::move(done));
  impl->loop.post(
      [impl, done = std::move(done)]() mutable { impl->begin_shutdown(std::move(done)); });
}

}  // namespace tether
