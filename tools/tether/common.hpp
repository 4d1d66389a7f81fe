// Shared pieces of the `tether` command: exit codes, value parsing, trace and log printing,
// and termination signals as loop events.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tether/event_loop.hpp"
#include "tether/observe.hpp"
#include "tether/protocol.hpp"
#include "tether/tls.hpp"

namespace tether::cli {

/// The process exit codes; scripts and the outside checks depend on them.
enum ExitCode : int {
  exit_ok = 0,
  exit_failure = 1,  ///< closed abnormally, a runtime error (e.g. bind failed), or a bench or
                     ///< soak whose echoes failed verification
  exit_connect_failed = 2,  ///< refused, DNS, timeout, HTTP status, subprotocol refused, TLS
  exit_usage = 64,          ///< EX_USAGE from sysexits.h
};

/// The "Exit codes:" section of every help page.
std::string exit_codes_footer();
/// Help sections shared by the commands: the --trace/--verbose line formats, the value formats.
std::string trace_help();
std::string values_help();

/// "500ms", "1s", "2m", "1h", or "0" alone (disabled). A unit is required otherwise, so that
/// "30" cannot silently mean seconds to one reader and milliseconds to another.
std::optional<Duration> parse_duration(std::string_view text);
/// "1048576", "64K", "16M", "1G" (binary multiples; "KiB"/"MiB"/"GiB" also accepted). At least 1.
std::optional<std::uint64_t> parse_bytes(std::string_view text);

/// CLI11 checks built on the parsers above, so bad values are usage errors before anything runs.
CLI::Validator duration_check();
CLI::Validator bytes_check();
/// A duration above zero; the message suggests `example` (e.g. "10s").
CLI::Validator positive_duration_check(std::string example);
/// A ws:// or wss:// URL that parse_websocket_url accepts.
CLI::Validator websocket_url_check();

/// Where --trace and --trace-file send their lines. The file, when one is named, wins over
/// stderr ("instead"), so a trace can be kept apart from the errors a script looks at.
class TraceOutput {
 public:
  /// False with a one-line `error` when the file cannot be created.
  bool open(bool to_stderr, const std::string& file, std::string* error);
  bool enabled() const noexcept { return to_stderr_ || file_ != nullptr; }
  /// A callback writing format_trace() lines, or an empty one when tracing is off. It keeps
  /// the file open for as long as any copy of it lives.
  TraceCallback callback(TimePoint start) const;

 private:
  bool to_stderr_ = false;
  std::shared_ptr<std::FILE> file_;
};

/// --trace, --trace-file and --verbose, the same on every command.
void add_trace_flags(CLI::App* cmd, bool& trace, std::string& trace_file, bool& verbose);

/// The TLS flags of the client commands (connect, bench, soak).
struct TlsClientFlags {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure = false;
};
void add_tls_client_flags(CLI::App* cmd, TlsClientFlags& flags);
/// Fills `tls` from the flags; with --insecure prints insecure_warning() on stderr, on every
/// run, so that a script that disabled verification can never do so silently.
void apply_tls_client_flags(const TlsClientFlags& flags, TlsClientOptions& tls);
inline constexpr const char* insecure_warning =
    "warning: --insecure: TLS certificate verification is OFF; anyone on the path can read "
    "and alter this connection";
/// Help section on wss:// for the client commands.
std::string tls_client_help();

/// Whether stdout is a terminal: progress lines and pretty-printing are for people only.
bool stdout_is_tty();

/// Writes `line` plus a newline to stderr in a single write, so that lines from the loop
/// thread and the stdin thread never interleave mid-line.
void print_error_line(std::string_view line);

/// "12.345 7 -> TEXT fin=1 rsv1=0 masked=1 len=5 hello": seconds since `start`, connection id,
/// direction, opcode, header bits, length, then the first 32 payload bytes with everything but
/// printable ASCII (and the backslash) written as \xNN.
std::string format_trace(const TraceEvent& event, TimePoint start);
/// A trace callback printing format_trace() lines to stderr.
TraceCallback stderr_tracer(TimePoint start);
/// A log callback printing "log: LEVEL: message" lines to stderr.
LogCallback stderr_logger();

/// Lowercase hex of `bytes`, no separators.
std::string to_hex(ByteView bytes);
/// "host:port" for a URL, with the brackets an IPv6 address needs there.
std::string host_port_for_url(std::string_view host, std::uint16_t port);

/// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread started later) so
/// that they are only ever seen through a SignalWatch, never by an asynchronous handler.
/// Call first thing in main().
void block_termination_signals();

/// Delivers SIGINT/SIGTERM on the loop thread through a signalfd registered with the loop.
class SignalWatch final : public IoHandler {
 public:
  SignalWatch(EventLoop& loop, std::function<void(int signo)> on_signal);
  ~SignalWatch() override;
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  void on_io(std::uint32_t events) override;

 private:
  EventLoop& loop_;
  std::function<void(int)> on_signal_;
  int fd_ = -1;
};

}  // namespace tether::cli
