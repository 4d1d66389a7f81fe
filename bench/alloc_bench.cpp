// Proves (or disproves) "no allocation per message in steady state".
//
// Every form of global operator new/delete is replaced by a counting one, so any heap
// allocation made through C++ on the message path shows up, whichever library makes it.
// Each benchmark warms up first (buffers reach their working size, pools fill, hash maps
// settle), then counts the allocations made during the timed loop only and divides by the
// messages exchanged: the `allocs_per_msg` counter. It should read 0.
//
// malloc() called directly from C code (OpenSSL, libc) is not counted here; the heaptrack
// run documented in bench/RESULTS.md covers that.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tether/client.hpp"
#include "tether/event_loop.hpp"
#include "tether/server.hpp"
#include "tether/session.hpp"

// ---- counting allocator ----------------------------------------------------------------

namespace {

std::atomic<std::uint64_t> g_allocations{0};

void* counted_alloc(std::size_t size) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  // malloc(0) may return nullptr, which operator new must not.
  return std::malloc(size ? size : 1);
}

void* counted_aligned_alloc(std::size_t size, std::align_val_t align) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  auto a = static_cast<std::size_t>(align);
  if (a < sizeof(void*)) a = sizeof(void*);
  void* p = nullptr;
  // posix_memalign rather than aligned_alloc: no "size must be a multiple" constraint.
  if (::posix_memalign(&p, a, size ? size : 1) != 0) return nullptr;
  return p;
}

void* throwing(void* p) {
  if (!p) throw std::bad_alloc();
  return p;
}

std::uint64_t allocations() noexcept {
  return g_allocations.load(std::memory_order_relaxed);
}

}  // namespace

// These replacements pair malloc with free on purpose; g++ 12 cannot see that the
// deletes below belong to the news above and warns at -O2.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t n) {
  return throwing(counted_alloc(n));
}
void* operator new[](std::size_t n) {
  return throwing(counted_alloc(n));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return throwing(counted_aligned_alloc(n, a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return throwing(counted_aligned_alloc(n, a));
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_aligned_alloc(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_aligned_alloc(n, a);
}

void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

// ---- benchmarks ------------------------------------------------------------------------

namespace {

using namespace std::chrono_literals;

constexpr std::size_t k_message_size = 64;
constexpr int k_warmup_messages = 1000;
// Larger than any message sent here plus its frame headers, so the "socket" never grows.
constexpr std::size_t k_wire_capacity = 512 * 1024;

void report(benchmark::State& state, std::uint64_t allocs, std::uint64_t messages) {
  state.counters["allocs_per_msg"] = benchmark::Counter(
      messages ? static_cast<double>(allocs) / static_cast<double>(messages) : 0);
  state.counters["allocs"] = benchmark::Counter(static_cast<double>(allocs));
  state.counters["msg/s"] =
      benchmark::Counter(static_cast<double>(messages), benchmark::Counter::kIsRate);
}

// (a) The sans-I/O core alone: the cost floor that every transport builds on.
class EchoSide final : public tether::SessionHandler {
 public:
  EchoSide(bool echo, std::size_t expected_size) : echo_(echo), expected_size_(expected_size) {}
  tether::Session* session = nullptr;
  std::uint64_t received = 0;
  std::uint64_t wrong_size = 0;

  void on_message(tether::MessageType type, tether::ByteView payload) override {
    ++received;
    if (payload.size() != expected_size_) ++wrong_size;
    if (echo_) session->send(type, payload);
  }

 private:
  bool echo_;
  std::size_t expected_size_;
};

// Moves everything `from` has to send into `to`, through a buffer whose capacity was
// reserved up front, as a transport's socket buffer would be.
void pump(tether::Session& from, tether::Session& to, std::vector<std::byte>& wire) {
  while (!from.pending_output().empty()) {
    tether::ByteView out = from.pending_output();
    wire.assign(out.begin(), out.end());
    from.consume_output(out.size());
    to.receive(wire);
  }
}

// Argument: message size. 64 bytes is the claim; 16 KiB still fits one frame and the
// session's idle buffer allowance; 128 KiB is fragmented (64 KiB fragments) and larger than
// the capacity a session keeps between messages, so it shows what that trade-off costs.
void BM_SessionEchoSteadyState(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::string message(size, 'x');
  tether::SessionOptions opts;
  opts.ping_interval = 0ms;
  opts.start_open = true;
  EchoSide client_side(false, size), server_side(true, size);
  tether::Session client(tether::Role::client, opts, client_side);
  tether::Session server(tether::Role::server, opts, server_side);
  client_side.session = &client;
  server_side.session = &server;
  std::vector<std::byte> wire;
  wire.reserve(k_wire_capacity);

  auto one_round_trip = [&] {
    client.send_text(message);
    pump(client, server, wire);
    pump(server, client, wire);
  };
  for (int i = 0; i < k_warmup_messages; ++i) one_round_trip();

  const std::uint64_t before_msgs = client_side.received;
  const std::uint64_t before = allocations();
  for (auto _ : state) one_round_trip();
  const std::uint64_t allocs = allocations() - before;
  const std::uint64_t messages = client_side.received - before_msgs;

  if (messages != static_cast<std::uint64_t>(state.iterations()) || client_side.wrong_size ||
      server_side.wrong_size)
    state.SkipWithError("echo lost or corrupted messages");
  report(state, allocs, messages);
}
BENCHMARK(BM_SessionEchoSteadyState)->ArgName("bytes")->Arg(64)->Arg(16 * 1024)->Arg(128 * 1024);

// (b) The whole runtime over loopback TCP: epoll loop, connection, corking, both ends.
// Arguments: messages per iteration, and keepalive (0: off; 1: the default 30 s PING
// interval, which arms a timer per connection that must not be re-armed per message).
void BM_LoopbackEchoSteadyState(benchmark::State& state) {
  const auto per_iteration = static_cast<std::uint64_t>(state.range(0));
  const bool keepalive = state.range(1) != 0;
  const std::string message(k_message_size, 'x');
  tether::EventLoop loop;
  tether::ServerOptions so;
  so.host = "127.0.0.1";
  so.port = 0;
  if (!keepalive) so.session.ping_interval = 0ms;
  tether::Server server(loop, so);
  tether::ServerBehavior echo;
  echo.on_message = [](const tether::ConnectionPtr& c, tether::MessageType t, tether::ByteView p) {
    c->send(t, p);
  };
  server.route("*", echo);
  std::string error;
  if (!server.listen(&error)) {
    state.SkipWithError(error.c_str());
    return;
  }

  std::uint64_t received = 0, wrong_size = 0, target = 0;
  bool failed = false;
  tether::ClientOptions co;
  co.url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/";
  co.session = so.session;
  tether::ClientHandlers h;
  h.on_open = [&](const tether::ConnectionPtr&) { loop.stop(); };
  h.on_message = [&](const tether::ConnectionPtr& c, tether::MessageType, tether::ByteView p) {
    if (p.size() != k_message_size) ++wrong_size;
    if (++received == target) return loop.stop();
    c->send_text(message);
  };
  h.on_error = [&](int, std::string_view) {
    failed = true;
    loop.stop();
  };
  h.on_finished = [&] { loop.stop(); };
  tether::Client client(loop, co, h);
  client.connect();

  // One watchdog for the whole run (arming one per iteration would itself allocate in the
  // measured region): a stuck exchange ends the benchmark instead of hanging it.
  bool expired = false;
  auto watchdog = loop.call_after(60s, [&] {
    expired = true;
    loop.stop();
  });
  loop.run();  // until open
  auto exchange = [&](std::uint64_t n) {
    target = received + n;
    client.send_text(message);
    loop.run();
  };
  if (!failed && !expired) exchange(k_warmup_messages);

  const std::uint64_t before_msgs = received;
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    if (failed || expired) break;
    exchange(per_iteration);
  }
  const std::uint64_t allocs = allocations() - before;
  const std::uint64_t messages = received - before_msgs;

  loop.cancel(watchdog);
  if (failed || expired || wrong_size ||
      messages != static_cast<std::uint64_t>(state.iterations()) * per_iteration)
    state.SkipWithError("loopback echo failed, stalled or corrupted messages");
  report(state, allocs, messages);

  // Clean closing handshake, bounded, so the next run starts from nothing.
  client.close(1000);
  auto bound = loop.call_after(5s, [&] { loop.stop(); });
  loop.run();
  loop.cancel(bound);
}
BENCHMARK(BM_LoopbackEchoSteadyState)
    ->ArgNames({"msgs", "keepalive"})
    ->Args({100, 0})
    ->Args({100, 1})
    ->UseRealTime();

// (c) Not part of the claim, measured so that its cost is known: sends from a thread other
// than the loop's. The payload must be copied to cross threads and the loop must be woken,
// so some allocation per message (or per batch of messages) is expected here.
void BM_LoopbackCrossThreadSend(benchmark::State& state) {
  const auto per_iteration = static_cast<std::uint64_t>(state.range(0));
  const std::string message(k_message_size, 'x');
  tether::EventLoop loop;
  tether::ServerOptions so;
  so.host = "127.0.0.1";
  so.port = 0;
  so.session.ping_interval = 0ms;
  tether::Server server(loop, so);
  std::uint64_t received = 0, target = 0;
  tether::ServerBehavior sink;
  sink.on_message = [&](const tether::ConnectionPtr&, tether::MessageType, tether::ByteView) {
    if (++received == target) loop.stop();
  };
  server.route("*", sink);
  std::string error;
  if (!server.listen(&error)) {
    state.SkipWithError(error.c_str());
    return;
  }
  bool failed = false;
  tether::ClientOptions co;
  co.url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/";
  co.session = so.session;
  tether::ClientHandlers h;
  h.on_open = [&](const tether::ConnectionPtr&) { loop.stop(); };
  h.on_error = [&](int, std::string_view) {
    failed = true;
    loop.stop();
  };
  h.on_finished = [&] { loop.stop(); };
  tether::Client client(loop, co, h);
  client.connect();
  bool expired = false;
  auto watchdog = loop.call_after(60s, [&] {
    expired = true;
    loop.stop();
  });
  loop.run();  // until open
  tether::ConnectionPtr conn = client.connection();
  if (failed || expired || !conn) {
    state.SkipWithError("connection failed");
    return;
  }

  // One sender thread for the whole run, woken per batch through an atomic (a futex wait,
  // which allocates nothing), so thread start-up stays out of the measured region.
  std::atomic<std::uint64_t> batches{0};
  std::atomic<bool> quit{false};
  std::thread sender([&] {
    std::uint64_t done = 0;
    for (;;) {
      batches.wait(done);
      if (quit.load()) return;
      for (++done; done <= batches.load(); ++done)
        for (std::uint64_t i = 0; i < per_iteration; ++i) conn->send_text(message);
      --done;
    }
  });
  auto batch = [&] {
    target = received + per_iteration;
    batches.fetch_add(1);
    batches.notify_one();
    loop.run();
  };
  batch();  // warm-up

  const std::uint64_t before_msgs = received;
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    if (expired) break;
    batch();
  }
  const std::uint64_t allocs = allocations() - before;
  const std::uint64_t messages = received - before_msgs;
  quit.store(true);
  batches.fetch_add(1);
  batches.notify_one();
  sender.join();

  loop.cancel(watchdog);
  if (expired || messages != static_cast<std::uint64_t>(state.iterations()) * per_iteration)
    state.SkipWithError("cross-thread sends were lost or stalled");
  report(state, allocs, messages);
  conn.reset();
  client.close(1000);
  auto bound = loop.call_after(5s, [&] { loop.stop(); });
  loop.run();
  loop.cancel(bound);
}
BENCHMARK(BM_LoopbackCrossThreadSend)->ArgName("msgs")->Arg(1000)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
