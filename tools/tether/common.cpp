#include "common.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "tether/client.hpp"
#include "tether/frame_codec.hpp"

namespace tether::cli {

std::string exit_codes_footer() {
  return "Exit codes:\n"
         "  0   success: a clean close (stdin EOF, --count reached, server closed with\n"
         "      1000/1001/no code), the server stopped by SIGINT/SIGTERM, or a bench or\n"
         "      soak in which every echo was verified\n"
         "  1   closed abnormally or runtime error (other close code, lost connection,\n"
         "      protocol error, cannot listen, cannot create the trace file); bench and\n"
         "      soak: any error, or an echo lost, corrupted or not verified\n"
         "  2   connection or handshake failure (refused, DNS, timeout, HTTP status,\n"
         "      subprotocol refused, TLS certificate verification failed)\n"
         "  64  usage error (unknown command or flag, missing or invalid value)";
}

std::string trace_help() {
  return "\nTrace and logs (stderr):\n"
         "  --trace: one line per frame in or out:\n"
         "    SECONDS CONN_ID ->|<- OPCODE fin=F rsv1=R masked=M len=N PAYLOAD\n"
         "  e.g. '12.345 1 -> TEXT fin=1 rsv1=0 masked=1 len=5 hello': seconds since start,\n"
         "  '->' out and '<-' in, OPCODE one of TEXT BINARY CONT PING PONG CLOSE, and the\n"
         "  first 32 payload bytes with all but printable ASCII (and '\\') as \\xNN.\n"
         "  --trace-file F: the same lines into file F instead of stderr.\n"
         "  --verbose: the library's log lines, 'log: LEVEL: message'.\n";
}

std::string values_help() {
  return "Values:\n"
         "  DUR    a number with a unit: 500ms, 1s, 2m, 1h; or 0 alone (disabled)\n"
         "  BYTES  a positive number of bytes, optionally with K, M or G (1024 multiples)\n";
}

namespace {

// Digits then the rest; nullopt when there are no digits or the number overflows.
std::optional<std::pair<std::uint64_t, std::string_view>> split_number(std::string_view text) {
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr == text.data()) return std::nullopt;
  return std::pair{value, text.substr(static_cast<std::size_t>(ptr - text.data()))};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

std::optional<std::uint64_t> checked_multiply(std::uint64_t value, std::uint64_t unit,
                                              std::uint64_t max) {
  if (value > max / unit) return std::nullopt;
  return value * unit;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  if (text == "0") return Duration(0);
  auto parts = split_number(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  static constexpr std::pair<std::string_view, std::uint64_t> units[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}};
  std::uint64_t ms_per_unit = 0;
  for (auto [name, ms] : units)
    if (unit == name) ms_per_unit = ms;
  if (ms_per_unit == 0) return std::nullopt;
  // Far beyond any sensible timeout, and still far from overflowing time_point arithmetic.
  constexpr std::uint64_t max_ms = std::uint64_t{1} << 40;
  auto ms = checked_multiply(value, ms_per_unit, max_ms);
  if (!ms) return std::nullopt;
  return Duration(static_cast<Duration::rep>(*ms));
}

std::optional<std::uint64_t> parse_bytes(std::string_view text) {
  auto parts = split_number(text);
  if (!parts) return std::nullopt;
  auto [value, suffix] = *parts;
  std::uint64_t unit = 1;
  if (!suffix.empty()) {
    // "K", "M", "G", or the same with "iB", in either case.
    const char letter = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
    const std::size_t shift = letter == 'K' ? 10 : letter == 'M' ? 20 : letter == 'G' ? 30 : 0;
    std::string_view rest = suffix.substr(1);
    if (shift == 0 || (!rest.empty() && !iequals(rest, "iB"))) return std::nullopt;
    unit = std::uint64_t{1} << shift;
  }
  auto bytes = checked_multiply(value, unit, std::numeric_limits<std::uint64_t>::max());
  if (!bytes || *bytes == 0) return std::nullopt;
  return bytes;
}

CLI::Validator duration_check() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (parse_duration(value)) return {};
        return "invalid duration '" + value +
               "': use a number with a unit (500ms, 1s, 2m, 1h), or 0 to disable";
      },
      "");
}

CLI::Validator bytes_check() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (parse_bytes(value)) return {};
        return "invalid size '" + value + "': use a positive number of bytes, optionally " +
               "with K, M or G (1024 multiples), e.g. 16M";
      },
      "");
}

CLI::Validator positive_duration_check(std::string example) {
  return CLI::Validator(
      [example = std::move(example)](std::string& value) -> std::string {
        auto d = parse_duration(value);
        if (d && d->count() > 0) return {};
        return "invalid duration '" + value + "': use a positive duration, e.g. " + example;
      },
      "");
}

CLI::Validator websocket_url_check() {
  return CLI::Validator(
      [](std::string& url) -> std::string {
        std::string error;
        return parse_websocket_url(url, &error) ? std::string() : error;
      },
      "");
}

void add_trace_flags(CLI::App* cmd, bool& trace, std::string& trace_file, bool& verbose) {
  cmd->add_flag("--trace", trace, "Print every frame in and out on stderr");
  cmd->add_option("--trace-file", trace_file,
                  "Write the --trace lines to this file instead of stderr (created or truncated)")
      ->type_name("FILE");
  cmd->add_flag("--verbose", verbose, "Print the library's log lines on stderr");
}

bool TraceOutput::open(bool to_stderr, const std::string& file, std::string* error) {
  to_stderr_ = to_stderr && file.empty();
  if (file.empty()) return true;
  std::FILE* f = std::fopen(file.c_str(), "we");
  if (f == nullptr) {
    *error = "cannot create trace file '" + file + "': " + std::strerror(errno);
    return false;
  }
  // Line-buffered, so that someone following the file (tail -f) sees each frame at once and a
  // process that dies mid-run leaves whole lines behind.
  std::setvbuf(f, nullptr, _IOLBF, 1 << 16);
  file_.reset(f, [](std::FILE* p) { std::fclose(p); });
  return true;
}

TraceCallback TraceOutput::callback(TimePoint start) const {
  if (file_) {
    return [start, file = file_](const TraceEvent& event) {
      std::string line = format_trace(event, start);
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), file.get());
    };
  }
  if (to_stderr_) return stderr_tracer(start);
  return {};
}

void add_tls_client_flags(CLI::App* cmd, TlsClientFlags& flags) {
  cmd->add_option("--ca", flags.ca_file,
                  "wss://: trust the CAs in this PEM file instead of the system store")
      ->type_name("FILE")
      ->check(CLI::ExistingFile);
  CLI::Option* cert =
      cmd->add_option("--cert", flags.cert_file,
                      "wss://: client certificate (PEM) for servers that require one")
          ->type_name("FILE")
          ->check(CLI::ExistingFile);
  cmd->add_option("--key", flags.key_file,
                  "wss://: private key of --cert (PEM; default: in --cert)")
      ->type_name("FILE")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  cmd->add_flag("--insecure", flags.insecure,
                "wss://: do not verify the server's certificate (local tests only; "
                "prints a warning every time)");
}

void apply_tls_client_flags(const TlsClientFlags& flags, TlsClientOptions& tls) {
  tls.ca_file = flags.ca_file;
  tls.cert_file = flags.cert_file;
  tls.key_file = flags.key_file;
  tls.verify = !flags.insecure;
  if (flags.insecure) print_error_line(insecure_warning);
}

std::string tls_client_help() {
  return "\nTLS (wss:// URLs):\n"
         "  The server's certificate is verified against the system trust store, or\n"
         "  against --ca FILE, and must name the URL's host. A failed verification ends\n"
         "  with one line, e.g. 'error: TLS: certificate verify failed: ... (unknown CA)',\n"
         "  and exit code 2. --insecure skips the verification and prints a warning line\n"
         "  on stderr on every run. --cert/--key present a client certificate (mutual TLS).\n";
}

bool stdout_is_tty() {
  return ::isatty(STDOUT_FILENO) == 1;
}

void print_error_line(std::string_view line) {
  std::string out(line);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
}

std::string format_trace(const TraceEvent& event, TimePoint start) {
  const double seconds = std::max(0.0, std::chrono::duration<double>(event.time - start).count());
  char head[160];
  std::snprintf(head, sizeof head, "%.3f %llu %s %.*s fin=%d rsv1=%d masked=%d len=%llu", seconds,
                static_cast<unsigned long long>(event.connection_id), event.outgoing ? "->" : "<-",
                static_cast<int>(opcode_name(event.header.opcode).size()),
                opcode_name(event.header.opcode).data(), event.header.fin ? 1 : 0,
                event.header.rsv1 ? 1 : 0, event.header.masked ? 1 : 0,
                static_cast<unsigned long long>(event.header.length));
  std::string line = head;
  ByteView shown = event.payload_head.first(std::min<std::size_t>(event.payload_head.size(), 32));
  if (!shown.empty()) line += ' ';
  for (std::byte b : shown) {
    auto c = static_cast<unsigned char>(b);
    // The backslash is escaped too, so that "\x41" in the output always means one byte.
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      line += static_cast<char>(c);
    } else {
      char esc[5];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      line += esc;
    }
  }
  return line;
}

TraceCallback stderr_tracer(TimePoint start) {
  return [start](const TraceEvent& event) { print_error_line(format_trace(event, start)); };
}

LogCallback stderr_logger() {
  return [](LogLevel level, std::string_view message) {
    print_error_line("log: " + std::string(log_level_name(level)) + ": " + std::string(message));
  };
}

std::string to_hex(ByteView bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::byte b : bytes) {
    auto c = static_cast<unsigned>(b);
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

std::string host_port_for_url(std::string_view host, std::uint16_t port) {
  std::string h =
      host.find(':') != std::string_view::npos ? "[" + std::string(host) + "]" : std::string(host);
  return h + ":" + std::to_string(port);
}

void block_termination_signals() {
  // A parent may have left them ignored (background jobs of a non-interactive shell get
  // SIGINT ignored); an ignored signal is discarded and would never reach the signalfd.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

SignalWatch::SignalWatch(EventLoop& loop, std::function<void(int)> on_signal)
    : loop_(loop), on_signal_(std::move(on_signal)) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
  loop_.add_fd(fd_, EventLoop::readable, this);
}

SignalWatch::~SignalWatch() {
  loop_.remove_fd(fd_);
  ::close(fd_);
}

void SignalWatch::on_io(std::uint32_t) {
  signalfd_siginfo info;
  while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    on_signal_(static_cast<int>(info.ssi_signo));
  }
}

}  // namespace tether::cli
