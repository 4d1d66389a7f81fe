// Memory per idle connection: how much a tether::Server grows for each open, silent client.
//
// Usage: idle_connections [--connections K] [--warmup W]      (defaults 2000 and 100)
//
// The server and the clients live in separate processes (fork), so the server's figures hold
// only server memory. The clients first open W connections, which pays the one-time costs
// (first-use allocations, the read buffer, hash tables sized for small counts); the server
// measures itself there, then again after K more, and reports the difference divided by K.
// Both ends keep the default options, keepalive included, as a deployment would.
//
// Figures: RSS from /proc/self/statm, heap in use from mallinfo2() (all arenas). The kernel's
// own per-socket memory is in neither; an idle socket holds no buffer pages, only its slab
// objects.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tether/client.hpp"
#include "tether/event_loop.hpp"
#include "tether/server.hpp"

namespace {

using namespace std::chrono_literals;

struct Memory {
  long rss_bytes = 0;
  long heap_bytes = 0;
  long threads = 0;
};

Memory measure() {
  Memory m;
  long size = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  m.rss_bytes = resident * ::sysconf(_SC_PAGESIZE);
  struct mallinfo2 mi = ::mallinfo2();
  m.heap_bytes = static_cast<long>(mi.uordblks + mi.hblkhd);
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("Threads:", 0) == 0) m.threads = std::atol(line.c_str() + 8);
  return m;
}

void print_growth(const char* who, const Memory& from, const Memory& to, long n) {
  std::printf(
      "%s: +%ld connections: RSS %+ld KiB (%.0f B/conn), heap %+ld KiB (%.0f B/conn), "
      "threads %ld\n",
      who, n, (to.rss_bytes - from.rss_bytes) / 1024,
      static_cast<double>(to.rss_bytes - from.rss_bytes) / static_cast<double>(n),
      (to.heap_bytes - from.heap_bytes) / 1024,
      static_cast<double>(to.heap_bytes - from.heap_bytes) / static_cast<double>(n), to.threads);
  std::fflush(stdout);
}

// One-byte commands between the two processes, read on each side's event loop.
class PipeReader final : public tether::IoHandler {
 public:
  PipeReader(tether::EventLoop& loop, int fd, std::function<void(char)> on_command)
      : loop_(loop), fd_(fd), on_command_(std::move(on_command)) {
    loop_.add_fd(fd_, tether::EventLoop::readable, this);
  }
  ~PipeReader() override { stop(); }
  void on_io(std::uint32_t) override {
    char buf[16];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) {
      // The other process is gone: one 'x' instead of being woken for EOF every turn.
      stop();
      on_command_('x');
      return;
    }
    for (ssize_t i = 0; i < n; ++i) on_command_(buf[i]);
  }

 private:
  void stop() {
    if (fd_ < 0) return;
    loop_.remove_fd(fd_);
    fd_ = -1;
  }
  tether::EventLoop& loop_;
  int fd_;
  std::function<void(char)> on_command_;
};

void send_command(int fd, char c) {
  if (::write(fd, &c, 1) != 1) std::perror("idle_connections: pipe write");
}

// The client process: opens connections in batches (the listen backlog is finite), reports
// each phase, and closes everything cleanly when told.
int client_main(int from_server, int to_server, long warmup, long count) {
  std::uint16_t port = 0;
  if (::read(from_server, &port, sizeof port) != sizeof port) return 1;
  tether::EventLoop loop;
  std::vector<std::unique_ptr<tether::Client>> clients;
  clients.reserve(static_cast<std::size_t>(warmup + count));
  long started = 0, opened = 0, finished = 0, target = warmup;
  bool failed = false;
  Memory before;
  const long batch = 200;
  std::function<void()> start_batch = [&] {
    long end = std::min(target, started + batch);
    for (; started < end; ++started) {
      tether::ClientOptions o;
      o.url = "ws://127.0.0.1:" + std::to_string(port) + "/idle";
      tether::ClientHandlers h;
      h.on_open = [&](const tether::ConnectionPtr&) {
        ++opened;
        if (opened < started) return;
        if (started < target) return start_batch();
        Memory now = measure();
        if (target == warmup) {
          before = now;
          send_command(to_server, 'W');
        } else {
          print_growth("client process", before, now, count);
          send_command(to_server, 'K');
        }
      };
      h.on_error = [&](int code, std::string_view message) {
        if (failed) return;  // the first failure says it all; the rest are its echoes
        failed = true;
        std::fprintf(stderr, "client error %d: %.*s\n", code, static_cast<int>(message.size()),
                     message.data());
        send_command(to_server, 'F');
      };
      h.on_finished = [&] {
        if (++finished == started) loop.stop();
      };
      clients.push_back(std::make_unique<tether::Client>(loop, o, h));
      clients.back()->connect();
    }
  };
  PipeReader commands(loop, from_server, [&](char command) {
    if (command == 'G') {
      target = warmup + count;
      start_batch();
    } else {
      for (auto& client : clients) client->close(1000);
      if (clients.empty()) loop.stop();
    }
  });
  auto watchdog = loop.call_after(120s, [&] {
    std::fprintf(stderr, "client process: watchdog expired\n");
    failed = true;
    loop.stop();
  });
  start_batch();
  loop.run();
  loop.cancel(watchdog);
  return failed ? 1 : 0;
}

int server_main(int from_client, int to_client, long warmup, long count) {
  tether::EventLoop loop;
  tether::ServerOptions so;
  so.host = "127.0.0.1";
  so.port = 0;
  so.max_connections = static_cast<std::size_t>(warmup + count);  // the default caps at 10000
  tether::Server server(loop, so);
  long open_now = 0;
  bool closing = false, failed = false;
  tether::ServerBehavior b;
  b.on_open = [&](const tether::ConnectionPtr&) { ++open_now; };
  b.on_close = [&](const tether::ConnectionPtr&, std::uint16_t, std::string_view) {
    if (--open_now == 0 && closing) loop.stop();
  };
  server.route("*", b);
  std::string error;
  if (!server.listen(&error)) {
    std::fprintf(stderr, "listen: %s\n", error.c_str());
    return 1;
  }
  Memory start = measure(), warm;
  std::uint16_t port = server.port();
  if (::write(to_client, &port, sizeof port) != sizeof port) return 1;

  PipeReader commands(loop, from_client, [&](char c) {
    switch (c) {
      case 'W':
        warm = measure();
        print_growth("server (warm-up, one-time costs included)", start, warm, warmup);
        send_command(to_client, 'G');
        break;
      case 'K': {
        Memory now = measure();
        if (server.connection_count() != static_cast<std::size_t>(warmup + count)) {
          std::fprintf(stderr, "server sees %zu connections, expected %ld\n",
                       server.connection_count(), warmup + count);
          failed = true;
        }
        print_growth("server", warm, now, count);
        closing = true;
        send_command(to_client, 'Q');
        break;
      }
      default:  // 'F' (a client failed) or 'x' (the client process is gone)
        failed = true;
        loop.stop();
    }
  });
  auto watchdog = loop.call_after(120s, [&] {
    std::fprintf(stderr, "server process: watchdog expired\n");
    failed = true;
    loop.stop();
  });
  loop.run();
  loop.cancel(watchdog);
  return failed ? 1 : 0;
}

long arg_value(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::strtol(argv[i + 1], nullptr, 10);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const long count = arg_value(argc, argv, "--connections", 2000);
  const long warmup = arg_value(argc, argv, "--warmup", 100);
  if (count <= 0 || warmup <= 0) {
    std::fprintf(stderr, "usage: idle_connections [--connections K] [--warmup W]\n");
    return 2;
  }
  // Each process holds one descriptor per connection (plus the client's resolver threads).
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  int to_child[2], to_parent[2];
  if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) {
    std::perror("pipe");
    return 1;
  }
  std::printf("idle_connections: %ld warm-up + %ld measured connections, separate processes\n",
              warmup, count);
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (pid == 0) {
    ::close(to_child[1]);
    ::close(to_parent[0]);
    int rc = client_main(to_child[0], to_parent[1], warmup, count);
    std::fflush(stdout);
    std::_Exit(rc);
  }
  ::close(to_child[0]);
  ::close(to_parent[1]);
  int rc = server_main(to_parent[0], to_child[1], warmup, count);
  ::close(to_child[1]);  // unblocks a client still waiting for the port
  int status = 0;
  ::waitpid(pid, &status, 0);
  bool client_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::printf("idle_connections: %s\n", rc == 0 && client_ok ? "ok" : "FAILED");
  return rc == 0 && client_ok ? 0 : 1;
}
