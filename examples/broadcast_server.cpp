// A broadcast hub: every message received goes to every open connection, the sender
// included. A client that reads slower than the others send must not make the server hold
// an ever-growing backlog for it, so each connection's outgoing bytes are capped and what
// does not fit is dropped for that client alone; the others are unaffected.
//
// Usage: broadcast_server [port]        (default 9000; Ctrl-C closes everyone with 1001)
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tether/event_loop.hpp"
#include "tether/server.hpp"

namespace {

// Signals arrive as a readable fd on the loop itself, so shutting down needs no second thread.
class SignalWatch final : public tether::IoHandler {
 public:
  SignalWatch(tether::EventLoop& loop, tether::Server& server) : loop_(loop), server_(server) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    fd_ = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ >= 0) loop_.add_fd(fd_, tether::EventLoop::readable, this);
  }
  ~SignalWatch() override {
    if (fd_ < 0) return;
    loop_.remove_fd(fd_);
    close(fd_);
  }
  void on_io(std::uint32_t) override {
    signalfd_siginfo info{};
    if (read(fd_, &info, sizeof info) != sizeof info) return;
    // A second Ctrl-C while shutting down stops at once instead of waiting out the timeout.
    if (shutting_down_) return loop_.stop();
    shutting_down_ = true;
    std::printf("broadcast_server: signal %u, closing %zu connections\n", info.ssi_signo,
                server_.connection_count());
    std::fflush(stdout);
    server_.shutdown([this] { loop_.stop(); });
  }

 private:
  tether::EventLoop& loop_;
  tether::Server& server_;
  int fd_ = -1;
  bool shutting_down_ = false;
};

struct PerClient {
  std::uint64_t dropped = 0;
};

}  // namespace

int main(int argc, char** argv) {
  tether::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 9000);
  // 1 MiB of backlog is seconds of chat for a healthy reader; beyond it the reader is stuck.
  options.backpressure.limit = 1u << 20;
  options.backpressure.policy = tether::BackpressurePolicy::drop;

  tether::EventLoop loop;
  tether::Server server(loop, options);
  SignalWatch signals(loop, server);

  tether::ServerBehavior hub;
  hub.on_open = [&](const tether::ConnectionPtr& c) {
    c->set_user_data(std::make_shared<PerClient>());
    std::printf("join  #%llu %s %s (%zu open)\n", static_cast<unsigned long long>(c->id()),
                c->remote_address().c_str(), c->target().c_str(), server.connection_count());
    std::fflush(stdout);
  };
  hub.on_message = [&](const tether::ConnectionPtr&, tether::MessageType type,
                       tether::ByteView payload) {
    for (const tether::ConnectionPtr& c : server.connections()) {
      if (c->send(type, payload) == tether::SendResult::dropped)
        if (auto state = c->user_data<PerClient>()) ++state->dropped;
    }
  };
  hub.on_close = [&](const tether::ConnectionPtr& c, std::uint16_t code, std::string_view reason) {
    auto state = c->user_data<PerClient>();
    std::printf("leave #%llu %s code %u \"%.*s\" (%llu messages dropped)\n",
                static_cast<unsigned long long>(c->id()), c->remote_address().c_str(), code,
                static_cast<int>(reason.size()), reason.data(),
                static_cast<unsigned long long>(state ? state->dropped : 0));
    std::fflush(stdout);
  };
  server.route("*", hub);

  std::string error;
  if (!server.listen(&error)) {
    std::fprintf(stderr, "broadcast_server: %s\n", error.c_str());
    return 1;
  }
  std::printf("broadcast_server: listening on ws://127.0.0.1:%u/\n", server.port());
  std::fflush(stdout);
  loop.run();
  return 0;
}
