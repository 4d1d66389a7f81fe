// `tether soak`: a long, paced run that proves every message comes back intact, in order,
// once: JSON messages carrying a sequence number and a checksum of their own content, sent at
// a fixed total rate over reconnecting connections with keepalive, each echo checked against
// what was sent. Against its own in-process echo server when no URL is given.
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "stats.hpp"
#include "tether/byte_buffer.hpp"
#include "tether/client.hpp"
#include "tether/permessage_deflate.hpp"
#include "tether/server.hpp"

namespace tether::cli {

namespace {

// After the last send, how long echoes still on their way are waited for.
constexpr Duration drain_bound = std::chrono::seconds(5);
// After the CLOSE, how long a silent server may hold the report back.
constexpr Duration close_bound = std::chrono::seconds(3);
constexpr std::string_view sum_field = ",\"sum\":\"";

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint32_t crc32_of(std::string_view text) {
  return static_cast<std::uint32_t>(::crc32(::crc32(0L, Z_NULL, 0),
                                            reinterpret_cast<const Bytef*>(text.data()),
                                            static_cast<uInt>(text.size())));
}

std::string crc_hex(std::string_view text) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc32_of(text)));
  return hex;
}

// {"seq":N,"conn":C,"ts":UNIX_MS,"data":"...","sum":"CRC32 of all before ,"sum""}, into
// `text`, whose capacity is reused from message to message.
void make_message(std::string& text, std::uint64_t seq, unsigned conn, std::size_t data_size,
                  std::uint64_t& rng) {
  static constexpr char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const auto unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  char head[96];
  std::snprintf(head, sizeof head, "{\"seq\":%" PRIu64 ",\"conn\":%u,\"ts\":%lld,\"data\":\"", seq,
                conn, static_cast<long long>(unix_ms));
  text.assign(head);
  for (std::size_t i = 0; i < data_size; ++i) {
    rng = splitmix64(rng);
    text += alnum[rng % 62];
  }
  text += '"';
  const std::string sum = crc_hex(text);
  text += sum_field;
  text += sum;
  text += "\"}";
}

// The checksum holds and the fields can be read: seq and conn, or nullopt for a message whose
// content was altered on the way.
struct Parsed {
  std::uint64_t seq;
  unsigned conn;
};
std::optional<Parsed> parse_message(std::string_view text) {
  const std::size_t at = text.rfind(sum_field);
  if (at == std::string_view::npos || text.size() != at + sum_field.size() + 8 + 2 ||
      text.substr(text.size() - 2) != "\"}")
    return std::nullopt;
  if (crc_hex(text.substr(0, at)) != text.substr(at + sum_field.size(), 8)) return std::nullopt;
  unsigned long long seq = 0;
  unsigned conn = 0;
  // sscanf needs a terminated string; the fields are in the first 64 bytes.
  char head[65];
  const std::size_t n = std::min<std::size_t>(text.size(), 64);
  std::memcpy(head, text.data(), n);
  head[n] = 0;
  if (std::sscanf(head, "{\"seq\":%llu,\"conn\":%u,", &seq, &conn) != 2) return std::nullopt;
  return Parsed{seq, conn};
}

// What an echo is checked against: its text is not kept, only its size and a CRC-32 of all of
// it (the checksum inside covers only what precedes it), so that the soak's own memory does
// not move with each message and its RSS measures the library.
struct SentMessage {
  std::uint64_t seq;
  std::uint32_t crc;
  std::uint32_t size;
  TimePoint at;
};

// Messages in flight on one connection, oldest first. A vector consumed from a moving head,
// compacted in place: grown to the backlog it needs, it does not allocate again, where a deque
// allocates and frees a block every few messages. A backlog far above the usual (a stall caught
// up) is not kept for the rest of the run: like the library's buffers, the vector is freed
// once a thousand messages in a row needed less than a quarter of it.
class InFlight {
  // Mapped storage past 1 KiB: freeing it after a backlog returns it to the kernel.
  using Items = std::vector<SentMessage, BurstAllocator<SentMessage>>;
  // Reserved from the start: the usual backlog (a few messages) never makes memory grow
  // mid-run.
  static constexpr std::size_t steady_capacity = 128;

 public:
  InFlight() { items_.reserve(steady_capacity); }
  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t size() const noexcept { return items_.size() - head_; }
  void push_back(const SentMessage& m) {
    if (head_ > 0 && head_ >= items_.size() / 2) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    items_.push_back(m);
    high_ = std::max(high_, size());
  }
  void pop_front() {
    ++head_;
    if (++popped_ < 1000) return;
    if (empty() && items_.capacity() > steady_capacity && items_.capacity() / 4 > high_) {
      Items steady;
      steady.reserve(steady_capacity);
      steady.swap(items_);  // the backlog's storage leaves with `steady`
      head_ = 0;
    }
    popped_ = 0;
    high_ = size();
  }
  void clear() noexcept {
    items_.clear();
    head_ = 0;
  }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  void erase(Items::iterator it) {
    if (it == begin()) return pop_front();
    items_.erase(it);  // out of order: rare, and only a move of what follows
  }

 private:
  Items items_;
  std::size_t head_ = 0;
  std::size_t high_ = 0;    // largest backlog since the last check
  std::size_t popped_ = 0;  // messages since the last check
};

struct Slot {
  unsigned index = 0;
  std::unique_ptr<Client> client;
  ConnectionPtr connection;  // while open
  InFlight outstanding;
  std::uint64_t next_seq = 1;
  bool ever_opened = false;
  bool finished = false;
};

struct Counters {
  std::uint64_t sent = 0, received = 0, verified = 0, lost = 0;
  std::uint64_t altered = 0, out_of_order = 0, duplicated = 0, never_sent = 0;
  std::uint64_t pings = 0, pongs = 0, refused = 0, skipped = 0;
  std::uint64_t corrupted() const { return altered + out_of_order + duplicated + never_sent; }
};

// An echo server of our own on a second thread, so that the soak needs nothing else.
class OwnEchoServer {
 public:
  bool start(std::string* error) {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.session.ping_interval = Duration(0);  // the PINGs counted are the client's
    o.extensions.push_back(std::make_shared<PerMessageDeflate>());
    server_ = std::make_unique<Server>(loop_, o);
    ServerBehavior echo;
    echo.on_message = [](const ConnectionPtr& c, MessageType type, ByteView payload) {
      c->send(type, payload);
    };
    server_->route("*", std::move(echo));
    if (!server_->listen(error)) return false;
    thread_ = std::thread([this] { loop_.run(); });
    return true;
  }
  ~OwnEchoServer() {
    if (thread_.joinable()) {
      loop_.stop();
      thread_.join();
    }
    server_.reset();
  }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(server_->port()) + "/"; }

 private:
  EventLoop loop_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

class Soak {
 public:
  Soak(const SoakConfig& config, EventLoop& loop, std::string url)
      : config_(config),
        loop_(loop),
        url_(std::move(url)),
        data_size_(static_cast<std::size_t>(*parse_bytes(config.size))),
        duration_(*parse_duration(config.duration)),
        settle_(*parse_duration(config.settle)) {}

  int run(bool own_server);

 private:
  enum class Phase { connecting, sending, draining, settling, closing, done };

  void on_open(Slot& s, const ConnectionPtr& c);
  void on_message(Slot& s, MessageType type, ByteView payload);
  void on_close(Slot& s);
  void on_error(Slot& s, std::string_view message);
  void on_finished(Slot& s);
  void on_frame(const TraceEvent& event);
  void start_sending();
  void tick();
  void stop_sending();
  void check_drained();
  void close_all();
  void show_progress();
  bool passed() const;
  void print_report(bool own_server) const;

  const SoakConfig& config_;
  EventLoop& loop_;
  const std::string url_;
  const std::size_t data_size_;
  const Duration duration_;
  const Duration settle_;
  std::vector<Slot> slots_;
  Phase phase_ = Phase::connecting;
  Counters counters_;
  LatencyHistogram latency_;
  std::uint64_t rng_ = 0x50a4;
  std::string text_;             // the message being sent, its capacity reused
  std::uint64_t attempted_ = 0;  // sends due so far, made or skipped
  std::size_t next_slot_ = 0;
  TimePoint send_start_{};
  Duration tick_period_{1};
  unsigned opened_ = 0, finished_ = 0;
  std::optional<std::string> connect_error_;
  bool interrupted_ = false, aborted_ = false;
  ResidentKib rss_start_, rss_warm_, rss_end_;
  // After --settle of idle connections: what the run left behind once buffers grown by a
  // catch-up in its last seconds had their release interval to go.
  std::optional<ResidentKib> rss_settled_;
  // The most messages one tick had to send at once, before and after the warm-up sample: a
  // pause of the process (or of the machine) shows as a catch-up, and a catch-up larger than
  // any before the warm-up can leave buffers, and RSS, at a new high-water mark.
  std::uint64_t burst_warmup_ = 0, burst_after_warmup_ = 0;
  unsigned reconnects_ = 0;
  EventLoop::TimerId tick_timer_ = 0, phase_timer_ = 0, progress_timer_ = 0, warm_timer_ = 0;
  ProgressLine progress_;
  TraceCallback print_trace_;
  TimePoint started_{};
};

void Soak::on_frame(const TraceEvent& event) {
  if (event.outgoing && event.header.opcode == Opcode::ping) ++counters_.pings;
  if (!event.outgoing && event.header.opcode == Opcode::pong) ++counters_.pongs;
  if (print_trace_) print_trace_(event);
}

void Soak::on_open(Slot& s, const ConnectionPtr& c) {
  s.connection = c;
  if (phase_ == Phase::closing || phase_ == Phase::done) {
    s.client->close(close_code::normal);
    return;
  }
  if (s.ever_opened) return;
  s.ever_opened = true;
  if (++opened_ == slots_.size() && phase_ == Phase::connecting) start_sending();
}

void Soak::on_error(Slot& s, std::string_view message) {
  if (phase_ == Phase::closing || phase_ == Phase::done) return;
  if (!s.ever_opened) {
    // Before the first connection a failure is the setup's, not the soak's: report it as
    // connect does, without retrying for ever. Closing waits for the next turn, because the
    // client is still inside its own error path.
    connect_error_ = std::string(message);
    phase_ = Phase::closing;
    loop_.post([this] { close_all(); });
    return;
  }
  print_error_line("warning: connection " + std::to_string(s.index) + ": " + std::string(message));
}

void Soak::on_close(Slot& s) {
  s.connection.reset();
  // Whatever was in flight on a dead connection cannot come back on the next one.
  counters_.lost += s.outstanding.size();
  s.outstanding.clear();
  check_drained();
}

void Soak::on_finished(Slot& s) {
  if (s.finished) return;
  s.finished = true;
  if (++finished_ == slots_.size() && phase_ == Phase::closing) {
    phase_ = Phase::done;
    loop_.stop();
  }
}

void Soak::on_message(Slot& s, MessageType type, ByteView payload) {
  ++counters_.received;
  const TimePoint now = Clock::now();
  const std::string_view text = as_text(payload);
  std::optional<Parsed> parsed;
  if (type == MessageType::text) parsed = parse_message(text);
  if (!parsed || parsed->conn != s.index) {
    // Its own fields cannot be trusted: it stands for the oldest message in flight, which
    // echoes in order would have been.
    ++counters_.altered;
    if (!s.outstanding.empty()) s.outstanding.pop_front();
    return check_drained();
  }
  auto it = std::find_if(s.outstanding.begin(), s.outstanding.end(),
                         [&](const SentMessage& m) { return m.seq == parsed->seq; });
  if (it == s.outstanding.end()) {
    if (parsed->seq < s.next_seq) {
      ++counters_.duplicated;
    } else {
      ++counters_.never_sent;
    }
    return check_drained();
  }
  if (it != s.outstanding.begin()) {
    ++counters_.out_of_order;
  } else if (text.size() != it->size || crc32_of(text) != it->crc) {
    ++counters_.altered;  // a consistent checksum over altered content
  } else {
    ++counters_.verified;
    latency_.add(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - it->at).count()));
  }
  s.outstanding.erase(it);
  check_drained();
}

void Soak::start_sending() {
  phase_ = Phase::sending;
  rss_start_ = resident_kib();
  send_start_ = Clock::now();
  // Fine enough to spread the sends evenly, coarse enough not to spin at low rates.
  const double per_message_ms = 1000.0 / config_.rate;
  tick_period_ = Duration(static_cast<Duration::rep>(std::clamp(per_message_ms, 1.0, 50.0)));
  // Buffers, histograms and allocator arenas grow during the first part of a run; a leak is
  // RSS that keeps growing after that, so the end is compared with this later sample.
  warm_timer_ =
      loop_.call_after(std::min<Duration>(duration_ / 10, std::chrono::minutes(1)), [this] {
        warm_timer_ = 0;
        rss_warm_ = resident_kib();
      });
  phase_timer_ = loop_.call_after(duration_, [this] {
    phase_timer_ = 0;
    stop_sending();
  });
  tick();
}

void Soak::tick() {
  tick_timer_ = 0;
  const double elapsed = std::chrono::duration<double>(Clock::now() - send_start_).count();
  // The first message goes at once; then the total stays at rate x elapsed time, whatever
  // the timer's jitter.
  const auto due = static_cast<std::uint64_t>(std::floor(config_.rate * elapsed)) + 1;
  if (due > attempted_) {
    std::uint64_t& burst = rss_warm_.total == 0 ? burst_warmup_ : burst_after_warmup_;
    burst = std::max(burst, due - attempted_);
  }
  while (attempted_ < due) {
    ++attempted_;
    Slot& s = slots_[next_slot_++ % slots_.size()];
    if (!s.connection || !s.connection->is_open()) {
      ++counters_.skipped;  // reconnecting: nothing to send it on
      continue;
    }
    make_message(text_, s.next_seq, s.index, data_size_, rng_);
    const TimePoint at = Clock::now();
    const SendResult r = s.connection->send(MessageType::text, ByteView(as_bytes(text_)));
    if (r == SendResult::ok) {
      s.outstanding.push_back(
          {s.next_seq, crc32_of(text_), static_cast<std::uint32_t>(text_.size()), at});
      ++s.next_seq;
      ++counters_.sent;
    } else if (r == SendResult::closed) {
      ++counters_.skipped;
    } else {
      ++counters_.refused;
    }
  }
  tick_timer_ = loop_.call_after(tick_period_, [this] { tick(); });
}

void Soak::stop_sending() {
  if (phase_ != Phase::sending) return;
  if (warm_timer_) loop_.cancel(warm_timer_);
  warm_timer_ = 0;
  if (rss_warm_.total == 0) rss_warm_ = resident_kib();
  if (tick_timer_) loop_.cancel(tick_timer_);
  tick_timer_ = 0;
  if (phase_timer_) loop_.cancel(phase_timer_);
  phase_ = Phase::draining;
  phase_timer_ = loop_.call_after(drain_bound, [this] {
    phase_timer_ = 0;
    for (Slot& s : slots_) {
      counters_.lost += s.outstanding.size();
      s.outstanding.clear();
    }
    check_drained();
  });
  check_drained();
}

void Soak::check_drained() {
  if (phase_ != Phase::draining) return;
  for (const Slot& s : slots_)
    if (!s.outstanding.empty()) return;
  if (phase_timer_) loop_.cancel(phase_timer_);
  phase_timer_ = 0;
  rss_end_ = resident_kib();
  if (settle_.count() > 0 && !interrupted_) {
    phase_ = Phase::settling;
    phase_timer_ = loop_.call_after(settle_, [this] {
      phase_timer_ = 0;
      rss_settled_ = resident_kib();
      phase_ = Phase::closing;
      close_all();
    });
    return;
  }
  phase_ = Phase::closing;
  close_all();
}

void Soak::close_all() {
  if (progress_timer_) loop_.cancel(progress_timer_);
  progress_timer_ = 0;
  if (tick_timer_) loop_.cancel(tick_timer_);
  tick_timer_ = 0;
  for (Slot& s : slots_) {
    reconnects_ += s.client->reconnects();
    s.client->close(close_code::normal);
  }
  if (finished_ == slots_.size()) {
    phase_ = Phase::done;
    return loop_.stop();
  }
  phase_timer_ = loop_.call_after(close_bound, [this] {
    phase_timer_ = 0;
    loop_.stop();
  });
}

void Soak::show_progress() {
  progress_timer_ = loop_.call_after(std::chrono::milliseconds(250), [this] { show_progress(); });
  const double total = std::chrono::duration<double>(duration_).count();
  const double elapsed =
      phase_ == Phase::connecting
          ? 0
          : std::min(total, std::chrono::duration<double>(Clock::now() - send_start_).count());
  constexpr int width = 24;
  const int filled = total > 0 ? static_cast<int>(elapsed / total * width) : width;
  std::string bar = "[" + std::string(static_cast<std::size_t>(filled), '#') +
                    std::string(static_cast<std::size_t>(width - filled), '.') + "] ";
  bar += fixed(elapsed, 1) + "/" + fixed(total, 1) + "s  sent " + std::to_string(counters_.sent) +
         "  verified " + std::to_string(counters_.verified) + "  corrupted " +
         std::to_string(counters_.corrupted()) + "  lost " + std::to_string(counters_.lost);
  if (phase_ == Phase::draining) bar += "  (waiting for echoes)";
  if (phase_ == Phase::settling) bar += "  (settling)";
  progress_.show(bar);
}

bool Soak::passed() const {
  return counters_.sent > 0 && counters_.verified == counters_.sent && counters_.corrupted() == 0 &&
         counters_.lost == 0 && counters_.refused == 0;
}

void Soak::print_report(bool own_server) const {
  const double p99_us = std::round(static_cast<double>(latency_.percentile(99)) / 100.0) / 10.0;
  if (config_.json) {
    nlohmann::ordered_json j;
    j["sent"] = counters_.sent;
    j["received"] = counters_.received;
    j["verified"] = counters_.verified;
    j["corrupted"] = counters_.corrupted();
    j["lost"] = counters_.lost;
    j["pings"] = counters_.pings;
    j["pongs"] = counters_.pongs;
    j["reconnects"] = reconnects_;
    j["p99_us"] = p99_us;
    j["rss_start_kb"] = rss_start_.total;
    j["rss_warm_kb"] = rss_warm_.total;
    j["rss_end_kb"] = rss_end_.total;
    j["rss_anon_start_kb"] = rss_start_.anonymous;
    j["rss_anon_warm_kb"] = rss_warm_.anonymous;
    j["rss_anon_end_kb"] = rss_end_.anonymous;
    if (rss_settled_) {
      j["rss_settled_kb"] = rss_settled_->total;
      j["rss_anon_settled_kb"] = rss_settled_->anonymous;
    }
    j["max_burst_warmup"] = burst_warmup_;
    j["max_burst_after_warmup"] = burst_after_warmup_;
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    return;
  }
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e3; };
  std::printf("soak %s%s: %u connections, %g msg/s, %s\n", url_.c_str(),
              own_server ? " (own echo server)" : "", config_.connections, config_.rate,
              config_.duration.c_str());
  std::printf("sent        %" PRIu64 "\n", counters_.sent);
  std::printf("received    %" PRIu64 "\n", counters_.received);
  std::printf("verified    %" PRIu64 "\n", counters_.verified);
  std::printf("corrupted   %" PRIu64 " (altered %" PRIu64 ", out of order %" PRIu64
              ", duplicated %" PRIu64 ", never sent %" PRIu64 ")\n",
              counters_.corrupted(), counters_.altered, counters_.out_of_order,
              counters_.duplicated, counters_.never_sent);
  std::printf("lost        %" PRIu64 "\n", counters_.lost);
  std::printf("pings       %" PRIu64 "\n", counters_.pings);
  std::printf("pongs       %" PRIu64 "\n", counters_.pongs);
  std::printf("reconnects  %u\n", reconnects_);
  if (counters_.skipped || counters_.refused)
    std::printf("not sent    %" PRIu64 " while reconnecting, %" PRIu64 " refused (backpressure)\n",
                counters_.skipped, counters_.refused);
  std::printf("latency     p50 %.1f us, p99 %.1f us, max %.1f us\n", us(latency_.percentile(50)),
              p99_us, us(latency_.max()));
  std::printf("RSS         %" PRIu64 " KiB at start, %" PRIu64 " KiB after warm-up, %" PRIu64
              " KiB at end\n",
              rss_start_.total, rss_warm_.total, rss_end_.total);
  std::printf("  anonymous %" PRIu64 " KiB at start, %" PRIu64 " KiB after warm-up, %" PRIu64
              " KiB at end\n",
              rss_start_.anonymous, rss_warm_.anonymous, rss_end_.anonymous);
  if (rss_settled_)
    std::printf("  settled   %" PRIu64 " KiB (anonymous %" PRIu64 " KiB) after %s idle\n",
                rss_settled_->total, rss_settled_->anonymous, config_.settle.c_str());
  std::printf("catch-up    at most %" PRIu64 " messages in one tick before warm-up, %" PRIu64
              " after\n",
              burst_warmup_, burst_after_warmup_);
  std::printf("result      %s\n", passed() ? "PASS" : "FAIL");
  std::fflush(stdout);
}

int Soak::run(bool own_server) {
  started_ = Clock::now();
  TraceOutput trace;
  std::string error;
  if (!trace.open(config_.trace, config_.trace_file, &error)) {
    print_error_line("error: " + error);
    return exit_failure;
  }
  print_trace_ = trace.callback(started_);

  ClientOptions options;
  options.url = url_;
  options.session.ping_interval = *parse_duration(config_.ping_interval);
  options.session.pong_timeout = *parse_duration(config_.pong_timeout);
  const Duration timeout = *parse_duration(config_.connect_timeout);
  options.connect_timeout = timeout.count() > 0 ? timeout : Duration(std::chrono::hours(24 * 365));
  options.session.handshake_timeout = timeout;
  // A dropped connection is part of what a soak is for: it comes back, and is counted.
  options.reconnect.enabled = true;
  options.reconnect.initial_delay = std::chrono::milliseconds(100);
  options.reconnect.max_delay = std::chrono::seconds(2);
  if (config_.compress) options.extensions.push_back(std::make_shared<PerMessageDeflate>());
  apply_tls_client_flags(config_.tls, options.tls);

  slots_.resize(config_.connections);
  for (unsigned i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    s.index = i;
    ClientHandlers h;
    h.on_open = [this, &s](const ConnectionPtr& c) { on_open(s, c); };
    h.on_message = [this, &s](const ConnectionPtr&, MessageType type, ByteView payload) {
      on_message(s, type, payload);
    };
    h.on_close = [this, &s](const ConnectionPtr&, std::uint16_t, std::string_view) { on_close(s); };
    h.on_error = [this, &s](int, std::string_view message) { on_error(s, message); };
    h.on_finished = [this, &s] { on_finished(s); };
    s.client = std::make_unique<Client>(loop_, options, std::move(h));
    // Always on: the PINGs sent and PONGs received are counted from the frames.
    s.client->on_trace([this](const TraceEvent& event) { on_frame(event); });
    if (config_.verbose) s.client->on_log(stderr_logger());
  }

  SignalWatch signals(loop_, [this](int) {
    if (interrupted_) {
      aborted_ = true;
      return loop_.stop();
    }
    interrupted_ = true;
    if (phase_ == Phase::connecting || phase_ == Phase::settling) {
      if (phase_timer_) loop_.cancel(phase_timer_);
      phase_timer_ = 0;
      phase_ = Phase::closing;
      return close_all();
    }
    stop_sending();  // an early end still checks and reports what was sent
  });

  for (Slot& s : slots_) {
    if (!s.client->connect(&error)) {
      print_error_line("error: " + error);
      return exit_connect_failed;
    }
  }
  if (progress_.active()) show_progress();
  loop_.run();
  if (progress_timer_) loop_.cancel(progress_timer_);
  progress_.clear();

  int code = exit_ok;
  if (aborted_) {
    print_error_line("error: interrupted");
    code = exit_failure;
  } else if (connect_error_) {
    print_error_line("error: " + *connect_error_);
    code = exit_connect_failed;
  } else if (opened_ < slots_.size()) {
    print_error_line(interrupted_ ? "error: interrupted while connecting"
                                  : "error: the connection failed before it opened");
    code = interrupted_ ? exit_failure : exit_connect_failed;
  } else {
    if (rss_end_.total == 0) rss_end_ = resident_kib();
    print_report(own_server);
    if (!passed()) code = exit_failure;
  }
  // Clients still holding a connection (an abort) report to handlers that use `this`; in
  // `done` those handlers only count, and never reach for a client already destroyed.
  phase_ = Phase::done;
  for (Slot& s : slots_) s.client.reset();
  return code;
}

}  // namespace

CLI::App* add_soak_command(CLI::App& app, SoakConfig& config) {
  CLI::App* cmd = app.add_subcommand(
      "soak", "Run a paced, verified echo session for a while and report every message's fate");
  cmd->footer(
      "Method:\n"
      "  Without URL an echo server of its own is started on 127.0.0.1 (a free port).\n"
      "  --connections connections (reconnecting with backoff from 100 ms to 2 s when one\n"
      "  drops) send --rate text messages per second in total, spread over them in turn\n"
      "  and paced by a timer, each one\n"
      "    {\"seq\":N,\"conn\":C,\"ts\":UNIX_MS,\"data\":\"<--size letters>\",\"sum\":\"CRC\"}\n"
      "  where N counts from 1 per connection and CRC is the CRC-32 (8 hex digits) of\n"
      "  everything before ',\"sum\"'. Every echo is checked: checksum, exact match with\n"
      "  what was sent, order, gaps and duplicates. After --duration, sending stops,\n"
      "  echoes still on their way are awaited (at most 5 s), and each connection\n"
      "  closes with 1000. SIGINT/SIGTERM stop sending early and report; a second\n"
      "  signal exits at once (1).\n"
      "\nReport (stdout):\n"
      "  sent, received, verified (came back intact, in order, once), corrupted\n"
      "  (altered, out of order, duplicated, or never sent), lost (never came back,\n"
      "  e.g. in flight on a connection that dropped), pings (keepalive PINGs sent),\n"
      "  pongs (PONGs received), reconnects, the latency from send to echo, and the\n"
      "  resident memory of this process (KiB) when sending starts, after warm-up (a\n"
      "  tenth of --duration, at most 1 min) and when it ends, with its anonymous part\n"
      "  (without the pages of code paged in), and the most messages\n"
      "  one tick had to send at once before and after warm-up (a pause shows as a\n"
      "  catch-up).\n"
      "  --json prints instead one JSON object, the last line of stdout, with keys\n"
      "  sent, received, verified, corrupted, lost, pings, pongs, reconnects, p99_us,\n"
      "  rss_start_kb, rss_warm_kb, rss_end_kb, rss_anon_start_kb, rss_anon_warm_kb,\n"
      "  rss_anon_end_kb, max_burst_warmup, max_burst_after_warmup, and with --settle\n"
      "  rss_settled_kb and rss_anon_settled_kb. On a terminal a progress bar is shown\n"
      "  meanwhile.\n"
      "  Exit 0 only when verified == sent > 0 and nothing was corrupted or lost (or\n"
      "  refused by backpressure); 1 otherwise; 2 when a connection fails before it\n"
      "  first opened.\n" +
      tls_client_help() + trace_help() + "\n" + values_help() + "\n" + exit_codes_footer());
  cmd->add_option("url", config.url,
                  "ws://... or wss://... of an echo server (default: one of our own)")
      ->check(websocket_url_check())
      ->type_name("URL");
  cmd->add_option("-d,--duration", config.duration, "How long to send")
      ->type_name("DUR")
      ->check(positive_duration_check("1m"))
      ->capture_default_str();
  cmd->add_option("-r,--rate", config.rate, "Messages per second, over all connections")
      ->check(CLI::Range(0.01, 1e6))
      ->capture_default_str();
  cmd->add_option("--ping-interval", config.ping_interval,
                  "Send a keepalive PING this often on each connection (0 disables)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--pong-timeout", config.pong_timeout,
                  "A connection silent this long after a PING is dead (and reconnects)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--connect-timeout", config.connect_timeout,
                  "Bound on DNS + TCP connect + opening handshake")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--settle", config.settle,
                  "After the drain, keep the connections open and idle this long, then read "
                  "the RSS again (rss_settled_kb; 0: not read)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("-c,--connections", config.connections, "Connections")
      ->check(CLI::Range(1u, 10000u))
      ->capture_default_str();
  cmd->add_option("--payload", config.payload, "Message format (json only)")
      ->check(CLI::IsMember({"json"}))
      ->capture_default_str();
  cmd->add_option("--size", config.size, "Letters in each message's data field")
      ->type_name("BYTES")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            auto n = parse_bytes(value);
            if (n && *n <= (std::uint64_t{1} << 20)) return {};
            return "invalid size '" + value + "': use 1 to 1M";
          },
          ""))
      ->capture_default_str();
  add_tls_client_flags(cmd, config.tls);
  cmd->add_flag("--compress", config.compress, "Offer permessage-deflate compression");
  cmd->add_flag("--json", config.json, "Print the report as one JSON object (last line)");
  add_trace_flags(cmd, config.trace, config.trace_file, config.verbose);
  return cmd;
}

int run_soak(const SoakConfig& config) {
  std::optional<OwnEchoServer> own;
  std::string url = config.url;
  if (url.empty()) {
    own.emplace();
    std::string error;
    if (!own->start(&error)) {
      print_error_line("error: " + error);
      return exit_failure;
    }
    url = own->url();
  }
  EventLoop loop;
  Soak soak(config, loop, url);
  return soak.run(own.has_value());
}

}  // namespace tether::cli
