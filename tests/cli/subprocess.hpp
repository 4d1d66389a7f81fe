// Test support for the `tether` command: a child process with its three standard streams on
// pipes, waited on with poll() and a hang bound, and always reaped.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace tether::cli_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// How long any wait may take before the test fails as hung. Never a timing assertion: a
/// passing run waits for output or exit, not for this.
inline constexpr Clock::duration hang_limit = 30s;

enum class Stream { out, err };

/// One running `tether` (or any program). The destructor ends it: stdin closed, SIGTERM, and
/// SIGKILL if it is still there after a grace period; then it is reaped.
class Child {
 public:
  /// Starts `argv` with stdin on a pipe (or /dev/null when `pipe_stdin` is false).
  Child(std::vector<std::string> argv, bool pipe_stdin = true) {
    // A child that exits while we write to its stdin must fail the write, not kill the test.
    ::signal(SIGPIPE, SIG_IGN);
    int in[2] = {-1, -1}, out[2], err[2];
    if (pipe_stdin && ::pipe2(in, O_CLOEXEC) != 0) throw_errno("pipe2");
    if (!pipe_stdin && (in[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
      throw_errno("open /dev/null");
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw_errno("pipe2");

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    // The child starts with default signal handling whatever the test runner left behind.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    stdin_ = in[1];
    out_.fd = out[0];
    err_.fd = err[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error(std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc));
    }
    // Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link it.
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }

  ~Child() {
    close_stdin();
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGTERM);
      if (!wait_exit(5s)) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
      }
    }
    for (int fd : {out_.fd, err_.fd, pidfd_})
      if (fd >= 0) ::close(fd);
  }

  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signo) {
    if (pid_ > 0 && !status_) ::kill(pid_, signo);
  }

  /// Writes all of `data` to the child's stdin (small inputs: the pipe buffer holds them).
  void write_stdin(std::string_view data) {
    while (!data.empty() && stdin_ >= 0) {
      ssize_t n = ::write(stdin_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("write to child's stdin");
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void close_stdin() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
  }

  /// Waits for a whole line of `stream` satisfying `match`; nullopt if the child ends
  /// without printing one, or on the hang bound.
  std::optional<std::string> wait_line(Stream stream,
                                       const std::function<bool(std::string_view)>& match,
                                       Clock::duration limit = hang_limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      for (const std::string& line : lines(stream))
        if (match(line)) return line;
      if (done() || !pump(deadline)) return std::nullopt;
    }
  }
  std::optional<std::string> wait_line_containing(Stream stream, std::string_view text,
                                                  Clock::duration limit = hang_limit) {
    return wait_line(
        stream, [&](std::string_view line) { return line.find(text) != std::string_view::npos; },
        limit);
  }

  /// Waits for the exit, collecting output meanwhile: the exit code, 128 + signal number for
  /// a signal, nullopt on the hang bound.
  std::optional<int> wait_exit(Clock::duration limit = hang_limit) {
    const auto deadline = Clock::now() + limit;
    while (!done())
      if (!pump(deadline)) return std::nullopt;
    if (WIFEXITED(*status_)) return WEXITSTATUS(*status_);
    return 128 + WTERMSIG(*status_);
  }

  const std::string& out() const { return out_.data; }
  const std::string& err() const { return err_.data; }
  /// The complete lines of a stream so far (a last line without newline is not included).
  std::vector<std::string> lines(Stream stream) const {
    const std::string& data = stream == Stream::out ? out_.data : err_.data;
    std::vector<std::string> result;
    std::size_t begin = 0;
    for (std::size_t nl; (nl = data.find('\n', begin)) != std::string::npos; begin = nl + 1)
      result.push_back(data.substr(begin, nl - begin));
    return result;
  }

 private:
  struct Pipe {
    int fd = -1;
    std::string data;
    bool eof = false;
  };

  [[noreturn]] static void throw_errno(const char* what) {
    throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
  }

  // Exited, and everything it wrote has been read.
  bool done() const { return status_ && out_.eof && err_.eof; }

  void reap() {
    if (status_) return;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) status_ = status;
  }

  // One poll round: reads what is there, notices the exit. False once `deadline` passed.
  bool pump(Clock::time_point deadline) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd fds[3];
    nfds_t n = 0;
    Pipe* pipes[3] = {};
    for (Pipe* p : {&out_, &err_}) {
      if (p->eof) continue;
      pipes[n] = p;
      fds[n++] = {p->fd, POLLIN, 0};
    }
    const bool watch_exit = !status_ && pidfd_ >= 0;
    if (watch_exit) fds[n++] = {pidfd_, POLLIN, 0};
    // Without a pidfd (old kernels) the exit is noticed by polling waitpid now and then.
    int timeout = static_cast<int>(pidfd_ >= 0 ? left : std::min<long long>(left, 10));
    int ready = ::poll(fds, n, timeout);
    if (ready < 0 && errno != EINTR) throw_errno("poll");
    for (nfds_t i = 0; i < n; ++i) {
      if (pipes[i] == nullptr || fds[i].revents == 0) continue;
      char buf[65536];
      ssize_t got = ::read(pipes[i]->fd, buf, sizeof buf);
      if (got > 0) {
        pipes[i]->data.append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        pipes[i]->eof = true;
      }
    }
    reap();
    return true;
  }

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_ = -1;
  Pipe out_, err_;
  std::optional<int> status_;
};

}  // namespace tether::cli_test
