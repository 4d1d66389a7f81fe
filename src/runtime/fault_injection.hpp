// Test-only fault injection into net::io_ops(): short transfers, EAGAIN, EINTR, ECONNRESET.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>

#include "runtime/socket.hpp"

namespace tether::net {

/// Per-call probabilities, each in [0, 1]; their sum should not exceed 1 (what is left over
/// is the chance of an untouched call). The same seed replays the same sequence of faults for
/// the same sequence of calls.
struct FaultConfig {
  std::uint64_t seed = 1;
  double eintr = 0.0;       // fail with EINTR, nothing transferred
  double eagain = 0.0;      // fail with EAGAIN, nothing transferred
  double econnreset = 0.0;  // fail with ECONNRESET (the next call may succeed again)
  double short_io = 0.0;    // transfer a random 1..n-1 bytes of the n asked for
  bool reads = true;        // inject into io_ops().read
  bool writes = true;       // inject into io_ops().writev
};

/// While alive, routes io_ops() through a seeded random fault generator that wraps the table
/// that was installed before it (normally the defaults), and puts that table back on
/// destruction. At most one may be alive at a time (a second one throws std::logic_error).
///
/// Create and destroy it while no other thread does I/O through io_ops(); in between, the
/// injected calls may come from any thread.
class FaultInjector {
 public:
  struct Stats {
    std::uint64_t calls = 0;  // every read/writev that went through the injector
    std::uint64_t eintr = 0;
    std::uint64_t eagain = 0;
    std::uint64_t econnreset = 0;
    std::uint64_t short_io = 0;
  };

  explicit FaultInjector(const FaultConfig& config);
  ~FaultInjector();
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  /// Pauses or resumes injection (calls pass straight through while disabled, uncounted).
  void set_enabled(bool enabled) noexcept { enabled_.store(enabled); }
  Stats stats() const;

 private:
  enum class Fault { none, eintr, eagain, econnreset, short_io };
  static ssize_t injected_read(int fd, void* buf, size_t n);
  static ssize_t injected_writev(int fd, const struct iovec* iov, int iovcnt);
  // Draws the fault for one call of `size` bytes; `short_size` gets the reduced size.
  Fault draw(std::size_t size, std::size_t& short_size);

  FaultConfig config_;
  IoOps previous_;
  std::atomic<bool> enabled_{true};
  mutable std::mutex mutex_;
  std::mt19937_64 rng_;  // guarded by mutex_
  Stats stats_;          // guarded by mutex_
};

}  // namespace tether::net
