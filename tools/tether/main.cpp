// `tether`: a WebSocket echo server, a line-oriented client for the terminal and scripts, and
// the load (bench) and endurance (soak) tests that run against any echo server.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "common.hpp"

#ifndef TETHER_VERSION
#define TETHER_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  using namespace tether::cli;
  // Before any thread exists, so that every thread inherits the mask.
  block_termination_signals();

  CLI::App app{"tether " TETHER_VERSION
               " - WebSocket (RFC 6455) echo server, client, benchmark and soak test",
               "tether"};
  app.footer(exit_codes_footer());
  app.require_subcommand(1);
  app.set_version_flag("--version", TETHER_VERSION);
  ServeConfig serve;
  ConnectConfig connect;
  BenchConfig bench;
  SoakConfig soak;
  CLI::App* serve_cmd = add_serve_command(app, serve);
  CLI::App* connect_cmd = add_connect_command(app, connect);
  CLI::App* bench_cmd = add_bench_command(app, bench);
  CLI::App* soak_cmd = add_soak_command(app, soak);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and --version end with 0; every other parse error is a usage error, whatever
    // CLI11's own code for it (105 for a failed check...), so scripts see one number.
    const int code = app.exit(e);
    return code == 0 ? exit_ok : exit_usage;
  }

  try {
    if (serve_cmd->parsed()) return run_serve(serve);
    if (connect_cmd->parsed()) return run_connect(connect);
    if (bench_cmd->parsed()) return run_bench(bench);
    if (soak_cmd->parsed()) return run_soak(soak);
  } catch (const std::exception& e) {
    print_error_line(std::string("error: ") + e.what());
    return exit_failure;
  }
  return exit_usage;
}
