// The smallest correct tether server: echoes every message on 127.0.0.1, and on Ctrl-C (or
// SIGTERM) closes every connection with 1001 before exiting.
//
// Usage: echo_server [port]        (default 9000)
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "tether/event_loop.hpp"
#include "tether/server.hpp"

int main(int argc, char** argv) {
  tether::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 9000);

  // Blocked before any thread exists, so every thread inherits the mask and the signals wait
  // for sigwait() below instead of killing the process mid-write.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  tether::EventLoop loop;
  tether::Server server(loop, options);
  tether::ServerBehavior echo;
  echo.on_message = [](const tether::ConnectionPtr& c, tether::MessageType type,
                       tether::ByteView payload) { c->send(type, payload); };
  server.route("*", echo);
  std::string error;
  if (!server.listen(&error)) {
    std::fprintf(stderr, "echo_server: %s\n", error.c_str());
    return 1;
  }
  std::printf("echo_server: listening on ws://127.0.0.1:%u/\n", server.port());
  std::fflush(stdout);

  // The server belongs to the loop thread, so the waiter only hands the work over. The loop
  // stops once shutdown is done (every CLOSE answered, or shutdown_timeout), not before, so
  // clients see 1001 rather than a reset.
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    loop.post([&, sig] {
      std::printf("echo_server: signal %d, closing %zu connections\n", sig,
                  server.connection_count());
      std::fflush(stdout);
      server.shutdown([&] { loop.stop(); });
    });
  });
  loop.run();
  signal_waiter.join();
  return 0;
}
