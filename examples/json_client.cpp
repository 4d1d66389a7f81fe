// A status reporter: sends a small JSON document at a fixed interval and prints whatever the
// server answers. It rides out server restarts: the client reconnects with backoff, detects
// a dead server with keepalive PINGs, and keeps the reports made while disconnected (up to a
// bound) to send them, in order, once connected again.
//
// Usage: json_client [ws://127.0.0.1:9000/status] [--count N] [--interval-ms M]
//   --count N        stop after N reports, closing with 1000 (default: run until Ctrl-C)
//   --interval-ms M  time between reports (default 1000)
// Try it against echo_server or broadcast_server, and restart the server meanwhile.
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tether/client.hpp"
#include "tether/event_loop.hpp"

namespace {

using namespace std::chrono_literals;

struct Args {
  std::string url = "ws://127.0.0.1:9000/status";
  long count = 0;  // 0: forever
  long interval_ms = 1000;
};

bool parse_args(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if ((a == "--count" || a == "--interval-ms") && i + 1 < argc) {
      char* end = nullptr;
      long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < (a == "--count" ? 0 : 1)) return false;
      (a == "--count" ? args.count : args.interval_ms) = v;
    } else if (a.rfind("ws://", 0) == 0 || a.rfind("wss://", 0) == 0) {
      args.url = a;
    } else {
      return false;
    }
  }
  return true;
}

std::string utc_now_iso8601() {
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms.count()));
  return buf;
}

double load_average() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

// Ctrl-C as a readable fd on the loop: the close handshake starts from the loop thread, with
// no second thread to coordinate.
class SignalWatch final : public tether::IoHandler {
 public:
  SignalWatch(tether::EventLoop& loop, std::function<void()> on_signal)
      : loop_(loop), on_signal_(std::move(on_signal)) {
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
    if (read(fd_, &info, sizeof info) == sizeof info) on_signal_();
  }

 private:
  tether::EventLoop& loop_;
  std::function<void()> on_signal_;
  int fd_ = -1;
};

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: json_client [ws://host:port/path] [--count N] [--interval-ms M]\n");
    return 2;
  }

  tether::ClientOptions options;
  options.url = args.url;
  options.reconnect.enabled = true;  // 0.5 s doubling to 30 s, with jitter, no attempt limit
  options.session.ping_interval = 30s;
  options.session.pong_timeout = 10s;
  // About a minute of reports at the default rate; beyond it a report is refused rather than
  // letting a long outage grow memory without bound.
  options.offline_queue_limit = 64 * 1024;

  tether::EventLoop loop;
  long sent = 0;
  bool done = false;
  int exit_code = 0;
  tether::Client* client_ptr = nullptr;
  auto finish = [&](const char* why) {
    if (done) return;
    done = true;
    std::printf("-- closing: %s\n", why);
    std::fflush(stdout);
    client_ptr->close(1000, "done");
  };

  tether::ClientHandlers handlers;
  handlers.on_open = [&](const tether::ConnectionPtr& c) {
    std::printf("-- connected to %s\n", c->remote_address().c_str());
    std::fflush(stdout);
  };
  handlers.on_message = [&](const tether::ConnectionPtr&, tether::MessageType type,
                            tether::ByteView payload) {
    std::string_view text = tether::as_text(payload);
    if (type == tether::MessageType::text) {
      std::printf("<- %.*s\n", static_cast<int>(text.size()), text.data());
    } else {
      std::printf("<- (%zu binary bytes)\n", payload.size());
    }
    std::fflush(stdout);
    // Stop once the last report came back, so the echo is not cut off by our CLOSE.
    if (args.count > 0 && sent == args.count && type == tether::MessageType::text) {
      auto reply = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (reply.is_object() && reply.value("seq", -1L) == args.count) finish("last report echoed");
    }
  };
  handlers.on_close = [](const tether::ConnectionPtr&, std::uint16_t code,
                         std::string_view reason) {
    std::printf("-- closed %u %.*s\n", code, static_cast<int>(reason.size()), reason.data());
    std::fflush(stdout);
  };
  handlers.on_error = [](int code, std::string_view message) {
    std::printf("-- error %d: %.*s\n", code, static_cast<int>(message.size()), message.data());
    std::fflush(stdout);
  };
  handlers.on_reconnect = [](unsigned attempt, tether::Duration delay) {
    std::printf("-- reconnecting in %lld ms (attempt %u)\n", static_cast<long long>(delay.count()),
                attempt);
    std::fflush(stdout);
  };
  handlers.on_finished = [&] { loop.stop(); };

  tether::Client client(loop, options, handlers);
  client_ptr = &client;
  SignalWatch signals(loop, [&] {
    exit_code = 130;
    finish("signal");
  });
  std::string error;
  if (!client.connect(&error)) {
    std::fprintf(stderr, "json_client: %s\n", error.c_str());
    return 2;
  }

  const tether::Duration interval(args.interval_ms);
  std::function<void()> report = [&] {
    if (done) return;
    nlohmann::ordered_json status = {
        {"seq", sent + 1}, {"time", utc_now_iso8601()}, {"status", "ok"}, {"load", load_average()}};
    std::string text = status.dump();
    tether::SendResult r = client.send_text(text);
    std::string note;
    if (r != tether::SendResult::ok)
      note = "  [" + std::string(tether::send_result_name(r)) + "]";
    else if (!client.connection())
      note = "  (offline: queued for the next connection)";
    std::printf("-> %s%s\n", text.c_str(), note.c_str());
    std::fflush(stdout);
    ++sent;
    if (args.count > 0 && sent >= args.count) {
      // The last echo normally ends the run; this bounds the wait when it never comes.
      loop.call_after(std::max(interval * 2, tether::Duration(2000)),
                      [&] { finish("no reply to the last report"); });
      return;
    }
    loop.call_after(interval, report);
  };
  loop.call_after(interval, report);
  loop.run();
  std::printf("-- %ld reports sent, %u reconnections\n", sent, client.reconnects());
  return exit_code;
}
