// The subcommands of `tether`: each registers its flags on the parent app and runs from them.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace tether::cli {

/// Flags of `tether serve`; durations and sizes stay text until run (the checks have passed).
struct ServeConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9000;
  std::string ping_interval = "30s";
  std::string pong_timeout = "10s";
  std::string max_message = "16777216";
  std::vector<std::string> subprotocols;
  bool trace = false;
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
  bool trace = false;
  bool verbose = false;
};

CLI::App* add_serve_command(CLI::App& app, ServeConfig& config);
CLI::App* add_connect_command(CLI::App& app, ConnectConfig& config);

/// Each returns the process exit code (see ExitCode).
int run_serve(const ServeConfig& config);
int run_connect(const ConnectConfig& config);

}  // namespace tether::cli
