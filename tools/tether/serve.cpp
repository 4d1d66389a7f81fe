// `tether serve`: an echo server, each message sent back with its type.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "tether/permessage_deflate.hpp"
#include "tether/server.hpp"

namespace tether::cli {

namespace {
// Echoes waiting for a client to read them, at least: four times the library's default limit,
// so a client pipelining default-sized messages is not cut off at the first burst.
constexpr std::uint64_t echo_buffer_floor = std::uint64_t{64} << 20;
}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeConfig& config) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "Run an echo server: each message goes back to its sender with its type");
  cmd->footer(
      "Output (stderr):\n"
      "  'listening on ws://HOST:PORT' once connections are accepted ('wss://' with\n"
      "  --tls-cert). PORT is the bound port, so with --port 0 it is the one the OS chose;\n"
      "  an IPv6 HOST is in brackets. If the address cannot be bound, or a certificate or\n"
      "  key cannot be used: one 'error: ...' line, exit code 1.\n"
      "  A client that keeps sending without reading its echoes is closed with 1008 once\n"
      "  max(64 MiB, 4 x --max-message) of echoes wait for it.\n"
      "\nCompression and TLS:\n"
      "  permessage-deflate (RFC 7692) is accepted when a client offers it, unless\n"
      "  --no-compress; echoes to such a client are compressed from 64 bytes up.\n"
      "  --tls-cert/--tls-key serve wss:// (TLS 1.2+); with --tls-client-ca every client\n"
      "  must present a certificate issued by one of those CAs (mutual TLS).\n" +
      trace_help() +
      "\nSignals:\n"
      "  SIGINT/SIGTERM close every connection with 1001, wait at most 2 s for them, and\n"
      "  exit 0; a second signal exits at once.\n\n" +
      values_help() + "\n" + exit_codes_footer());
  cmd->add_option("--host", config.host, "Address to bind; 0.0.0.0 or :: for all interfaces")
      ->capture_default_str();
  cmd->add_option("--port", config.port, "TCP port; 0 picks a free one (printed when listening)")
      ->capture_default_str();
  cmd->add_option("--ping-interval", config.ping_interval,
                  "Send a keepalive PING this often (500ms, 1s, 2m, 1h; 0 disables)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--pong-timeout", config.pong_timeout,
                  "Close a connection (1006) that sends nothing for this long after a PING "
                  "(0 disables)")
      ->type_name("DUR")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--max-message", config.max_message,
                  "Largest message accepted, in bytes (K/M/G suffixes are 1024 multiples); "
                  "bigger ones close the connection with 1009")
      ->type_name("BYTES")
      ->check(bytes_check())
      ->capture_default_str();
  cmd->add_option("--max-connections", config.max_connections,
                  "Most open connections; upgrades beyond it get HTTP 503")
      ->type_name("N")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--subprotocol", config.subprotocols,
                  "A subprotocol the server speaks; repeat for several, in preference order")
      ->type_name("NAME")
      ->allow_extra_args(false);
  CLI::Option* cert =
      cmd->add_option("--tls-cert", config.tls_cert,
                      "Serve wss:// with this certificate (PEM, followed by its chain)")
          ->type_name("FILE")
          ->check(CLI::ExistingFile);
  cmd->add_option("--tls-key", config.tls_key,
                  "Private key of --tls-cert (PEM; default: read from --tls-cert)")
      ->type_name("FILE")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  cmd->add_option("--tls-client-ca", config.tls_client_ca,
                  "Require client certificates issued by the CAs in this PEM file")
      ->type_name("FILE")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  cmd->add_flag("--no-compress", config.no_compress,
                "Decline permessage-deflate even when a client offers it");
  add_trace_flags(cmd, config.trace, config.trace_file, config.verbose);
  return cmd;
}

int run_serve(const ServeConfig& config) {
  const TimePoint start = Clock::now();
  EventLoop loop;

  ServerOptions options;
  options.host = config.host;
  options.port = config.port;
  options.session.ping_interval = *parse_duration(config.ping_interval);
  options.session.pong_timeout = *parse_duration(config.pong_timeout);
  options.session.max_message_size = *parse_bytes(config.max_message);
  options.max_connections = config.max_connections;
  options.subprotocols = config.subprotocols;
  // The server cannot slow a sender down (it reads whatever arrives), so echoes wait here
  // until the client reads them: room for bursts of the largest messages, and a client that
  // keeps sending without reading is closed (1008) rather than having its echoes vanish.
  const std::uint64_t burst = options.session.max_message_size > (UINT64_MAX / 4)
                                  ? UINT64_MAX
                                  : options.session.max_message_size * 4;
  options.backpressure.limit = static_cast<std::size_t>(std::max(echo_buffer_floor, burst));
  options.backpressure.policy = BackpressurePolicy::close;
  if (!config.no_compress) options.extensions.push_back(std::make_shared<PerMessageDeflate>());
  if (!config.tls_cert.empty()) {
    options.tls = TlsServerOptions{.cert_file = config.tls_cert,
                                   .key_file = config.tls_key,
                                   .client_ca_file = config.tls_client_ca};
  }
  TraceOutput trace;
  std::string error;
  if (!trace.open(config.trace, config.trace_file, &error)) {
    print_error_line("error: " + error);
    return exit_failure;
  }

  Server server(loop, options);
  ServerBehavior echo;
  echo.on_message = [](const ConnectionPtr& c, MessageType type, ByteView payload) {
    c->send(type, payload);
  };
  server.route("*", std::move(echo));
  if (trace.enabled()) server.on_trace(trace.callback(start));
  if (config.verbose) server.on_log(stderr_logger());

  if (!server.listen(&error)) {
    print_error_line("error: " + error);
    return exit_failure;
  }
  print_error_line(std::string(options.tls ? "listening on wss://" : "listening on ws://") +
                   host_port_for_url(config.host, server.port()));

  bool shutting_down = false;
  SignalWatch signals(loop, [&](int) {
    if (shutting_down) return loop.stop();  // asked twice: do not wait for slow peers
    shutting_down = true;
    server.shutdown([&loop] { loop.stop(); });
  });
  loop.run();
  return exit_ok;
}

}  // namespace tether::cli
