// `tether bench`: echo throughput and latency against any echo server, every echo verified.
//
// Measured like the peers' wsload, so that the numbers compare: N connections on one loop
// thread, each keeping K messages of S bytes in flight (an echo triggers the next send), a
// warm-up that is not counted, then a measured window; the latency of a message is the time
// from its send() to the arrival of its echo, and MB/s counts echoed payload bytes (10^6).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "stats.hpp"
#include "tether/client.hpp"
#include "tether/permessage_deflate.hpp"

namespace tether::cli {

namespace {

enum class PayloadKind { binary, text, json };

PayloadKind payload_kind(const std::string& name) {
  if (name == "text") return PayloadKind::text;
  if (name == "json") return PayloadKind::json;
  return PayloadKind::binary;
}

// {"seq":<20 digits>,"conn":<10 digits>,"data":""} fits in it, whatever the counters.
constexpr std::size_t json_min_size = 56;
// Each message starts at its own offset in the pool, so an echo of an older message differs
// from the expected one in its body too, not only in its sequence number.
constexpr std::size_t pool_slack = 4096;
// Mismatches shown on stderr; the count says how many more there were.
constexpr int mismatch_lines = 5;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The content of message `seq` of connection `conn`, written in place: a prefix naming both,
// then a slice of a pool generated once, so that making a message costs one memcpy.
class PayloadMaker {
 public:
  PayloadMaker(PayloadKind kind, std::size_t size) : kind_(kind), size_(size) {
    pool_.resize(size + pool_slack);
    static constexpr char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::uint64_t state = 0x5eed;
    for (std::byte& b : pool_) {
      state = splitmix64(state);
      b = kind == PayloadKind::binary ? static_cast<std::byte>(state)
                                      : static_cast<std::byte>(alnum[state % 62]);
    }
  }

  MessageType type() const noexcept {
    return kind_ == PayloadKind::binary ? MessageType::binary : MessageType::text;
  }

  void fill(std::uint32_t conn, std::uint64_t seq, std::byte* out) const noexcept {
    const std::size_t offset = splitmix64((std::uint64_t{conn} << 40) ^ seq) % pool_slack;
    const std::byte* body = pool_.data() + offset;
    switch (kind_) {
      case PayloadKind::binary:
        std::memcpy(out, body, size_);
        if (size_ >= 12) {
          std::memcpy(out, &seq, 8);
          std::memcpy(out + 8, &conn, 4);
        }
        break;
      case PayloadKind::text:
        std::memcpy(out, body, size_);
        if (size_ >= 16) {
          static constexpr char hex[] = "0123456789abcdef";
          for (int i = 0; i < 16; ++i)
            out[i] = static_cast<std::byte>(hex[(seq >> (60 - 4 * i)) & 15]);
        }
        break;
      case PayloadKind::json: {
        char prefix[64];
        const int n =
            std::snprintf(prefix, sizeof prefix, "{\"seq\":%" PRIu64 ",\"conn\":%u,\"data\":\"",
                          seq, static_cast<unsigned>(conn));
        const auto head = static_cast<std::size_t>(n);
        std::memcpy(out, prefix, head);
        std::memcpy(out + head, body, size_ - head - 2);
        out[size_ - 2] = std::byte{'"'};
        out[size_ - 1] = std::byte{'}'};
        break;
      }
    }
  }

 private:
  PayloadKind kind_;
  std::size_t size_;
  std::vector<std::byte> pool_;
};

struct BenchConnection {
  std::uint32_t index = 0;
  std::unique_ptr<Client> client;
  ConnectionPtr connection;
  std::vector<std::byte> in_flight;  // the messages in flight, as sent: slot = seq % K
  std::vector<TimePoint> sent_at;    // per slot
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  bool opened = false;
  bool failed = false;  // never opened
  bool closed = false;
  bool finished = false;
};

struct Counters {
  std::uint64_t messages = 0;  // echoes in the measured window
  std::uint64_t verified = 0;  // of those, identical to what was sent
  std::uint64_t bytes = 0;     // payload bytes of the verified ones
  std::uint64_t mismatches = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t unexpected_closes = 0;
  std::uint64_t lost = 0;
  std::uint64_t send_failures = 0;
  std::uint64_t errors() const {
    return mismatches + connect_failures + unexpected_closes + lost + send_failures;
  }
};

class Bench {
 public:
  Bench(const BenchConfig& config, EventLoop& loop)
      : config_(config),
        loop_(loop),
        size_(static_cast<std::size_t>(*parse_bytes(config.size))),
        in_flight_(config.in_flight),
        maker_(payload_kind(config.payload), size_) {}

  int run();

 private:
  enum class Phase { connecting, warmup, measuring, draining, closing, done };

  void on_open(BenchConnection& c, const ConnectionPtr& connection);
  void on_message(BenchConnection& c, MessageType type, ByteView payload);
  void on_close(BenchConnection& c);
  void on_error(BenchConnection& c, std::string_view message);
  void on_finished(BenchConnection& c);
  void send_next(BenchConnection& c, TimePoint now);
  void connect_phase_over();
  void start_measuring();
  void stop_measuring();
  void check_drained();
  void close_all();
  void show_progress();
  void report_mismatch(const BenchConnection& c, std::string_view what);
  void print_report() const;
  ClientOptions client_options() const;

  const BenchConfig& config_;
  EventLoop& loop_;
  const std::size_t size_;
  const unsigned in_flight_;
  const PayloadMaker maker_;
  std::vector<BenchConnection> connections_;
  Phase phase_ = Phase::connecting;
  bool sending_ = false;
  unsigned opened_ = 0, failed_ = 0, finished_ = 0;
  std::optional<std::string> first_error_;
  bool interrupted_ = false;
  bool aborted_ = false;
  Counters counters_;
  LatencyHistogram latency_;
  TimePoint measure_start_{}, measure_end_{};
  double cpu_start_ = 0, cpu_end_ = 0;
  TimePoint started_{};
  EventLoop::TimerId phase_timer_ = 0;
  EventLoop::TimerId progress_timer_ = 0;
  ProgressLine progress_;
  int mismatches_shown_ = 0;
};

ClientOptions Bench::client_options() const {
  ClientOptions o;
  o.url = config_.url;
  const Duration timeout = *parse_duration(config_.connect_timeout);
  o.connect_timeout = timeout.count() > 0 ? timeout : Duration(std::chrono::hours(24 * 365));
  o.session.handshake_timeout = timeout;
  // Keepalive would only add frames to what is measured; the echoes prove the peer alive.
  o.session.ping_interval = Duration(0);
  o.session.max_message_size = std::max<std::uint64_t>(o.session.max_message_size, size_);
  // All K messages of a connection must fit, or the bench would measure refusals.
  o.backpressure.limit = std::max<std::size_t>(o.backpressure.limit, 2 * in_flight_ * (size_ + 14));
  if (config_.compress) o.extensions.push_back(std::make_shared<PerMessageDeflate>());
  return o;
}

void Bench::on_open(BenchConnection& c, const ConnectionPtr& connection) {
  c.opened = true;
  c.connection = connection;
  if (phase_ != Phase::connecting) {
    // Opened after the connect phase gave up on it: it takes no part.
    c.closed = true;
    c.client->close(close_code::normal);
    return;
  }
  ++opened_;
  if (opened_ + failed_ == connections_.size()) connect_phase_over();
}

void Bench::on_error(BenchConnection& c, std::string_view message) {
  if (!first_error_) first_error_ = std::string(message);
  if (c.opened || c.failed) return;
  c.failed = true;
  ++counters_.connect_failures;
  ++failed_;
  if (phase_ == Phase::connecting && opened_ + failed_ == connections_.size()) connect_phase_over();
}

void Bench::on_close(BenchConnection& c) {
  if (c.closed) return;
  c.closed = true;
  if (phase_ == Phase::closing || phase_ == Phase::done) return;
  // The server ended it while echoes were expected.
  ++counters_.unexpected_closes;
  counters_.lost += c.sent - c.received;
  c.received = c.sent;
  if (phase_ == Phase::draining) check_drained();
}

void Bench::on_finished(BenchConnection& c) {
  if (c.finished) return;
  c.finished = true;
  ++finished_;
  if (phase_ == Phase::closing && finished_ == connections_.size()) {
    phase_ = Phase::done;
    loop_.stop();
  }
}

void Bench::send_next(BenchConnection& c, TimePoint now) {
  const std::size_t slot = static_cast<std::size_t>(c.sent % in_flight_);
  std::byte* data = c.in_flight.data() + slot * size_;
  maker_.fill(c.index, c.sent, data);
  c.sent_at[slot] = now;
  if (c.connection->send(maker_.type(), ByteView(data, size_)) == SendResult::ok) {
    ++c.sent;
  } else {
    ++counters_.send_failures;
  }
}

void Bench::on_message(BenchConnection& c, MessageType type, ByteView payload) {
  const TimePoint now = Clock::now();
  if (c.received >= c.sent) {
    ++counters_.mismatches;
    return report_mismatch(c, "a message nobody sent");
  }
  const std::size_t slot = static_cast<std::size_t>(c.received % in_flight_);
  const std::byte* expected = c.in_flight.data() + slot * size_;
  const bool ok = type == maker_.type() && payload.size() == size_ &&
                  std::memcmp(payload.data(), expected, size_) == 0;
  if (phase_ == Phase::measuring) {
    ++counters_.messages;
    if (ok) {
      ++counters_.verified;
      counters_.bytes += size_;
      latency_.add(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at[slot]).count()));
    }
  }
  if (!ok) {
    ++counters_.mismatches;
    report_mismatch(c, type != maker_.type()     ? "wrong message type"
                       : payload.size() != size_ ? "wrong length"
                                                 : "payload differs");
  }
  ++c.received;
  if (sending_) {
    send_next(c, now);
  } else if (phase_ == Phase::draining && c.received == c.sent) {
    check_drained();
  }
}

void Bench::report_mismatch(const BenchConnection& c, std::string_view what) {
  if (mismatches_shown_++ >= mismatch_lines) return;
  print_error_line("mismatch: connection " + std::to_string(c.index) + " message " +
                   std::to_string(c.received) + ": " + std::string(what));
}

void Bench::connect_phase_over() {
  if (phase_ != Phase::connecting) return;
  if (phase_timer_) loop_.cancel(phase_timer_);
  phase_timer_ = 0;
  if (opened_ == 0) {
    phase_ = Phase::closing;
    return close_all();
  }
  // Whatever has not opened by now will not take part.
  for (BenchConnection& c : connections_) {
    if (!c.opened && !c.failed) {
      c.failed = true;
      ++counters_.connect_failures;
      c.client->close(close_code::normal);
    }
  }
  sending_ = true;
  const TimePoint now = Clock::now();
  for (BenchConnection& c : connections_) {
    if (!c.opened || c.closed) continue;
    for (unsigned i = 0; i < in_flight_; ++i) send_next(c, now);
  }
  const Duration warmup = *parse_duration(config_.warmup);
  if (warmup.count() == 0) return start_measuring();
  phase_ = Phase::warmup;
  phase_timer_ = loop_.call_after(warmup, [this] {
    phase_timer_ = 0;
    start_measuring();
  });
}

void Bench::start_measuring() {
  phase_ = Phase::measuring;
  counters_.messages = counters_.verified = counters_.bytes = 0;
  latency_.clear();
  measure_start_ = Clock::now();
  cpu_start_ = process_cpu_seconds();
  phase_timer_ = loop_.call_after(*parse_duration(config_.duration), [this] {
    phase_timer_ = 0;
    stop_measuring();
  });
}

void Bench::stop_measuring() {
  if (phase_ != Phase::measuring && phase_ != Phase::warmup) return;
  if (phase_timer_) loop_.cancel(phase_timer_);
  if (phase_ == Phase::warmup) {
    // Interrupted during the warm-up: an empty window, not a missing one.
    measure_start_ = Clock::now();
    cpu_start_ = process_cpu_seconds();
  }
  measure_end_ = Clock::now();
  cpu_end_ = process_cpu_seconds();
  sending_ = false;
  phase_ = Phase::draining;
  // Echoes still on their way are waited for (and checked), within a bound.
  phase_timer_ = loop_.call_after(std::chrono::seconds(5), [this] {
    phase_timer_ = 0;
    for (BenchConnection& c : connections_) {
      if (!c.opened || c.closed) continue;
      counters_.lost += c.sent - c.received;
      c.received = c.sent;
    }
    phase_ = Phase::closing;
    close_all();
  });
  check_drained();
}

void Bench::check_drained() {
  if (phase_ != Phase::draining) return;
  for (const BenchConnection& c : connections_)
    if (c.opened && !c.closed && c.received < c.sent) return;
  if (phase_timer_) loop_.cancel(phase_timer_);
  phase_timer_ = 0;
  phase_ = Phase::closing;
  close_all();
}

void Bench::close_all() {
  if (progress_timer_) loop_.cancel(progress_timer_);
  progress_timer_ = 0;
  for (BenchConnection& c : connections_) c.client->close(close_code::normal);
  if (finished_ == connections_.size()) {
    phase_ = Phase::done;
    return loop_.stop();
  }
  // A server that never answers our CLOSE does not hold the report back for long.
  phase_timer_ = loop_.call_after(std::chrono::seconds(3), [this] {
    phase_timer_ = 0;
    loop_.stop();
  });
}

void Bench::show_progress() {
  progress_timer_ = loop_.call_after(std::chrono::milliseconds(250), [this] { show_progress(); });
  const double since_start = std::chrono::duration<double>(Clock::now() - started_).count();
  std::string line = "bench " + fixed(since_start, 1) + "s ";
  switch (phase_) {
    case Phase::connecting:
      line += "connecting: " + std::to_string(opened_) + "/" + std::to_string(connections_.size()) +
              " open";
      break;
    case Phase::warmup:
      line += "warming up";
      break;
    case Phase::measuring: {
      const double s = std::chrono::duration<double>(Clock::now() - measure_start_).count();
      const double rate = s > 0 ? static_cast<double>(counters_.messages) / s : 0;
      line += "measuring: " + std::to_string(counters_.messages) + " msgs, " + fixed(rate, 0) +
              " msg/s, p99 " + fixed(static_cast<double>(latency_.percentile(99)) / 1e3, 1) +
              " us, errors " + std::to_string(counters_.errors());
      break;
    }
    default:
      line += "finishing";
      break;
  }
  progress_.show(line);
}

void Bench::print_report() const {
  const double seconds = std::chrono::duration<double>(measure_end_ - measure_start_).count();
  const double msg_per_s = seconds > 0 ? static_cast<double>(counters_.verified) / seconds : 0;
  const double mb_per_s = seconds > 0 ? static_cast<double>(counters_.bytes) / seconds / 1e6 : 0;
  const double cpu_pct = seconds > 0 ? (cpu_end_ - cpu_start_) / seconds * 100 : 0;
  auto us = [](std::uint64_t ns) { return std::round(static_cast<double>(ns) / 100.0) / 10.0; };
  auto one_decimal = [](double v) { return std::round(v * 10) / 10; };
  if (config_.json) {
    nlohmann::ordered_json j;
    j["connections"] = config_.connections;
    j["size"] = size_;
    j["payload"] = config_.payload;
    j["in_flight"] = in_flight_;
    j["compress"] = config_.compress;
    j["duration_s"] = std::round(seconds * 1000) / 1000;
    j["messages"] = counters_.messages;
    j["verified"] = counters_.verified;
    j["msg_per_s"] = one_decimal(msg_per_s);
    j["mb_per_s"] = std::round(mb_per_s * 1000) / 1000;
    j["p50_us"] = us(latency_.percentile(50));
    j["p90_us"] = us(latency_.percentile(90));
    j["p99_us"] = us(latency_.percentile(99));
    j["max_us"] = us(latency_.max());
    j["errors"] = counters_.errors();
    j["mismatches"] = counters_.mismatches;
    j["connect_failures"] = counters_.connect_failures;
    j["unexpected_closes"] = counters_.unexpected_closes;
    j["lost"] = counters_.lost;
    j["send_failures"] = counters_.send_failures;
    j["client_cpu_pct"] = one_decimal(cpu_pct);
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("bench %s: %u connections, %zu-byte %s messages, %u in flight each%s\n",
                config_.url.c_str(), config_.connections, size_, config_.payload.c_str(),
                in_flight_, config_.compress ? ", deflate offered" : "");
    std::printf("measured    %.3f s\n", seconds);
    std::printf("messages    %" PRIu64 " echoed, %" PRIu64 " verified\n", counters_.messages,
                counters_.verified);
    std::printf("throughput  %.1f msg/s, %.3f MB/s\n", msg_per_s, mb_per_s);
    std::printf("latency     p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us\n",
                us(latency_.percentile(50)), us(latency_.percentile(90)),
                us(latency_.percentile(99)), us(latency_.max()));
    std::printf("errors      %" PRIu64 " (mismatches %" PRIu64 ", connect failures %" PRIu64
                ", unexpected closes %" PRIu64 ", lost %" PRIu64 ", send failures %" PRIu64 ")\n",
                counters_.errors(), counters_.mismatches, counters_.connect_failures,
                counters_.unexpected_closes, counters_.lost, counters_.send_failures);
    std::printf("client CPU  %.1f%%\n", cpu_pct);
  }
  std::fflush(stdout);
}

int Bench::run() {
  started_ = Clock::now();
  TraceOutput trace;
  std::string error;
  if (!trace.open(config_.trace, config_.trace_file, &error)) {
    print_error_line("error: " + error);
    return exit_failure;
  }
  ClientOptions options = client_options();
  apply_tls_client_flags(config_.tls, options.tls);
  const TraceCallback tracer = trace.callback(started_);

  connections_.resize(config_.connections);
  for (std::uint32_t i = 0; i < connections_.size(); ++i) {
    BenchConnection& c = connections_[i];
    c.index = i;
    c.in_flight.resize(size_ * in_flight_);
    c.sent_at.resize(in_flight_);
    ClientHandlers h;
    h.on_open = [this, &c](const ConnectionPtr& connection) { on_open(c, connection); };
    h.on_message = [this, &c](const ConnectionPtr&, MessageType type, ByteView payload) {
      on_message(c, type, payload);
    };
    h.on_close = [this, &c](const ConnectionPtr&, std::uint16_t, std::string_view) { on_close(c); };
    h.on_error = [this, &c](int, std::string_view message) { on_error(c, message); };
    h.on_finished = [this, &c] { on_finished(c); };
    c.client = std::make_unique<Client>(loop_, options, std::move(h));
    if (tracer) c.client->on_trace(tracer);
    if (config_.verbose) c.client->on_log(stderr_logger());
  }

  SignalWatch signals(loop_, [this](int) {
    if (interrupted_) {
      aborted_ = true;
      return loop_.stop();
    }
    interrupted_ = true;
    if (phase_ == Phase::connecting) {
      phase_ = Phase::closing;
      return close_all();
    }
    stop_measuring();  // an early end still reports what was measured
  });

  for (BenchConnection& c : connections_) {
    if (!c.client->connect(&error)) {
      print_error_line("error: " + error);
      return exit_connect_failed;
    }
  }
  // Each client gives up at its own connect timeout; this only catches what slips past it.
  const Duration timeout = *parse_duration(config_.connect_timeout);
  if (timeout.count() > 0) {
    phase_timer_ = loop_.call_after(timeout + std::chrono::seconds(1), [this] {
      phase_timer_ = 0;
      connect_phase_over();
    });
  }
  if (progress_.active()) show_progress();
  loop_.run();
  if (progress_timer_) loop_.cancel(progress_timer_);
  progress_.clear();

  int code = exit_ok;
  if (aborted_) {
    print_error_line("error: interrupted");
    code = exit_failure;
  } else if (opened_ == 0) {
    if (interrupted_) {
      print_error_line("error: interrupted while connecting");
      code = exit_failure;
    } else {
      print_error_line("error: " + first_error_.value_or("no connection could be opened"));
      code = exit_connect_failed;
    }
  } else {
    print_report();
    if (counters_.errors() != 0) {
      if (first_error_) print_error_line("error: " + *first_error_);
      code = exit_failure;
    }
  }
  // Clients still holding a connection (an abort) report to handlers that use `this`; in
  // `done` those handlers only count, and never reach for a client already destroyed.
  phase_ = Phase::done;
  for (BenchConnection& c : connections_) c.client.reset();
  return code;
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchConfig& config) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure echo throughput and latency against an echo server, verifying every echo");
  cmd->footer(
      "Method:\n"
      "  Opens --connections connections on one thread; each keeps --in-flight messages\n"
      "  of --size bytes in flight: an echo is compared byte for byte with what was sent,\n"
      "  then the next message goes. The first --warmup is not counted; then --duration\n"
      "  is measured, echoes still on their way are awaited (at most 5 s) and checked,\n"
      "  and every connection closes with 1000. Keepalive PINGs are off.\n"
      "  Payloads: binary (random bytes; the first 12 are the sequence number and the\n"
      "  connection), text (random letters and digits; the first 16 are the sequence\n"
      "  number in hex), json ({\"seq\":N,\"conn\":C,\"data\":\"...\"} padded to exactly\n"
      "  --size bytes, at least 56). The same method as the peers' wsload, so that\n"
      "  the numbers compare.\n"
      "\nReport (stdout):\n"
      "  msg/s: verified echoes per second of the window; MB/s: their payload bytes\n"
      "  (10^6 per MB); latency: send() to echo, p50/p90/p99/max in microseconds (from a\n"
      "  log histogram, within 1.6%); errors: mismatched echoes, connections that failed\n"
      "  to open or closed early, echoes lost, sends refused; client CPU: user+system time\n"
      "  of this process over the window (100% = one core).\n"
      "  --json prints instead one JSON object, the last line of stdout, with keys\n"
      "  connections, size, payload, in_flight, compress, duration_s, messages (echoes in\n"
      "  the window), verified (those identical to what was sent), msg_per_s, mb_per_s,\n"
      "  p50_us, p90_us, p99_us, max_us, errors, mismatches, connect_failures,\n"
      "  unexpected_closes, lost, send_failures, client_cpu_pct.\n"
      "  On a terminal a progress line is rewritten up to 4 times a second.\n"
      "  Mismatches are described on stderr (the first 5). SIGINT/SIGTERM end the\n"
      "  measurement early and report it; a second signal exits at once (1).\n"
      "  Exit 0 when errors is 0, 1 otherwise, 2 when no connection could be opened.\n" +
      tls_client_help() + trace_help() + "\n" + values_help() + "\n" + exit_codes_footer());
  cmd->add_option("url", config.url, "ws://host[:port][/path] or wss://... of an echo server")
      ->required()
      ->check(websocket_url_check())
      ->type_name("URL");
  cmd->add_option("-c,--connections", config.connections, "Connections")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  cmd->add_option("-s,--size", config.size, "Message payload size (K/M suffixes: 1024 multiples)")
      ->type_name("BYTES")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            auto n = parse_bytes(value);
            if (n && *n <= (std::uint64_t{256} << 20)) return {};
            return "invalid size '" + value + "': use 1 byte to 256M";
          },
          ""))
      ->capture_default_str();
  cmd->add_option("-k,--in-flight", config.in_flight, "Messages in flight per connection")
      ->check(CLI::Range(1u, 65536u))
      ->capture_default_str();
  cmd->add_option("-d,--duration", config.duration, "Measured time")
      ->type_name("DUR")
      ->check(positive_duration_check("10s"))
      ->capture_default_str();
  cmd->add_option("-w,--warmup", config.warmup, "Time sending before measuring (0: none)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--payload", config.payload, "binary, text or json")
      ->check(CLI::IsMember({"binary", "text", "json"}))
      ->capture_default_str();
  cmd->add_option("--connect-timeout", config.connect_timeout,
                  "Bound on DNS + TCP connect + opening handshake of each connection")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  add_tls_client_flags(cmd, config.tls);
  cmd->add_flag("--compress", config.compress, "Offer permessage-deflate compression");
  cmd->add_flag("--json", config.json, "Print the report as one JSON object (last line)");
  add_trace_flags(cmd, config.trace, config.trace_file, config.verbose);
  cmd->callback([&config] {
    if (config.payload == "json" && *parse_bytes(config.size) < json_min_size)
      throw CLI::ValidationError("--size", "--payload json needs --size of at least 56 bytes");
  });
  return cmd;
}

int run_bench(const BenchConfig& config) {
  EventLoop loop;
  Bench bench(config, loop);
  return bench.run();
}

}  // namespace tether::cli
