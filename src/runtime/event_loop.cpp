// EventLoop on Linux epoll (level-triggered unless a registration asks for edges) with an
// eventfd for cross-thread wake-ups.
#include "tether/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace tether {

namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::uint32_t to_epoll(std::uint32_t events) noexcept {
  std::uint32_t out = 0;
  // EPOLLRDHUP only with read interest: a half-closed peer stays "hung up" forever under
  // level triggering, so a handler that paused reading would otherwise be woken every turn.
  if (events & EventLoop::readable) out |= EPOLLIN | EPOLLRDHUP;
  if (events & EventLoop::writable) out |= EPOLLOUT;
  if (events & EventLoop::edge) out |= EPOLLET;
  return out;
}

std::uint32_t from_epoll(std::uint32_t events) noexcept {
  std::uint32_t out = 0;
  if (events & EPOLLIN) out |= EventLoop::readable;
  if (events & EPOLLOUT) out |= EventLoop::writable;
  if (events & (EPOLLHUP | EPOLLRDHUP)) out |= EventLoop::hangup;
  if (events & EPOLLERR) out |= EventLoop::error;
  return out;
}

// A FIFO that keeps its storage. A std::deque frees and allocates a block every few dozen
// pushes even at a constant length, and a loop that runs a timer each millisecond would churn
// the heap through it.
template <typename T>
class ReusedQueue {
 public:
  bool empty() const noexcept { return head_ == items_.size(); }
  void push(T item) { items_.push_back(std::move(item)); }
  T pop() {
    T item = std::move(items_[head_++]);
    if (head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    }
    return item;
  }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace

struct EventLoop::Impl {
  struct Registration {
    IoHandler* handler = nullptr;
    std::uint32_t events = 0;
    // Carried in epoll_event.data so that an event read before a remove_fd()/add_fd() pair
    // reused the fd number within the same turn is recognised as stale.
    std::uint32_t generation = 0;
  };

  struct TimerEntry {
    TimePoint when;
    std::uint64_t seq;  // call order, which ids (slot and generation) do not follow
    TimerId id;
  };
  // std::*_heap builds a max-heap; "greater" puts the earliest deadline on top, and the call
  // order breaks ties so equal deadlines fire in call order.
  static bool later(const TimerEntry& a, const TimerEntry& b) noexcept {
    return a.when != b.when ? a.when > b.when : a.seq > b.seq;
  }

  // A timer's callback lives in a slot that later timers reuse, so arming one allocates
  // nothing once the loop has seen its busiest moment (a node-based map allocated a node per
  // timer: a thousand a second for a paced sender, and heap pages that came and went with
  // them). The id carries the slot and the slot's generation, so a fired or cancelled id
  // never reaches a later timer of the same slot.
  struct TimerSlot {
    std::function<void()> fn;
    std::weak_ptr<TimerTask> task;  // instead of fn: a weak reference, no capture to allocate
    std::uint32_t generation = 0;
    bool armed = false;
  };
  static TimerId timer_id(std::uint32_t slot, std::uint32_t generation) noexcept {
    return (std::uint64_t{generation} << 32) | slot;
  }
  bool is_armed(TimerId id) const noexcept {
    const auto index = static_cast<std::uint32_t>(id);
    return index < slots.size() && slots[index].armed &&
           slots[index].generation == static_cast<std::uint32_t>(id >> 32);
  }
  void disarm(std::uint32_t index) noexcept {
    TimerSlot& slot = slots[index];
    slot.fn = nullptr;  // what it captured (often a connection) goes now, not at its deadline
    slot.task.reset();
    slot.armed = false;
    --live_timers;
    free_slots.push_back(index);  // room reserved when the slot was made: cannot throw
  }
  TimerId arm(TimePoint when, std::function<void()> fn, std::weak_ptr<TimerTask> task) {
    if (free_slots.empty()) {
      if (slots.size() >= UINT32_MAX) throw std::length_error("EventLoop: too many timers");
      slots.emplace_back();
      try {
        free_slots.reserve(slots.capacity());  // so that disarm() never allocates
      } catch (...) {
        slots.pop_back();
        throw;
      }
      free_slots.push_back(static_cast<std::uint32_t>(slots.size() - 1));
    }
    // The last step that can throw, before any change; doubling, since reserve() gives exactly
    // what it is asked for.
    if (heap.size() == heap.capacity()) heap.reserve(std::max<std::size_t>(16, heap.size() * 2));
    const std::uint32_t index = free_slots.back();
    free_slots.pop_back();
    TimerSlot& slot = slots[index];
    slot.fn = std::move(fn);
    slot.task = std::move(task);
    slot.armed = true;
    if (++slot.generation == 0) slot.generation = 1;  // id 0 stays "no timer"
    ++live_timers;
    const TimerId id = timer_id(index, slot.generation);
    heap.push_back({when, next_timer_seq++, id});
    std::push_heap(heap.begin(), heap.end(), later);
    return id;
  }

  Impl() {
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) throw_errno("epoll_create1");
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
      int saved = errno;
      ::close(epoll_fd);
      throw std::system_error(saved, std::generic_category(), "eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_tag;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
      int saved = errno;
      ::close(wake_fd);
      ::close(epoll_fd);
      throw std::system_error(saved, std::generic_category(), "epoll_ctl(eventfd)");
    }
  }

  ~Impl() {
    ::close(wake_fd);
    ::close(epoll_fd);
  }

  void wake() noexcept {
    std::uint64_t one = 1;
    // Only EAGAIN (counter saturated) can fail here, and then a wake-up is pending anyway.
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  void drain_wake() noexcept {
    std::uint64_t value;
    [[maybe_unused]] ssize_t n = ::read(wake_fd, &value, sizeof value);
  }

  static std::uint64_t pack(int fd, std::uint32_t generation) noexcept {
    return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(fd);
  }

  // Cancelled timers leave their heap entry behind (finding it would cost O(n)); once those
  // outnumber the live ones, sweep them so a timer re-armed on every message (keepalive)
  // cannot grow the heap without bound. In place, so cancel() stays noexcept.
  void maybe_compact_heap() noexcept {
    if (heap.size() < 64 || heap.size() < 2 * live_timers) return;
    std::erase_if(heap, [this](const TimerEntry& e) { return !is_armed(e.id); });
    std::make_heap(heap.begin(), heap.end(), later);
  }

  void drop_cancelled_top() noexcept {
    while (!heap.empty() && !is_armed(heap.front().id)) {
      std::pop_heap(heap.begin(), heap.end(), later);
      heap.pop_back();
    }
  }

  int next_timeout_ms() noexcept {
    if (!due.empty() || !ready.empty() || !end_of_turn.empty() || !turn_tasks.empty()) return 0;
    drop_cancelled_top();
    if (heap.empty()) return -1;
    auto left = heap.front().when - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    // Rounded up: rounding down would wake the loop before the deadline, find nothing due
    // and spin with 0 ms timeouts until the clock catches up.
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
  }

  static constexpr std::uint64_t wake_tag = ~std::uint64_t{0};
  // Ready descriptors handled per turn. Replies are corked until the end of the turn, so the
  // first connection read waits for every other one of the batch: with 128, a loaded echo
  // server answered in one or two batch times (p90 at twice the p50). With 16, replies leave
  // after at most 16 reads. In A/B runs with wsload against `tether serve`, the p99 was lower
  // on `small` and `pipe`, and the `small` rate was lower in two runs of three
  // (bench/RESULTS.md, "The epoll batch").
  static constexpr int max_events = 16;

  int epoll_fd = -1;
  int wake_fd = -1;
  std::array<epoll_event, max_events> events{};
  // Events of the last epoll_wait not dispatched yet: a turn that read its budget ended early.
  int event_count = 0;
  int next_event = 0;
  std::size_t turn_read = 0;

  std::atomic<bool> stop_requested{false};
  // Default-constructed (no thread) while run() is not active.
  std::atomic<std::thread::id> loop_thread{};

  // Indexed by fd (the kernel hands out the lowest free numbers, so this stays dense): one
  // array access per event where a hash map chased a node, a cache miss per event when a
  // thousand connections are busy. A null handler marks a free entry.
  std::vector<Registration> fds;
  std::size_t fd_count = 0;
  Registration* find(int fd) noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds.size()) return nullptr;
    Registration& r = fds[static_cast<std::size_t>(fd)];
    return r.handler != nullptr ? &r : nullptr;
  }
  std::uint32_t next_generation = 1;

  std::vector<TimerEntry> heap;
  // The callbacks live in slots rather than in the heap so that cancel() releases whatever
  // they captured (often a connection) at once instead of at the original deadline.
  std::vector<TimerSlot> slots;
  std::vector<std::uint32_t> free_slots;
  std::size_t live_timers = 0;
  std::uint64_t next_timer_seq = 0;
  // Timers found expired at the start of the timer phase. Kept as a member so that timers
  // added while they run wait for the next turn (a 0 ms re-arm cannot starve the loop) and
  // so an exception escaping a callback loses none of the others.
  ReusedQueue<TimerId> due;

  std::mutex posted_mutex;
  std::vector<std::function<void()>> posted;  // guarded by posted_mutex
  ReusedQueue<std::function<void()>> ready;   // loop thread only

  ReusedQueue<std::function<void()>> end_of_turn;
  // Swapped with `running_tasks` each phase so both keep their capacity: no allocation.
  std::vector<std::shared_ptr<TurnTask>> turn_tasks;
  std::vector<std::shared_ptr<TurnTask>> running_tasks;
};

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()), now_(Clock::now()) {}

EventLoop::~EventLoop() = default;

void EventLoop::run() {
  Impl& s = *impl_;
  s.loop_thread.store(std::this_thread::get_id());
  // Whatever ends run() (stop() or an exception from a callback), the loop is reusable:
  // another run() starts fresh and other threads stop counting as the loop thread.
  struct Reset {
    EventLoop& loop;
    ~Reset() {
      // Timers armed between two runs are relative to now(); keep it close to the truth.
      loop.now_ = Clock::now();
      loop.impl_->stop_requested.store(false);
      loop.impl_->loop_thread.store(std::thread::id{});
    }
  } reset{*this};

  now_ = Clock::now();
  while (!s.stop_requested.load()) {
    // Descriptors left by a turn that ended early go first, before new readiness is collected:
    // under edge triggering they would not be reported again.
    if (s.next_event >= s.event_count) {
      int n = ::epoll_wait(s.epoll_fd, s.events.data(), Impl::max_events, s.next_timeout_ms());
      if (n < 0) {
        if (errno != EINTR) throw_errno("epoll_wait");
        n = 0;
      }
      s.event_count = n;
      s.next_event = 0;
    }
    now_ = Clock::now();

    s.turn_read = 0;
    while (s.next_event < s.event_count && s.turn_read < turn_read_budget) {
      const epoll_event ev = s.events[static_cast<std::size_t>(s.next_event++)];
      if (ev.data.u64 == Impl::wake_tag) {
        s.drain_wake();
        continue;
      }
      int fd = static_cast<int>(static_cast<std::uint32_t>(ev.data.u64));
      Impl::Registration* r = s.find(fd);
      if (r == nullptr || Impl::pack(fd, r->generation) != ev.data.u64) continue;
      // Interest may have been narrowed by an earlier handler of this turn.
      std::uint32_t mask = from_epoll(ev.events) & (r->events | hangup | error);
      if (mask != 0) r->handler->on_io(mask);  // last use of r: on_io may add an fd
    }

    while (!s.heap.empty() && s.heap.front().when <= now_) {
      s.due.push(s.heap.front().id);
      std::pop_heap(s.heap.begin(), s.heap.end(), Impl::later);
      s.heap.pop_back();
    }
    while (!s.due.empty()) {
      const TimerId id = s.due.pop();
      // Looked up only now: an earlier timer of this batch may have cancelled this one.
      if (!s.is_armed(id)) continue;
      const auto index = static_cast<std::uint32_t>(id);
      auto fn = std::move(s.slots[index].fn);
      std::shared_ptr<TimerTask> task = s.slots[index].task.lock();
      s.disarm(index);  // before the call, which may arm a timer in the same slot
      if (fn) {
        fn();
      } else if (task) {
        task->on_timer();
      }
    }

    {
      std::lock_guard lock(s.posted_mutex);
      for (auto& fn : s.posted) s.ready.push(std::move(fn));
      s.posted.clear();
    }
    // Tasks posted from here on land in `posted` and, since it is now empty, write the eventfd,
    // so the next epoll_wait returns at once and runs them next turn.
    while (!s.ready.empty()) s.ready.pop()();

    // Callbacks queued by end-of-turn callbacks (a flush that triggers another flush) still
    // belong to this turn.
    while (!s.end_of_turn.empty() || !s.turn_tasks.empty()) {
      while (!s.end_of_turn.empty()) s.end_of_turn.pop()();
      s.running_tasks.swap(s.turn_tasks);
      for (auto& task : s.running_tasks) task->on_end_of_turn();
      s.running_tasks.clear();
    }
  }
}

void EventLoop::stop() {
  impl_->stop_requested.store(true);
  impl_->wake();
}

void EventLoop::post(std::function<void()> fn) {
  bool was_empty;
  {
    std::lock_guard lock(impl_->posted_mutex);
    was_empty = impl_->posted.empty();
    impl_->posted.push_back(std::move(fn));
  }
  // A non-empty queue already has a wake-up pending (or is about to be taken by the loop),
  // so a burst of posts costs one eventfd write rather than one per task.
  if (was_empty) impl_->wake();
}

// Only the thread inside run(). Counting every thread as the owner while run() is not active
// raced: a thread started to run the loop may enter run() while another thread, told it was
// "the loop thread", touches the timers directly. Off the loop, work is posted instead.
bool EventLoop::is_loop_thread() const noexcept {
  return impl_->loop_thread.load() == std::this_thread::get_id();
}

EventLoop::TimerId EventLoop::call_at(TimePoint when, std::function<void()> fn) {
  return impl_->arm(when, std::move(fn), {});
}

EventLoop::TimerId EventLoop::call_at(TimePoint when, std::weak_ptr<TimerTask> task) {
  return impl_->arm(when, nullptr, std::move(task));
}

void EventLoop::cancel(TimerId id) noexcept {
  Impl& s = *impl_;
  if (!s.is_armed(id)) return;
  s.disarm(static_cast<std::uint32_t>(id));
  s.maybe_compact_heap();
}

void EventLoop::add_fd(int fd, std::uint32_t events, IoHandler* handler) {
  Impl& s = *impl_;
  if (fd < 0 || handler == nullptr)
    throw std::system_error(EINVAL, std::generic_category(), "add_fd");
  if (s.find(fd) != nullptr) throw std::system_error(EEXIST, std::generic_category(), "add_fd");
  const auto index = static_cast<std::size_t>(fd);
  if (index >= s.fds.size()) s.fds.resize(std::max(index + 1, s.fds.size() * 2));
  std::uint32_t generation = s.next_generation++;
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = Impl::pack(fd, generation);
  if (::epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("epoll_ctl(ADD)");
  s.fds[index] = Impl::Registration{handler, events, generation};
  ++s.fd_count;
}

void EventLoop::modify_fd(int fd, std::uint32_t events, IoHandler* handler) {
  Impl& s = *impl_;
  Impl::Registration* r = s.find(fd);
  if (r == nullptr) throw std::system_error(ENOENT, std::generic_category(), "modify_fd");
  Impl::Registration updated = *r;
  updated.events = events;
  if (updated.handler != handler) {
    // Events already read for the old handler must not reach the new one this turn.
    updated.handler = handler;
    updated.generation = s.next_generation++;
  }
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = Impl::pack(fd, updated.generation);
  if (::epoll_ctl(s.epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0) throw_errno("epoll_ctl(MOD)");
  *r = updated;
}

void EventLoop::remove_fd(int fd) noexcept {
  Impl& s = *impl_;
  Impl::Registration* r = s.find(fd);
  if (r == nullptr) return;
  *r = Impl::Registration{};
  --s.fd_count;
  // Fails harmlessly with EBADF when the caller already closed the fd, which also removed it
  // from the epoll set unless a duplicate of it is still open.
  ::epoll_ctl(s.epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::at_end_of_turn(std::shared_ptr<TurnTask> task) {
  impl_->turn_tasks.push_back(std::move(task));
}

void EventLoop::at_end_of_turn(std::function<void()> fn) {
  impl_->end_of_turn.push(std::move(fn));
}

void EventLoop::note_read(std::size_t bytes) noexcept {
  impl_->turn_read += bytes;
}

std::size_t EventLoop::fd_count() const noexcept {
  return impl_->fd_count;
}

}  // namespace tether
