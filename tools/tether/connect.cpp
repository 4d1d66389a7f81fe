// `tether connect`: stdin lines (or --every messages) out as text messages, received
// messages to stdout.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "tether/client.hpp"
#include "tether/permessage_deflate.hpp"
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
// bound, so piping a large file keeps memory flat. With reconnection a line refused by a dead
// connection waits for the next one instead of ending the input.
class StdinPump {
 public:
  struct Events {
    std::function<void()> eof;                    // everything read was handed to send()
    std::function<void(std::string why)> failed;  // stdin cannot be sent as it is
  };

  StdinPump(Events events, bool wait_for_reconnect)
      : events_(std::move(events)), wait_for_reconnect_(wait_for_reconnect) {
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

  /// The first call starts reading; later ones (reconnections) switch to the new connection.
  void start(ConnectionPtr connection, std::size_t send_limit) {
    {
      std::lock_guard lock(mutex_);
      connection_ = std::move(connection);
      cv_.notify_all();
    }
    if (thread_.joinable()) return;
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
      ConnectionPtr connection = current();
      // Keeping little in flight lets the replies keep pace with what we send, instead of
      // piling up unread in the server until it gives up on us as a slow consumer.
      if (connection->buffered_amount() >= high_water && !wait_for_room()) return false;
      switch (connection->send(MessageType::text, as_bytes(line))) {
        case SendResult::ok:
          return true;
        case SendResult::closed:
          if (!wait_for_reconnect_ || !wait_for_connection(connection)) return false;
          continue;
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

  ConnectionPtr current() {
    std::lock_guard lock(mutex_);
    return connection_;
  }

  // False when stopping.
  bool wait_for_connection(const ConnectionPtr& dead) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return stopping_ || connection_ != dead; });
    return !stopping_;
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
  const bool wait_for_reconnect_;
  ConnectionPtr connection_;  // guarded by mutex_
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

// The --message template, split once into literal text and placeholders.
class MessageTemplate {
 public:
  /// Throws nothing; unknown "{...}" stays literal text, so JSON templates need no escaping.
  explicit MessageTemplate(std::string_view text) {
    static constexpr std::pair<std::string_view, Field> names[] = {
        {"{seq}", Field::seq}, {"{time}", Field::time}, {"{unix_ms}", Field::unix_ms}};
    std::string literal;
    while (!text.empty()) {
      bool matched = false;
      for (auto [name, field] : names) {
        if (text.substr(0, name.size()) != name) continue;
        parts_.push_back({Field::literal, std::move(literal)});
        literal.clear();
        parts_.push_back({field, {}});
        text.remove_prefix(name.size());
        matched = true;
        break;
      }
      if (matched) continue;
      literal += text.front();
      text.remove_prefix(1);
    }
    parts_.push_back({Field::literal, std::move(literal)});
  }

  std::string expand(std::uint64_t seq) const {
    const auto now = std::chrono::system_clock::now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
    std::string out;
    for (const Part& part : parts_) {
      switch (part.field) {
        case Field::literal:
          out += part.text;
          break;
        case Field::seq:
          out += std::to_string(seq);
          break;
        case Field::unix_ms:
          out += std::to_string(ms.count());
          break;
        case Field::time:
          out += iso8601(ms);
          break;
      }
    }
    return out;
  }

 private:
  enum class Field { literal, seq, time, unix_ms };
  struct Part {
    Field field;
    std::string text;
  };

  // "2026-11-25T18:15:20.123Z": UTC with milliseconds, which sorts as text.
  static std::string iso8601(std::chrono::milliseconds since_epoch) {
    const std::time_t seconds = static_cast<std::time_t>(since_epoch.count() / 1000);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char buf[40];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(since_epoch.count() % 1000));
    return buf;
  }

  std::vector<Part> parts_;
};

// --every: one message per period while a connection is open (paused while reconnecting, so
// a message is never queued for a connection that does not exist), then `done` after --count.
// Loop thread only.
class Ticker {
 public:
  Ticker(EventLoop& loop, Duration period, MessageTemplate message, std::uint64_t count,
         std::function<void()> done)
      : loop_(loop),
        period_(period),
        message_(std::move(message)),
        count_(count),
        done_(std::move(done)) {}
  ~Ticker() { stop(); }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  /// The first message goes at once, so a one-shot `--count 1` does not wait a period.
  void start(ConnectionPtr connection) {
    stop();
    connection_ = std::move(connection);
    tick();
  }
  void stop() {
    if (timer_) loop_.cancel(timer_);
    timer_ = 0;
  }

 private:
  void tick() {
    timer_ = 0;
    if (finished_ || !connection_) return;
    if (connection_->send_text(message_.expand(sent_ + 1)) == SendResult::ok) ++sent_;
    if (count_ != 0 && sent_ >= count_) {
      finished_ = true;
      return done_();
    }
    timer_ = loop_.call_after(period_, [this] { tick(); });
  }

  EventLoop& loop_;
  Duration period_;
  MessageTemplate message_;
  std::uint64_t count_;
  std::function<void()> done_;
  ConnectionPtr connection_;
  std::uint64_t sent_ = 0;
  bool finished_ = false;
  EventLoop::TimerId timer_ = 0;
};

// --json: a text message that is JSON is indented for reading; anything else is left alone.
std::string pretty_json(std::string_view text) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::string(text);
  return value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A certificate that fails verification, or a server without our subprotocol, fails the same
// way on every retry.
bool is_final_error(std::string_view message) {
  return message.find("certificate verify failed") != std::string_view::npos ||
         message.find("none of the offered subprotocols") != std::string_view::npos;
}

void write_stdout_line(std::string_view text) {
  // An empty message's view may hold a null pointer, which fwrite must not be given.
  if (!text.empty()) std::fwrite(text.data(), 1, text.size(), stdout);
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
  // With --reconnect, stopped by us between two connections.
  if (o.we_closed && !o.close_code) return exit_ok;
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
      "  and exits 2. Other errors print one 'error: ...' line and exit 1.\n"
      "\nPeriodic messages (instead of stdin):\n"
      "  --every DUR --message TEMPLATE sends TEMPLATE once the connection is open and\n"
      "  then every DUR, with {seq} replaced by 1, 2, 3..., {time} by the UTC time in\n"
      "  ISO 8601 with milliseconds (2026-11-25T18:15:20.123Z) and {unix_ms} by Unix time\n"
      "  in milliseconds. With --count N, after the Nth message the replies on their way\n"
      "  are printed, the connection closes with 1000 and the exit code is 0.\n"
      "\nReconnecting:\n"
      "  --reconnect retries a failed or lost connection with exponential backoff and\n"
      "  jitter (0.5 s doubling up to 30 s), printing 'error: ...' and 'reconnecting in N\n"
      "  ms' lines on stderr; stdin lines and --every messages wait for the new\n"
      "  connection. A TLS certificate verification failure is not retried (exit 2).\n"
      "\nCompression and JSON:\n"
      "  --compress offers permessage-deflate (RFC 7692); the server may decline it.\n"
      "  --json indents received text messages that are JSON when stdout is a terminal;\n"
      "  other messages, and all of them when stdout is not a terminal, print unchanged.\n" +
      tls_client_help() + trace_help() +
      "\nSignals:\n"
      "  SIGINT/SIGTERM close with 1000 at once (exit 0 when the server answers);\n"
      "  a second signal exits at once with 1.\n\n" +
      values_help() + "\n" + exit_codes_footer());
  cmd->add_option("url", config.url, "ws://host[:port][/path][?query] or wss://...")
      ->required()
      ->check(websocket_url_check())
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
  add_tls_client_flags(cmd, config.tls);
  cmd->add_flag("--compress", config.compress, "Offer permessage-deflate compression");
  cmd->add_flag("--reconnect", config.reconnect,
                "Reconnect with backoff after a failed or lost connection");
  cmd->add_flag("--json", config.json,
                "Indent received JSON text messages when stdout is a terminal");
  CLI::Option* every =
      cmd->add_option("--every", config.every,
                      "Send --message this often instead of reading stdin (e.g. 1s)")
          ->type_name("DUR")
          ->check(CLI::Validator(
              [](std::string& value) -> std::string {
                auto d = parse_duration(value);
                if (d && d->count() > 0) return {};
                return "invalid period '" + value + "': use a positive duration, e.g. 500ms";
              },
              ""));
  CLI::Option* message =
      cmd->add_option("--message", config.message,
                      "Text sent by --every; {seq}, {time} and {unix_ms} are replaced")
          ->type_name("TEMPLATE")
          ->check(CLI::Validator(
              [](std::string& value) -> std::string {
                if (is_valid_utf8(as_bytes(value))) return {};
                return "--message must be valid UTF-8, as a text message is";
              },
              ""));
  CLI::Option* count =
      cmd->add_option("--count", config.count,
                      "With --every: close (1000) and exit after this many messages")
          ->type_name("N")
          ->check(CLI::PositiveNumber);
  every->needs(message);
  message->needs(every);
  count->needs(every);
  add_trace_flags(cmd, config.trace, config.trace_file, config.verbose);
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
  options.reconnect.enabled = config.reconnect;
  if (config.compress) options.extensions.push_back(std::make_shared<PerMessageDeflate>());
  apply_tls_client_flags(config.tls, options.tls);
  const std::size_t send_limit = options.backpressure.limit;
  const Duration drain_bound = options.session.pong_timeout.count() > 0
                                   ? options.session.pong_timeout
                                   : Duration(std::chrono::seconds(10));
  const bool pretty = config.json && stdout_is_tty();

  TraceOutput trace;
  std::string error;
  if (!trace.open(config.trace, config.trace_file, &error)) {
    print_error_line("error: " + error);
    return exit_failure;
  }

  Outcome outcome;
  bool input_done = false;  // stdin EOF or --count reached: close once the replies are in
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
  auto input_finished = [&] {
    input_done = true;
    drain.begin();
  };
  StdinPump pump({
                     .eof = [&] { loop.post(input_finished); },
                     .failed =
                         [&](std::string why) {
                           loop.post([&, why = std::move(why)] {
                             if (!outcome.local_error) outcome.local_error = why;
                             close_from_our_side();
                           });
                         },
                 },
                 config.reconnect);
  std::optional<Ticker> ticker;
  if (!config.every.empty()) {
    ticker.emplace(loop, *parse_duration(config.every), MessageTemplate(config.message),
                   config.count, input_finished);
  }

  ClientHandlers handlers;
  handlers.on_open = [&](const ConnectionPtr& c) {
    outcome.opened = true;
    outcome.close_code.reset();
    drain.set_connection(c);
    if (outcome.we_closed) return;
    // Only now: lines read earlier would have no connection to go to.
    if (ticker) {
      ticker->start(c);
    } else {
      pump.start(c, send_limit);
    }
    // A reconnection during the final drain: the barrier starts again on the new connection.
    if (input_done) drain.begin();
  };
  handlers.on_message = [&](const ConnectionPtr&, MessageType type, ByteView payload) {
    if (type != MessageType::text) {
      write_stdout_line(to_hex(payload));
    } else if (pretty) {
      write_stdout_line(pretty_json(as_text(payload)));
    } else {
      write_stdout_line(as_text(payload));
    }
    drain.on_message();
  };
  handlers.on_pong = [&](const ConnectionPtr&, ByteView payload) { drain.on_pong(payload); };
  handlers.on_close = [&](const ConnectionPtr&, std::uint16_t code, std::string_view reason) {
    drain.cancel();
    if (ticker) ticker->stop();
    if (config.reconnect && !outcome.we_closed) {
      print_error_line("connection closed: " + std::to_string(code) +
                       (reason.empty() ? std::string() : " " + std::string(reason)));
      return;
    }
    outcome.close_code = code;
    outcome.close_reason = std::string(reason);
    pump.stop();
  };
  handlers.on_error = [&](int code, std::string_view message) {
    if (config.reconnect && outcome.we_closed) return;  // the end of what is ending anyway
    if (config.reconnect && !is_final_error(message)) {
      // Each one is news while retrying; none of them decides the exit code.
      print_error_line("error: " + std::string(message));
      return;
    }
    if (outcome.error) return;  // the first one says what went wrong; the rest follow from it
    outcome.error = std::string(message);
    outcome.error_code = code;
    outcome.error_after_open = outcome.opened;
    if (config.reconnect && !outcome.we_closed) {
      // Not from inside the client's own error path: it has yet to schedule the retry that
      // this close cancels.
      outcome.we_closed = true;
      loop.post([&] { client->close(close_code::normal); });
    }
  };
  handlers.on_reconnect = [&](unsigned, Duration delay) {
    if (!outcome.we_closed)
      print_error_line("reconnecting in " + std::to_string(delay.count()) + " ms");
  };
  handlers.on_drain = [&](const ConnectionPtr&) { pump.drained(); };
  handlers.on_finished = [&] { loop.stop(); };

  client = std::make_unique<Client>(loop, options, handlers);
  // Always on: the drain needs to know whether a fragmented message is half-received.
  client->on_trace([&, print = trace.callback(start)](const TraceEvent& event) {
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
    if (ticker) ticker->stop();
    close_from_our_side();
  });

  if (!client->connect(&error)) {
    print_error_line("error: " + error);
    return exit_connect_failed;
  }
  loop.run();
  pump.stop();
  const int code = exit_code_for(outcome);
  // A connection still open (a second signal) reports its end from the client's destructor,
  // to handlers that use the pump, the ticker and the drain: so the client goes first.
  client.reset();
  return code;
}

}  // namespace tether::cli
