// The subcommands of `tether`: each registers its flags on the parent app and runs from them.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

namespace tether::cli {

/// Flags of `tether serve`; durations and sizes stay text until run (the checks have passed).
struct ServeConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9000;
  std::string ping_interval = "30s";
  std::string pong_timeout = "10s";
  std::string max_message = "16777216";
  std::size_t max_connections = 10000;
  std::vector<std::string> subprotocols;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  bool no_compress = false;
  bool trace = false;
  std::string trace_file;
  bool verbose = false;
};

/// Flags of `tether connect`.
struct ConnectConfig {
  std::string url;
  std::vector<std::string> headers;  ///< "Name: value"
  std::vector<std::string> subprotocols;
  std::string ping_interval = "30s";
  std::string pong_timeout = "10s";
  std::string connect_timeout = "10s";
  std::string max_message = "16777216";
  TlsClientFlags tls;
  bool compress = false;
  bool reconnect = false;
  bool json = false;
  std::string every;        ///< empty: send stdin lines instead
  std::string message;      ///< template of the --every messages
  std::uint64_t count = 0;  ///< 0: no limit
  bool trace = false;
  std::string trace_file;
  bool verbose = false;
};

/// Flags of `tether bench`.
struct BenchConfig {
  std::string url;
  unsigned connections = 1;
  std::string size = "64";
  unsigned in_flight = 1;
  std::string duration = "10s";
  std::string warmup = "1s";
  std::string payload = "binary";
  std::string connect_timeout = "10s";
  TlsClientFlags tls;
  bool compress = false;
  bool json = false;
  bool trace = false;
  std::string trace_file;
  bool verbose = false;
};

/// Flags of `tether soak`.
struct SoakConfig {
  std::string url;  ///< empty: an echo server of our own
  std::string duration = "10s";
  double rate = 100;
  std::string ping_interval = "1s";
  std::string pong_timeout = "5s";
  std::string connect_timeout = "10s";
  std::string settle = "0s";
  unsigned connections = 1;
  std::string payload = "json";
  std::string size = "64";
  TlsClientFlags tls;
  bool compress = false;
  bool json = false;
  bool trace = false;
  std::string trace_file;
  bool verbose = false;
};

CLI::App* add_serve_command(CLI::App& app, ServeConfig& config);
CLI::App* add_connect_command(CLI::App& app, ConnectConfig& config);
CLI::App* add_bench_command(CLI::App& app, BenchConfig& config);
CLI::App* add_soak_command(CLI::App& app, SoakConfig& config);

/// Each returns the process exit code (see ExitCode).
int run_serve(const ServeConfig& config);
int run_connect(const ConnectConfig& config);
int run_bench(const BenchConfig& config);
int run_soak(const SoakConfig& config);

}  // namespace tether::cli
