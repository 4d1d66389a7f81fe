// Measuring for `tether bench` and `tether soak`: a latency histogram, the process's CPU time
// and resident memory, and the progress line shown on a terminal.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tether::cli {

/// Latencies in nanoseconds, HdrHistogram-style: exact below 128 ns, then 64 buckets per power
/// of two, so any percentile is within 1.6% of the true sample, in fixed memory (30 KiB) and
/// with an add() of a few instructions, which matters at a million messages per second.
class LatencyHistogram {
 public:
  void add(std::uint64_t ns) noexcept;
  void clear() noexcept;
  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  /// The value at percentile `p` (0..100), in nanoseconds; 0 when empty.
  std::uint64_t percentile(double p) const noexcept;

 private:
  static constexpr int sub_bits = 6;
  static constexpr int buckets = (64 - sub_bits + 1) << sub_bits;
  static int index(std::uint64_t v) noexcept;
  static std::uint64_t middle(int i) noexcept;

  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

/// User plus system CPU seconds of this process so far (getrusage).
double process_cpu_seconds() noexcept;
/// Resident set size of this process in KiB, from one read of /proc/self/statm (zeros if
/// unreadable), and the part of it that is anonymous memory (heap, stacks, the process's own
/// mappings), without the pages of the binary and libraries paged in the first time a path runs.
struct ResidentKib {
  std::uint64_t total = 0;
  std::uint64_t anonymous = 0;
};
ResidentKib resident_kib() noexcept;

/// A status line rewritten in place on a terminal (\r, then erase to the end of the line).
/// It never prints anything when stdout is not a terminal, so piped output stays clean.
class ProgressLine {
 public:
  ProgressLine();
  bool active() const noexcept { return active_; }
  void show(std::string_view text);
  /// Erases the line, so the report that follows starts on a clean one.
  void clear();

 private:
  bool active_ = false;
  bool shown_ = false;
};

/// "12.3" style formatting with a fixed number of decimals.
std::string fixed(double value, int decimals);

}  // namespace tether::cli
