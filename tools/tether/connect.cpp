// `tether connect`: stdin lines out as text messages, received messages to stdout.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "commands.hpp"
#include "common.hpp"
#include "tether/client.hpp"
#include "tether/utf8.hpp"

namespace tether::cli {

namespace {

bool is_token_char(unsigned char c) {
  return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// "Name: value" with a token name (RFC 9110 §5.1) and no control characters in the value,
// so that nothing typed on the command line can inject header lines.
std::optional<HttpHeader> parse_header(std::string_view text, std::string* error) {
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    *error = "invalid header '" + std::string(text) + "': use 'Name: value'";
    return std::nullopt;
  }
  std::string_view name = text.substr(0, colon);
  std::string_view value = text.substr(colon + 1);
  for (char c : name) {
    if (!is_token_char(static_cast<unsigned char>(c))) {
      *error = "invalid header name '" + std::string(name) + "'";
      return std::nullopt;
    }
  }
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) {
      *error = "control character in the value of header '" + std::string(name) + "'";
      return std::nullopt;
    }
  }
  return HttpHeader{std::string(name), std::string(value)};
}

// Reads stdin on its own thread, because a blocking read must never stall the event loop and
// epoll refuses regular files and /dev/null. Lines go out through the connection's thread-safe
// send; when the send buffer is full the thread waits for on_drain instead of queueing without
// bound, so piping a large file keeps memory flat.
class StdinPump {
 public:
  struct Events {
    std::function<void()> eof;                    // everything read was handed to send()
    std::function<void(std::string why)> failed;  // stdin cannot be sent as it is
  };

  explicit StdinPump(Events events) : events_(std::move(events)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  }
  ~StdinPump() {
    stop();
    if (thread_.joinable()) thread_.join();
    ::close(wake_fd_);
  }
  StdinPump(const StdinPump&) = delete;
  StdinPump& operator=(const StdinPump&) = delete;

  void start(ConnectionPtr connection, std::size_t send_limit) {
    if (thread_.joinable()) return;
    connection_ = std::move(connection);
    send_limit_ = send_limit;
    thread_ = std::thread([this] { run(); });
  }
  /// Wakes a send waiting for room in the send buffer. Any thread.
  void drained() {
    std::lock_guard lock(mutex_);
    drained_ = true;
    cv_.notify_all();
  }
  /// Makes the thread return soon, whether it waits on stdin or on the send buffer. Any thread.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      cv_.notify_all();
    }
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

 private:
  void run() {
    std::string pending;
    std::string chunk(64 * 1024, '\0');
    std::size_t scanned = 0;  // bytes of `pending` known to hold no newline
    for (;;) {
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return events_.failed(std::string("poll on stdin: ") + std::strerror(errno));
      }
      if (fds[1].revents != 0) return;
      ssize_t got = 0;
      if ((fds[0].revents & POLLNVAL) == 0) {  // a closed fd 0 reads as an empty stdin
        got = ::read(STDIN_FILENO, chunk.data(), chunk.size());
        if (got < 0) {
          if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
          return events_.failed(std::string("reading stdin: ") + std::strerror(errno));
        }
      }
      if (got == 0) {
        // A last line without a newline is still a line.
        if (!pending.empty() && !send_line(pending)) return;
        return events_.eof();
      }
      pending.append(chunk.data(), static_cast<std::size_t>(got));
      std::size_t begin = 0;
      for (std::size_t nl; (nl = pending.find('\n', std::max(begin, scanned))) != std::string::npos;
           begin = nl + 1) {
        if (!send_line(std::string_view(pending).substr(begin, nl - begin))) return;
      }
      pending.erase(0, begin);
      scanned = pending.size();
    }
  }

  // False when the pump must stop: the connection is closing, or the line cannot be sent.
  bool send_line(std::string_view line) {
    ++line_number_;
    if (!is_valid_utf8(as_bytes(line))) {
      events_.failed("stdin line " + std::to_string(line_number_) +
                     " is not valid UTF-8, which a text message must be");
      return false;
    }
    for (;;) {
      // Keeping little in flight lets the replies keep pace with what we send, instead of
      // piling up unread in the server until it gives up on us as a slow consumer.
      if (connection_->buffered_amount() >= high_water && !wait_for_room()) return false;
      switch (connection_->send(MessageType::text, as_bytes(line))) {
        case SendResult::ok:
          return true;
        case SendResult::closed:
          return false;
        case SendResult::backpressure:
        case SendResult::dropped:
          break;
        case SendResult::invalid:
          events_.failed("stdin line " + std::to_string(line_number_) + " was refused");
          return false;
      }
      if (line.size() > send_limit_) {
        events_.failed("stdin line " + std::to_string(line_number_) + " (" +
                       std::to_string(line.size()) + " bytes) is larger than the send buffer (" +
                       std::to_string(send_limit_) + " bytes)");
        return false;
      }
      if (!wait_for_room()) return false;
    }
  }

  // False when stopping.
  bool wait_for_room() {
    std::unique_lock lock(mutex_);
    // The timeout covers a drain that happened between the check and this wait.
    cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return stopping_ || drained_; });
    drained_ = false;
    return !stopping_;
  }

  static constexpr std::size_t high_water = 1u << 20;

  Events events_;
  ConnectionPtr connection_;
  std::size_t send_limit_ = 0;
  std::size_t line_number_ = 0;
  std::thread thread_;
  int wake_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mutex_
  bool drained_ = false;   // guarded by mutex_
};

// What happened, as the exit code needs it. Loop thread only.
struct Outcome {
  bool opened = false;
  bool we_closed = false;  // stdin EOF, a signal, or a local error started the close
  bool interrupted = false;
  bool aborted = false;  // a second signal: no waiting for the close handshake
  std::optional<std::uint16_t> close_code;
  std::string close_reason;
  std::optional<std::string> error;  // the client's first error
  int error_code = 0;
  bool error_after_open = false;
  std::optional<std::string> local_error;  // ours: stdin could not be sent
};

// At stdin EOF the replies still on their way must be printed before we close, because the
// session drops data that arrives after our CLOSE (as browsers do). A PING is the barrier: the
// server answers it after everything it had queued before reading it... almost: its PONG may
// overtake the unsent fragments of a long message, and our PING may overtake ours. So the PING
// leaves only once our own output is written, and a round counts only when no data frame at
// all arrived between PING and PONG (the server had nothing pending); otherwise, after any
// half-received message is complete, the barrier is repeated. Bounded by `bound` in all, for
// servers that never stop talking or never answer. Loop thread only.
class Drain {
 public:
  Drain(EventLoop& loop, Duration bound, std::function<void()> close)
      : loop_(loop), bound_(bound), close_(std::move(close)) {}
  ~Drain() { cancel(); }
  Drain(const Drain&) = delete;
  Drain& operator=(const Drain&) = delete;

  void set_connection(ConnectionPtr c) { connection_ = std::move(c); }
  /// stdin EOF: close once the server has nothing more in flight.
  void begin() {
    if (active_) return;
    active_ = true;
    deadline_ = loop_.call_after(bound_, [this] {
      deadline_ = 0;
      finish();
    });
    send_barrier();
  }
  /// Closing for another reason, or closed: no barrier any more.
  void cancel() {
    active_ = false;
    for (EventLoop::TimerId* t : {&deadline_, &recheck_}) {
      if (*t) loop_.cancel(*t);
      *t = 0;
    }
  }
  /// Every incoming frame, from the trace.
  void on_frame_in(const FrameHeader& h) {
    if (is_control(h.opcode)) return;
    message_in_progress_ = !h.fin;
    data_since_ping_ = true;
  }
  void on_message() {
    if (active_ && waiting_for_message_) send_barrier();
  }
  void on_pong(ByteView payload) {
    if (!active_ || as_text(payload) != barrier_payload()) return;
    if (message_in_progress_) {
      waiting_for_message_ = true;  // repeat once it is complete
    } else if (data_since_ping_) {
      send_barrier();
    } else {
      finish();
    }
  }

 private:
  std::string barrier_payload() const { return "tether-drain-" + std::to_string(round_); }

  void finish() {
    cancel();
    close_();
  }

  void send_barrier() {
    recheck_ = 0;
    waiting_for_message_ = false;
    if (!connection_ || !connection_->is_open()) return cancel();  // the server closes first
    if (connection_->buffered_amount() > 0) {
      // Nothing signals "all written" below the drain low-water mark, so look again shortly.
      recheck_ = loop_.call_after(Duration(1), [this] { send_barrier(); });
      return;
    }
    data_since_ping_ = false;
    ++round_;
    SendResult r = connection_->ping(as_bytes(barrier_payload()));
    if (r == SendResult::closed) {
      cancel();  // the server closes first
    } else if (r != SendResult::ok) {
      finish();
    }
  }

  EventLoop& loop_;
  Duration bound_;
  std::function<void()> close_;
  ConnectionPtr connection_;
  bool active_ = false;
  bool message_in_progress_ = false;  // an incoming message has frames still to come
  bool waiting_for_message_ = false;  // the PONG overtook the rest of that message
  bool data_since_ping_ = false;
  unsigned round_ = 0;
  EventLoop::TimerId deadline_ = 0;
  EventLoop::TimerId recheck_ = 0;
};

void write_stdout_line(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  // Whoever reads the other end of a pipe sees each message as it arrives.
  std::fflush(stdout);
}

int exit_code_for(const Outcome& o) {
  if (o.aborted) {
    print_error_line("error: interrupted");
    return exit_failure;
  }
  if (!o.opened) {
    if (o.error) {
      print_error_line("error: " + *o.error);
      return exit_connect_failed;
    }
    if (o.interrupted) {
      print_error_line("error: interrupted while connecting");
      return exit_failure;
    }
    print_error_line("error: the connection failed before it opened");
    return exit_connect_failed;
  }
  if (o.local_error) {
    print_error_line("error: " + *o.local_error);
    return exit_failure;
  }
  if (o.error && o.error_after_open) {
    std::string line = "error: " + *o.error;
    if (o.error_code >= 1000) line += " (close code " + std::to_string(o.error_code) + ")";
    print_error_line(line);
    return exit_failure;
  }
  const std::uint16_t code = o.close_code.value_or(close_code::abnormal);
  if (code == close_code::abnormal) {
    print_error_line("error: connection lost" +
                     (o.close_reason.empty() ? std::string() : ": " + o.close_reason) + " (1006)");
    return exit_failure;
  }
  if (o.we_closed) return exit_ok;
  // 1005 is a CLOSE frame without a code: the RFC's way of closing without saying why.
  if (code == close_code::normal || code == close_code::going_away || code == close_code::no_status)
    return exit_ok;
  print_error_line("closed by server: " + std::to_string(code) +
                   (o.close_reason.empty() ? std::string() : " " + o.close_reason));
  return exit_failure;
}

}  // namespace

CLI::App* add_connect_command(CLI::App& app, ConnectConfig& config) {
  CLI::App* cmd = app.add_subcommand(
      "connect", "Connect to a server: stdin lines out as text messages, messages in to stdout");
  cmd->footer(
      "Input and output:\n"
      "  Each stdin line (newline stripped; empty lines, and a last line without a\n"
      "  newline, too) is sent as one text message; it must be valid UTF-8. Reading starts\n"
      "  once the connection is open. Each text message received is printed on its own\n"
      "  line on stdout, a binary one as lowercase hex, flushed at once.\n"
      "  At stdin EOF everything read is sent, replies already on their way are printed\n"
      "  (a PING/PONG round trip marks their end), then the connection closes with 1000.\n"
      "  A server close with 1000, 1001 or no code exits 0; any other code prints\n"
      "  'closed by server: CODE REASON' on stderr and exits 1. A connection or handshake\n"
      "  failure prints one line, e.g. 'error: server answered 403 Forbidden instead of 101\n"
      "  Switching Protocols' or 'error: connect to 127.0.0.1:9 failed: Connection refused',\n"
      "  and exits 2. Other errors print one 'error: ...' line and exit 1.\n" +
      trace_help() +
      "\nSignals:\n"
      "  SIGINT/SIGTERM close with 1000 at once (exit 0 when the server answers);\n"
      "  a second signal exits at once with 1.\n\n" +
      values_help() + "\n" + exit_codes_footer());
  cmd->add_option("url", config.url, "ws://host[:port][/path][?query]")
      ->required()
      ->check(CLI::Validator(
          [](std::string& url) -> std::string {
            std::string error;
            return parse_websocket_url(url, &error) ? std::string() : error;
          },
          ""))
      ->type_name("URL");
  cmd->add_option("-H,--header", config.headers,
                  "Extra request header 'Name: value' (auth, cookies, origin); repeatable")
      ->type_name("'K: V'")
      ->allow_extra_args(false)
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            std::string error;
            return parse_header(text, &error) ? std::string() : error;
          },
          ""));
  cmd->add_option("--subprotocol", config.subprotocols,
                  "Offer this subprotocol (repeatable, in preference order); a server that "
                  "accepts none of them is a handshake failure")
      ->type_name("NAME")
      ->allow_extra_args(false);
  cmd->add_option("--ping-interval", config.ping_interval,
                  "Send a keepalive PING this often (500ms, 1s, 2m, 1h; 0 disables)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--pong-timeout", config.pong_timeout,
                  "Give up on a server that sends nothing for this long after a PING "
                  "(0 disables)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--connect-timeout", config.connect_timeout,
                  "Bound on DNS + TCP connect + opening handshake (0 waits forever)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--max-message", config.max_message,
                  "Largest message accepted from the server, in bytes (K/M/G suffixes are 1024 "
                  "multiples); bigger ones close the connection with 1009")
      ->type_name("BYTES")
      ->check(bytes_check())
      ->capture_default_str();
  cmd->add_flag("--trace", config.trace, "Print every frame in and out on stderr");
  cmd->add_flag("--verbose", config.verbose, "Print the library's log lines on stderr");
  return cmd;
}

int run_connect(const ConnectConfig& config) {
  const TimePoint start = Clock::now();
  EventLoop loop;

  ClientOptions options;
  options.url = config.url;
  for (const std::string& text : config.headers) {
    std::string ignored;
    options.headers.push_back(*parse_header(text, &ignored));
  }
  options.subprotocols = config.subprotocols;
  options.require_subprotocol = !config.subprotocols.empty();
  options.session.ping_interval = *parse_duration(config.ping_interval);
  options.session.pong_timeout = *parse_duration(config.pong_timeout);
  options.session.max_message_size = *parse_bytes(config.max_message);
  const Duration connect_timeout = *parse_duration(config.connect_timeout);
  if (connect_timeout.count() > 0) {
    options.connect_timeout = connect_timeout;
    options.session.handshake_timeout = connect_timeout;
  } else {
    options.connect_timeout = std::chrono::hours(24 * 365);  // the client has no "never"
    options.session.handshake_timeout = Duration(0);
  }
  const std::size_t send_limit = options.backpressure.limit;
  const Duration drain_bound = options.session.pong_timeout.count() > 0
                                   ? options.session.pong_timeout
                                   : Duration(std::chrono::seconds(10));

  Outcome outcome;
  std::unique_ptr<Client> client;
  Drain drain(loop, drain_bound, [&] {
    outcome.we_closed = true;
    client->close(close_code::normal);
  });
  auto close_from_our_side = [&] {
    drain.cancel();
    outcome.we_closed = true;
    client->close(close_code::normal);
  };
  StdinPump pump({
      .eof = [&] { loop.post([&] { drain.begin(); }); },
      .failed =
          [&](std::string why) {
            loop.post([&, why = std::move(why)] {
              if (!outcome.local_error) outcome.local_error = why;
              close_from_our_side();
            });
          },
  });

  ClientHandlers handlers;
  handlers.on_open = [&](const ConnectionPtr& c) {
    outcome.opened = true;
    drain.set_connection(c);
    // Only now: lines read earlier would have no connection to go to.
    if (!outcome.we_closed) pump.start(c, send_limit);
  };
  handlers.on_message = [&](const ConnectionPtr&, MessageType type, ByteView payload) {
    write_stdout_line(type == MessageType::text ? as_text(payload) : to_hex(payload));
    drain.on_message();
  };
  handlers.on_pong = [&](const ConnectionPtr&, ByteView payload) { drain.on_pong(payload); };
  handlers.on_close = [&](const ConnectionPtr&, std::uint16_t code, std::string_view reason) {
    outcome.close_code = code;
    outcome.close_reason = std::string(reason);
    drain.cancel();
    pump.stop();
  };
  handlers.on_error = [&](int code, std::string_view message) {
    if (outcome.error) return;  // the first one says what went wrong; the rest follow from it
    outcome.error = std::string(message);
    outcome.error_code = code;
    outcome.error_after_open = outcome.opened;
  };
  handlers.on_drain = [&](const ConnectionPtr&) { pump.drained(); };
  handlers.on_finished = [&] { loop.stop(); };

  client = std::make_unique<Client>(loop, options, handlers);
  // Always on: the drain needs to know whether a fragmented message is half-received.
  client->on_trace(
      [&, print = config.trace ? stderr_tracer(start) : TraceCallback()](const TraceEvent& event) {
        if (!event.outgoing) drain.on_frame_in(event.header);
        if (print) print(event);
      });
  if (config.verbose) client->on_log(stderr_logger());

  SignalWatch signals(loop, [&](int) {
    if (outcome.interrupted) {
      outcome.aborted = true;
      return loop.stop();
    }
    outcome.interrupted = true;
    pump.stop();
    close_from_our_side();
  });

  std::string error;
  if (!client->connect(&error)) {
    print_error_line("error: " + error);
    return exit_connect_failed;
  }
  loop.run();
  pump.stop();
  const int code = exit_code_for(outcome);
  // A connection still open (a second signal) reports its end from the client's destructor,
  // to handlers that use the pump and the drain: so the client goes first.
  client.reset();
  return code;
}

}  // namespace tether::cli
