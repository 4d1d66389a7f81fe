#include "stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "common.hpp"

namespace tether::cli {

int LatencyHistogram::index(std::uint64_t v) noexcept {
  if (v < (2u << sub_bits)) return static_cast<int>(v);
  const int msb = 63 - __builtin_clzll(v);
  const int shift = msb - sub_bits;
  return (shift << sub_bits) + static_cast<int>(v >> shift);
}

std::uint64_t LatencyHistogram::middle(int i) noexcept {
  if (i < (2 << sub_bits)) return static_cast<std::uint64_t>(i);
  const int shift = (i >> sub_bits) - 1;
  const auto mantissa = static_cast<std::uint64_t>(i - (shift << sub_bits));
  return (mantissa << shift) + ((std::uint64_t{1} << shift) >> 1);
}

void LatencyHistogram::add(std::uint64_t ns) noexcept {
  ++counts_[static_cast<std::size_t>(index(ns))];
  ++count_;
  max_ = std::max(max_, ns);
}

void LatencyHistogram::clear() noexcept {
  counts_.fill(0);
  count_ = 0;
  max_ = 0;
}

std::uint64_t LatencyHistogram::percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(count_));
  rank = std::min(rank, count_ - 1);
  std::uint64_t seen = 0;
  for (int i = 0; i < buckets; ++i) {
    seen += counts_[static_cast<std::size_t>(i)];
    // A bucket's middle can lie above the largest sample in it; the maximum is exact.
    if (seen > rank) return std::min(middle(i), max_);
  }
  return max_;
}

double process_cpu_seconds() noexcept {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

ResidentKib resident_kib() noexcept {
  // statm: size, resident and shared (file-backed and shmem) pages.
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) return {};
  unsigned long long size = 0, resident = 0, shared = 0;
  const int n = std::fscanf(f, "%llu %llu %llu", &size, &resident, &shared);
  std::fclose(f);
  if (n != 3) return {};
  const auto page_kib = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) / 1024;
  return {resident * page_kib, (resident >= shared ? resident - shared : 0) * page_kib};
}

ProgressLine::ProgressLine() : active_(stdout_is_tty()) {}

void ProgressLine::show(std::string_view text) {
  if (!active_) return;
  std::string line = "\r";
  line += text;
  line += "\033[K";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
  shown_ = true;
}

void ProgressLine::clear() {
  if (!active_ || !shown_) return;
  std::fputs("\r\033[K", stdout);
  std::fflush(stdout);
  shown_ = false;
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

}  // namespace tether::cli
