// One epoll loop per thread: file descriptors, timers, cross-thread work, end-of-turn flushes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "tether/protocol.hpp"

namespace tether {

/// Something that owns a file descriptor registered with an EventLoop.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  /// Readiness for the registered fd. `events` is a mask of EventLoop::readable/writable/
  /// hangup/error.
  virtual void on_io(std::uint32_t events) = 0;
};

/// Work for the end of a loop turn, queued without allocating (see EventLoop::at_end_of_turn).
class TurnTask {
 public:
  virtual ~TurnTask() = default;
  virtual void on_end_of_turn() = 0;
};

/// Work for a timer, held by a weak reference (see EventLoop::call_at): arming it allocates
/// nothing, where a std::function capturing a weak_ptr would.
class TimerTask {
 public:
  virtual ~TimerTask() = default;
  virtual void on_timer() = 0;
};

/// An epoll event loop. All members except post(), stop() and is_loop_thread() must be called
/// on the loop's thread (the thread inside run()), or before run() starts.
///
/// Each turn: wait for readiness (bounded by the next timer), dispatch I/O (until the turn has
/// read turn_read_budget; the rest is served next turn, before waiting again), run expired
/// timers, run work posted from other threads, then run the end-of-turn callbacks, where
/// connections flush everything they queued during the turn in one write (corking).
class EventLoop {
 public:
  static constexpr std::uint32_t readable = 1u << 0;
  static constexpr std::uint32_t writable = 1u << 1;
  static constexpr std::uint32_t hangup = 1u << 2;
  static constexpr std::uint32_t error = 1u << 3;
  /// With add_fd/modify_fd: edge-triggered (EPOLLET). A readiness is reported once when it
  /// arises, so the handler must read until a short read or EAGAIN, and call modify_fd to be
  /// told again about data it chose to leave. Ready descriptors are then served in the order
  /// they became ready; level triggering puts the ones of the last turn first.
  static constexpr std::uint32_t edge = 1u << 4;

  using TimerId = std::uint64_t;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Runs until stop(). Returns at once if stop() was already called. Each stop() ends one
  /// run(), so the loop can be run again afterwards.
  void run();
  /// Makes run() return after the current turn. Any thread.
  void stop();
  /// Runs `fn` on the loop thread during a later turn, in posting order. Any thread.
  void post(std::function<void()> fn);
  /// Whether the calling thread is the one inside run(). False for every thread while run() is
  /// not active, so the library's any-thread calls post their work to the next run() then.
  bool is_loop_thread() const noexcept;

  /// Time read once per turn (steady clock), so every handler of a turn sees the same now.
  TimePoint now() const noexcept { return now_; }

  /// Calls `fn` once at or after `when`. Cancelled timers never fire.
  TimerId call_at(TimePoint when, std::function<void()> fn);
  TimerId call_after(Duration delay, std::function<void()> fn) {
    return call_at(now_ + delay, std::move(fn));
  }
  /// Calls `task->on_timer()` once at or after `when`, unless the task is gone by then.
  TimerId call_at(TimePoint when, std::weak_ptr<TimerTask> task);
  TimerId call_after(Duration delay, std::weak_ptr<TimerTask> task) {
    return call_at(now_ + delay, std::move(task));
  }
  /// Cancels a pending timer; a fired or unknown id is ignored.
  void cancel(TimerId id) noexcept;

  /// Registers `fd` for `events` (readable/writable, plus `edge`). Level-triggered unless
  /// `edge` is given: a handler that leaves data unread is called again next turn. modify_fd
  /// also re-reports a readiness that is still there, in both modes.
  void add_fd(int fd, std::uint32_t events, IoHandler* handler);
  void modify_fd(int fd, std::uint32_t events, IoHandler* handler);
  /// Unregisters `fd`; no further on_io() for it, even later in the current turn.
  void remove_fd(int fd) noexcept;

  /// Calls `fn` once at the end of the current turn (or of the next one, from outside a
  /// turn). Used to flush writes once per turn.
  void at_end_of_turn(std::function<void()> fn);
  /// The same for a task kept alive until it ran; queuing it never allocates in steady state
  /// (a std::function holding a shared_ptr would), which matters on the per-message path.
  void at_end_of_turn(std::shared_ptr<TurnTask> task);

  /// Bytes a turn reads before it ends early: the replies to what it read (corked until the
  /// end of the turn) then leave before more is read, and the ready fds not served yet go
  /// first in the next turn. Each large message gets a turn of its own; small ones share one.
  static constexpr std::size_t turn_read_budget = 64 * 1024;
  /// Counts `bytes` read by a handler against this turn's budget. Loop thread.
  void note_read(std::size_t bytes) noexcept;

  /// Number of registered fds (for tests and stats).
  std::size_t fd_count() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  TimePoint now_;
};

}  // namespace tether
