// How long one cache line takes to go from one CPU to another and back, in nanoseconds.
//
// Usage: core_pair_latency [--cpus A,B] [--seconds S]      (defaults 0,1 and 0.3)
//
// Prints one line, `roundtrip_ns=N`: the median of 10 ms samples taken over S seconds.
//
// Why a WebSocket benchmark needs this: on a virtual machine the host may place the two vCPUs
// next to each other (a round trip of about 50 ns here) or far apart (about 340 ns), and move
// them while a run goes on. A loopback echo benchmark with the server on one CPU and the load
// generator on the other pays that distance on every socket buffer, wake-up and epoll list
// the two CPUs share, so its message rate changes by a third with it. bench/peer_modes.sh
// runs this before and after every measured run, and compares servers only within one
// placement.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

bool pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

alignas(64) std::atomic<long> ball{0};
alignas(64) std::atomic<bool> done{false};

}  // namespace

int main(int argc, char** argv) {
  int cpu_a = 0, cpu_b = 1;
  double seconds = 0.3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--cpus") == 0 && i + 1 < argc) {
      if (std::sscanf(argv[++i], "%d,%d", &cpu_a, &cpu_b) != 2) {
        std::fprintf(stderr, "core_pair_latency: --cpus wants A,B\n");
        return 2;
      }
    } else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: core_pair_latency [--cpus A,B] [--seconds S]\n");
      return 2;
    }
  }

  // The partner returns every odd value it sees as the next even one.
  std::thread partner([cpu_b] {
    if (!pin(cpu_b)) return;
    for (;;) {
      long v = ball.load(std::memory_order_acquire);
      if (done.load(std::memory_order_relaxed)) return;
      if (v & 1) ball.store(v + 1, std::memory_order_release);
    }
  });
  if (!pin(cpu_a)) {
    std::fprintf(stderr, "core_pair_latency: cannot run on CPU %d\n", cpu_a);
    done = true;
    partner.join();
    return 1;
  }

  std::vector<double> samples;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  long v = 0;
  bool partner_alive = true;
  while (Clock::now() < end && partner_alive) {
    const auto t0 = Clock::now();
    long trips = 0;
    while (Clock::now() - t0 < std::chrono::milliseconds(10)) {
      // A bounded wait per trip: a partner that could not pin itself never answers.
      for (int k = 0; k < 64; ++k) {
        ball.store(v + 1, std::memory_order_release);
        // The clock is read once per 2^20 spins so that it stays out of what is measured.
        for (long spins = 1; ball.load(std::memory_order_acquire) != v + 2; ++spins) {
          if ((spins & 0xFFFFF) == 0 && Clock::now() - t0 > std::chrono::seconds(1)) {
            partner_alive = false;
            break;
          }
        }
        if (!partner_alive) break;
        v += 2;
        ++trips;
      }
      if (!partner_alive) break;
    }
    if (trips > 0)
      samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                        static_cast<double>(trips));
  }
  done = true;
  partner.join();
  if (!partner_alive) {
    std::fprintf(stderr, "core_pair_latency: CPU %d did not answer\n", cpu_b);
    return 1;
  }
  if (samples.empty()) {
    std::fprintf(stderr, "core_pair_latency: no sample in %g s (each takes 10 ms)\n", seconds);
    return 1;
  }
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  std::printf("roundtrip_ns=%.0f\n", samples[samples.size() / 2]);
  return 0;
}
