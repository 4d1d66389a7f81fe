// Handshake rate: how many WebSocket connections per second a client can open (and close) to
// a ws:// or wss:// server, and how much TLS session resumption changes that.
//
// Usage: handshake_rate URL [--count N] [--parallel P] [--resume|--no-resume]
//                           [--insecure | --ca FILE]
//
// N connection attempts, at most P at a time, all on one event loop thread. Each attempt opens
// a connection (TCP, TLS for wss://, the HTTP upgrade) and, once it is open, closes it with
// 1000 (the closing handshake and the TCP teardown are part of the measured time: a connection
// slot is only free again once its connection is gone). The rate is opened connections
// divided by the wall time from the first attempt to the end of the last one. Prints one
// human line, then one JSON line.
//
// Only the public tether::Client API is used. A Client keeps its TLS session cache in a TLS
// context that it never shares with another Client, and connect() is called once per Client,
// so the two modes are:
//
//   --no-resume (default)  one new Client per attempt, so a new TLS context with an empty
//                          session cache: every TLS handshake is a full one, as for N distinct
//                          visitors. Each attempt also pays for creating that context (and
//                          reading --ca FILE), a small cost next to the handshake's public-key
//                          operations.
//   --resume               P Clients with reconnection on (no backoff delay) that each close
//                          their connection with Connection::close(1000): the Client then
//                          reconnects by itself and resumes the session its previous connection
//                          received. The first connection of each Client has no session yet,
//                          so at most N - P handshakes can be resumed.
//
// Resumption is checked, not assumed: every opened connection reports
// Connection::tls_session_resumed(). The program exits with status 1 when an attempt failed,
// when a --resume connection that had a session to offer did a full handshake anyway (the
// server refused it, or resumption is broken), or when a --no-resume connection resumed.
// For ws:// both modes open plain connections and nothing is resumed.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tether/client.hpp"
#include "tether/event_loop.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string url;
  unsigned count = 1000;
  unsigned parallel = 8;
  bool resume = false;
  bool insecure = false;
  std::string ca_file;
};

struct Totals {
  unsigned started = 0;  // attempts begun
  unsigned opened = 0;
  unsigned failed = 0;   // attempts that ended without opening
  unsigned resumed = 0;  // opened with an abbreviated TLS handshake
  // --resume: opened with a full handshake although the Client had a session to offer.
  // --no-resume: resumed although the Client was new. Either is a wrong result.
  unsigned unexpected = 0;
  std::string first_error;
};

// One of the P concurrent connection slots.
struct Slot {
  std::unique_ptr<tether::Client> client;
  bool opened_this_attempt = false;
  bool has_session = false;  // --resume: this Client's previous attempt opened
  bool done = false;
};

class Runner {
 public:
  Runner(tether::EventLoop& loop, const Config& config, bool secure)
      : loop_(loop), config_(config), secure_(secure) {}

  void start() {
    unsigned slots = std::min(config_.parallel, config_.count);
    slots_.resize(slots);
    for (unsigned i = 0; i < slots; ++i) {
      ++totals_.started;
      if (config_.resume) slots_[i].client = make_client(i, true);
      start_attempt(i);
    }
  }

  const Totals& totals() const noexcept { return totals_; }

 private:
  std::unique_ptr<tether::Client> make_client(unsigned i, bool reconnect) {
    tether::ClientOptions options;
    options.url = config_.url;
    options.tls.verify = !config_.insecure;
    options.tls.ca_file = config_.ca_file;
    if (reconnect) {
      options.reconnect.enabled = true;
      options.reconnect.initial_delay = 0ms;  // reconnect at once: the delay is not measured
      options.reconnect.stable_after = 0ms;
    }
    tether::ClientHandlers h;
    h.on_open = [this, i](const tether::ConnectionPtr& c) { opened(i, *c); };
    h.on_error = [this](int, std::string_view message) {
      if (totals_.first_error.empty()) totals_.first_error = message;
    };
    // --resume: the previous attempt of this Client is over and the next one is scheduled.
    h.on_reconnect = [this, i](unsigned, tether::Duration) { attempt_ended(i); };
    h.on_finished = [this, i] {
      if (config_.resume) return slot_done(i);
      attempt_ended(i);
    };
    return std::make_unique<tether::Client>(loop_, std::move(options), std::move(h));
  }

  void start_attempt(unsigned i) {
    Slot& s = slots_[i];
    s.opened_this_attempt = false;
    if (!config_.resume) s.client = make_client(i, false);
    std::string error;
    if (s.client->connect(&error)) return;
    // Only an invalid URL fails here, and main() has parsed it already.
    if (totals_.first_error.empty()) totals_.first_error = error;
    ++totals_.failed;
    slot_done(i);
  }

  void opened(unsigned i, tether::Connection& c) {
    Slot& s = slots_[i];
    s.opened_this_attempt = true;
    ++totals_.opened;
    bool resumed = c.tls_session_resumed();
    if (resumed) ++totals_.resumed;
    if (secure_ && (config_.resume ? s.has_session && !resumed : resumed)) ++totals_.unexpected;
    s.has_session = true;
    c.close(1000);
  }

  void attempt_ended(unsigned i) {
    Slot& s = slots_[i];
    if (!s.opened_this_attempt) {
      ++totals_.failed;
      s.has_session = false;  // a failed handshake may have used up a TLS 1.3 ticket
    }
    s.opened_this_attempt = false;
    bool more = totals_.started < config_.count;
    if (more) ++totals_.started;
    if (config_.resume) {
      // Stops the reconnection just scheduled; on_finished then ends the slot.
      if (!more) s.client->close();
      return;
    }
    // The finished Client is still on the call stack: replace it in a later task.
    loop_.post([this, i, more] {
      slots_[i].client.reset();
      if (more) {
        start_attempt(i);
      } else {
        slot_done(i);
      }
    });
  }

  void slot_done(unsigned i) {
    if (slots_[i].done) return;
    slots_[i].done = true;
    if (++slots_done_ == slots_.size()) loop_.stop();
  }

  tether::EventLoop& loop_;
  const Config& config_;
  const bool secure_;
  std::vector<Slot> slots_;
  std::size_t slots_done_ = 0;
  Totals totals_;
};

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(ch));
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  CLI::App app("Opens and closes WebSocket connections to a server and reports handshakes/s");
  app.add_option("url", config.url, "ws://host[:port][/path] or wss://...")->required();
  app.add_option("-n,--count", config.count, "Connection attempts")
      ->check(CLI::Range(1u, 10000000u))
      ->capture_default_str();
  app.add_option("-p,--parallel", config.parallel, "Attempts in progress at a time")
      ->check(CLI::Range(1u, 10000u))
      ->capture_default_str();
  app.add_flag("--resume,!--no-resume", config.resume,
               "--resume: P clients reconnect over and over, resuming their TLS sessions; "
               "--no-resume (default): a new client, so a full TLS handshake, per attempt");
  auto* insecure =
      app.add_flag("-k,--insecure", config.insecure, "Do not verify the server's certificate");
  app.add_option("--ca", config.ca_file, "PEM file of the CAs to trust (default: the system's)")
      ->excludes(insecure);
  CLI11_PARSE(app, argc, argv);

  std::string error;
  auto url = tether::parse_websocket_url(config.url, &error);
  if (!url) {
    std::fprintf(stderr, "handshake_rate: %s\n", error.c_str());
    return 2;
  }
  if (url->secure && config.insecure)
    std::fprintf(stderr, "handshake_rate: warning: certificate verification is off\n");

  tether::EventLoop loop;
  Runner runner(loop, config, url->secure);
  auto begin = Clock::now();
  runner.start();
  loop.run();
  double seconds = std::chrono::duration<double>(Clock::now() - begin).count();

  const Totals& t = runner.totals();
  double rate = seconds > 0 ? t.opened / seconds : 0;
  const char* mode = config.resume ? "resume" : "no-resume";
  unsigned parallel = std::min(config.parallel, config.count);
  std::printf(
      "%s: %u opened in %.3f s = %.1f handshakes/s (%s, parallel %u); TLS resumed %u, "
      "failed %u%s%s\n",
      config.url.c_str(), t.opened, seconds, rate, mode, parallel, t.resumed, t.failed,
      t.first_error.empty() ? "" : "; first error: ", t.first_error.c_str());
  std::printf(
      "{\"url\":%s,\"mode\":\"%s\",\"count\":%u,\"parallel\":%u,\"opened\":%u,\"failed\":%u,"
      "\"tls\":%s,\"resumed\":%u,\"unexpected_resumption_result\":%u,\"seconds\":%.6f,"
      "\"handshakes_per_second\":%.2f}\n",
      json_string(config.url).c_str(), mode, config.count, parallel, t.opened, t.failed,
      url->secure ? "true" : "false", t.resumed, t.unexpected, seconds, rate);
  if (t.unexpected)
    std::fprintf(stderr,
                 config.resume
                     ? "handshake_rate: %u connections did a full TLS handshake although their "
                       "client had a session to resume\n"
                     : "handshake_rate: %u connections of new clients resumed a TLS session\n",
                 t.unexpected);
  return t.failed || t.unexpected ? 1 : 0;
}
