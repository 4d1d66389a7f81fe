// EventLoop: cross-thread posting, stop, timers, end-of-turn ordering, fd dispatch rules.
#include "tether/event_loop.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "runtime/socket.hpp"

// Every operator new of this test binary is counted, so that a test can check that a loop in
// its steady state allocates nothing.
namespace {
std::atomic<std::uint64_t> allocations_made{0};
}  // namespace

void* operator new(std::size_t size) {
  allocations_made.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// Replaced as well so that the sanitizers, which check that what operator new gave goes to
// operator delete, see malloc and free on both sides. GCC cannot tell that this pair belongs
// together and warns that free() meets memory from operator new.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace tether {
namespace {

using namespace std::chrono_literals;

// Every test runs the loop under this bound so that a lost wake-up fails instead of hanging.
constexpr auto kWatchdog = 10s;

// Runs `loop` until something stops it; false if the watchdog had to.
[[nodiscard]] bool run_bounded(EventLoop& loop) {
  bool timed_out = false;
  auto id = loop.call_after(kWatchdog, [&] {
    timed_out = true;
    loop.stop();
  });
  loop.run();
  loop.cancel(id);
  return !timed_out;
}

class FnHandler : public IoHandler {
 public:
  std::function<void(std::uint32_t)> fn;
  void on_io(std::uint32_t events) override { fn(events); }
};

struct Pipe {
  net::Fd read_end;
  net::Fd write_end;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  void put(char c = 'x') { ASSERT_EQ(::write(write_end.get(), &c, 1), 1); }
  void take() {
    char c;
    ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
  }
};

TEST(EventLoop, StopBeforeRunReturnsAtOnceAndIsConsumed) {
  EventLoop loop;
  bool ran = false;
  loop.post([&] { ran = true; });
  loop.stop();
  loop.run();
  EXPECT_FALSE(ran);

  // The stop was used up by that run(): the next one works normally.
  loop.post([&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_TRUE(ran);
}

TEST(EventLoop, StopFromAnotherThread) {
  EventLoop loop;
  std::promise<void> running;
  loop.post([&] { running.set_value(); });
  std::thread stopper([&] {
    running.get_future().wait();
    loop.stop();
  });
  // Nothing else is scheduled but the watchdog, so only stop() can end this run early.
  bool stopped = run_bounded(loop);
  stopper.join();
  EXPECT_TRUE(stopped);
}

TEST(EventLoop, PostFromFourThreadsRunsEverythingOnLoopThreadInPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kTasks = 10000;
  EventLoop loop;
  const auto loop_thread = std::this_thread::get_id();
  std::array<int, kThreads> next{};
  int total = 0;
  bool in_order = true;
  bool on_loop_thread = true;

  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kTasks; ++i) {
        loop.post([&, t, i] {
          if (next[t] != i) in_order = false;
          next[t] = i + 1;
          if (std::this_thread::get_id() != loop_thread || !loop.is_loop_thread()) {
            on_loop_thread = false;
          }
          if (++total == kThreads * kTasks) loop.stop();
        });
      }
    });
  }
  bool stopped = run_bounded(loop);
  for (auto& p : posters) p.join();
  ASSERT_TRUE(stopped) << "ran " << total << " tasks";
  EXPECT_EQ(total, kThreads * kTasks);
  EXPECT_TRUE(in_order);
  EXPECT_TRUE(on_loop_thread);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kTasks);
}

TEST(EventLoop, IsLoopThreadOnlyForTheRunningThreadWhileRunning) {
  EventLoop loop;
  auto from_other_thread = [&] {
    bool result = false;
    std::thread([&] { result = loop.is_loop_thread(); }).join();
    return result;
  };
  // Before run() no thread is the loop thread: work from anywhere is posted to the run.
  EXPECT_FALSE(loop.is_loop_thread());
  EXPECT_FALSE(from_other_thread());

  bool inside_main = false;
  bool inside_other = true;
  loop.post([&] {
    inside_main = loop.is_loop_thread();
    inside_other = from_other_thread();
    loop.stop();
  });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_TRUE(inside_main);
  EXPECT_FALSE(inside_other);

  EXPECT_FALSE(loop.is_loop_thread());
  EXPECT_FALSE(from_other_thread());
}

TEST(EventLoop, PostFromLoopThreadRunsInALaterTurn) {
  EventLoop loop;
  std::vector<std::string> log;
  loop.post([&] {
    log.push_back("first");
    loop.post([&] {
      log.push_back("second");
      loop.stop();
    });
    loop.at_end_of_turn([&] { log.push_back("end of first turn"); });
    log.push_back("first done");
  });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(log, (std::vector<std::string>{"first", "first done", "end of first turn", "second"}));
}

TEST(EventLoop, TimersFireInDeadlineOrderAndNeverEarly) {
  EventLoop loop;
  const TimePoint base = loop.now();
  const std::array<int, 6> offsets_ms{30, 10, 20, 0, 10, 5};
  std::vector<int> fired;
  bool early = false;
  for (int i = 0; i < static_cast<int>(offsets_ms.size()); ++i) {
    TimePoint when = base + std::chrono::milliseconds(offsets_ms[i]);
    loop.call_at(when, [&, i, when] {
      fired.push_back(i);
      if (loop.now() < when || Clock::now() < when) early = true;
    });
  }
  // Same deadline as the last timer but armed later, so it fires after it.
  loop.call_at(base + 30ms, [&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  // Equal deadlines (indices 1 and 4) keep the order they were armed in.
  EXPECT_EQ(fired, (std::vector<int>{3, 5, 1, 4, 2, 0}));
  EXPECT_FALSE(early);
}

TEST(EventLoop, CallAfterIsRelativeToNowAndNotEarly) {
  EventLoop loop;
  bool early = false;
  int fired = 0;
  loop.post([&] {
    TimePoint armed = loop.now();
    loop.call_after(3ms, [&, armed] {
      ++fired;
      if (loop.now() < armed + 3ms) early = true;
      loop.stop();
    });
  });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(early);
}

TEST(EventLoop, CancelledTimerNeverFires) {
  EventLoop loop;
  bool cancelled_fired = false;
  auto id = loop.call_after(1ms, [&] { cancelled_fired = true; });
  loop.cancel(id);
  loop.cancel(id);     // twice: ignored
  loop.cancel(99999);  // unknown: ignored
  auto fired_id = loop.call_after(2ms, [] {});
  loop.call_after(5ms, [&] {
    loop.cancel(fired_id);  // already fired: ignored
    loop.stop();
  });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_FALSE(cancelled_fired);
}

TEST(EventLoop, TimerCancelledByAnEarlierTimerOfTheSameTurnDoesNotFire) {
  EventLoop loop;
  const TimePoint when = loop.now() + 2ms;
  EventLoop::TimerId second = 0;
  bool first_fired = false;
  bool second_fired = false;
  // Equal deadlines are due in the same turn and fire in arming order.
  loop.call_at(when, [&] {
    first_fired = true;
    loop.cancel(second);
  });
  second = loop.call_at(when, [&] { second_fired = true; });
  loop.call_at(when, [&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_TRUE(first_fired);
  EXPECT_FALSE(second_fired);
}

TEST(EventLoop, ManyCancelledTimersDoNotDisturbTheLiveOnes) {
  EventLoop loop;
  // The keepalive pattern: a far timer re-armed over and over.
  EventLoop::TimerId far = loop.call_after(1h, [] { FAIL() << "cancelled timer fired"; });
  std::vector<int> fired;
  for (int i = 0; i < 100000; ++i) {
    loop.cancel(far);
    far = loop.call_after(1h, [] { FAIL() << "cancelled timer fired"; });
    if (i % 20000 == 0) loop.call_after(1ms, [&fired, i] { fired.push_back(i); });
  }
  loop.cancel(far);
  loop.call_after(2ms, [&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(fired, (std::vector<int>{0, 20000, 40000, 60000, 80000}));
}

TEST(EventLoop, AnOldIdDoesNotCancelALaterTimerThatReusedItsSlot) {
  EventLoop loop;
  // A cancelled timer's slot goes to the next one armed; its id must not reach that one.
  auto cancelled = loop.call_after(1h, [] {});
  loop.cancel(cancelled);
  bool later_fired = false;
  auto later = loop.call_after(1ms, [&] { later_fired = true; });
  EXPECT_NE(later, cancelled);
  loop.cancel(cancelled);
  // The same with a fired timer's id, cancelled by the timer armed after it.
  EventLoop::TimerId fired = 0;
  bool rearmed_fired = false;
  fired = loop.call_after(2ms, [&] {
    auto rearmed = loop.call_after(1ms, [&] { rearmed_fired = true; });
    EXPECT_NE(rearmed, fired);
    loop.cancel(fired);
  });
  loop.call_after(10ms, [&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_TRUE(later_fired);
  EXPECT_TRUE(rearmed_fired);
}

TEST(EventLoop, EqualDeadlinesFireInArmingOrderWhateverSlotsTheyGot) {
  EventLoop loop;
  const TimePoint when = loop.now() + 2ms;
  std::vector<int> order;
  // Free some slots first, so that the later timers take slots below the earlier ones'.
  std::vector<EventLoop::TimerId> spare;
  for (int i = 0; i < 4; ++i) spare.push_back(loop.call_after(1h, [] {}));
  loop.call_at(when, [&] { order.push_back(0); });
  loop.call_at(when, [&] { order.push_back(1); });
  for (auto id : spare) loop.cancel(id);
  for (int i = 2; i < 6; ++i) loop.call_at(when, [&order, i] { order.push_back(i); });
  loop.call_at(when, [&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

struct CountingTask : TimerTask {
  int fired = 0;
  void on_timer() override { ++fired; }
};

TEST(EventLoop, TimerTaskFiresOnceWhileAliveAndNotOnceGone) {
  EventLoop loop;
  auto alive = std::make_shared<CountingTask>();
  auto gone = std::make_shared<CountingTask>();
  int gone_fired_before_reset = 0;
  loop.call_after(1ms, std::weak_ptr<TimerTask>(alive));
  loop.call_after(1ms, std::weak_ptr<TimerTask>(gone));
  auto cancelled = loop.call_after(1ms, std::weak_ptr<TimerTask>(alive));
  loop.cancel(cancelled);
  gone_fired_before_reset = gone->fired;
  std::weak_ptr<CountingTask> watch = gone;
  gone.reset();
  EXPECT_TRUE(watch.expired());  // the loop held no strong reference
  loop.call_after(5ms, [&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(alive->fired, 1);
  EXPECT_EQ(gone_fired_before_reset, 0);
}

// The loop of a paced sender: a timer each turn, a deadline re-armed each turn (keepalive),
// work posted to the loop and an end-of-turn flush. Once every container has reached its
// size, a thousand such turns allocate nothing: allocations that come and go keep moving
// the heap's resident pages, which shows as RSS drifting over a long run.
TEST(EventLoop, ASteadyLoopOfTimersPostsAndEndOfTurnWorkAllocatesNothing) {
  struct Steady : TimerTask {
    EventLoop* loop = nullptr;
    int turns = 0, posted = 0, ended = 0, deadlines = 0;
    EventLoop::TimerId keepalive = 0;
    std::uint64_t at_warm = 0, at_end = 0;
    std::weak_ptr<TimerTask> self;
    void on_timer() override { ++deadlines; }
    void tick() {
      ++turns;
      if (turns == 100) at_warm = allocations_made.load();
      if (turns == 1100) {
        at_end = allocations_made.load();
        loop->stop();
        return;
      }
      Steady* s = this;  // a pointer capture is stored inside the std::function
      loop->call_after(0ms, [s] { s->tick(); });
      loop->post([s] { ++s->posted; });
      loop->at_end_of_turn([s] { ++s->ended; });
      loop->cancel(keepalive);
      keepalive = loop->call_after(1h, self);
    }
  };
  EventLoop loop;
  auto steady = std::make_shared<Steady>();
  steady->loop = &loop;
  steady->self = steady;
  Steady* s = steady.get();
  loop.call_after(0ms, [s] { s->tick(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(steady->turns, 1100);
  EXPECT_GE(steady->posted, 1098);
  EXPECT_GE(steady->ended, 1098);
  EXPECT_EQ(steady->deadlines, 0);
  EXPECT_EQ(steady->at_end - steady->at_warm, 0u);
}

// Arming many timers grows the slot table and the deadline heap by doubling: a count of
// allocations that grows with the log of the timers, not one per timer.
TEST(EventLoop, ArmingTenThousandTimersAllocatesLogarithmicallyOften) {
  EventLoop loop;
  int fired = 0;
  int* counter = &fired;
  const std::uint64_t before = allocations_made.load();
  for (int i = 0; i < 10000; ++i) loop.call_after(1ms, [counter] { ++*counter; });
  const std::uint64_t made = allocations_made.load() - before;
  EXPECT_LT(made, 100u);
  loop.call_after(5ms, [&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(fired, 10000);
}

TEST(EventLoop, ZeroDelayTimerArmedByATimerWaitsForTheNextTurn) {
  EventLoop loop;
  int turns_seen = 0;
  int rearms = 0;
  std::function<void()> rearm = [&] {
    ++rearms;
    loop.call_after(0ms, rearm);
  };
  loop.call_after(0ms, rearm);
  // Posted work still runs between the re-arms; if the timer phase looped on the 0 ms timer,
  // this would never run.
  std::function<void()> count_turn = [&] {
    if (++turns_seen == 5) {
      loop.stop();
      return;
    }
    loop.post(count_turn);
  };
  loop.post(count_turn);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(turns_seen, 5);
  EXPECT_GE(rearms, 4);
  EXPECT_LE(rearms, 6);
}

TEST(EventLoop, EndOfTurnRunsAfterTheTurnsIoAndNestedOnesInTheSamePhase) {
  EventLoop loop;
  Pipe a, b;
  a.put();
  b.put();
  std::vector<std::string> log;
  FnHandler ha, hb;
  auto on_io = [&](Pipe& p) {
    p.take();
    log.push_back("io");
    if (log.size() == 1) {
      loop.at_end_of_turn([&] {
        log.push_back("end");
        loop.at_end_of_turn([&] {
          log.push_back("nested end");
          loop.post([&] {
            log.push_back("next turn");
            loop.stop();
          });
        });
      });
    }
  };
  ha.fn = [&](std::uint32_t) { on_io(a); };
  hb.fn = [&](std::uint32_t) { on_io(b); };
  loop.add_fd(a.read_end.get(), EventLoop::readable, &ha);
  loop.add_fd(b.read_end.get(), EventLoop::readable, &hb);
  // Both pipes are readable before the first epoll_wait, so both callbacks share one turn.
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(log, (std::vector<std::string>{"io", "io", "end", "nested end", "next turn"}));
  loop.remove_fd(a.read_end.get());
  loop.remove_fd(b.read_end.get());
}

// A handler that reads the turn's budget ends the turn: its end-of-turn work (the corked
// replies) runs before the other ready fd is served, and that fd, edge-triggered here, is
// still served once next turn although epoll will not report it again.
TEST(EventLoop, ATurnThatReadItsBudgetEndsAndTheRestAreServedNextTurn) {
  EventLoop loop;
  Pipe a;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  net::Fd b(sv[0]), b_writer(sv[1]);
  a.put();
  ASSERT_EQ(::write(b_writer.get(), "x", 1), 1);
  std::vector<std::string> log;
  FnHandler h;
  h.fn = [&](std::uint32_t) {
    log.push_back("io");
    if (log.size() == 1) {
      loop.note_read(EventLoop::turn_read_budget);
      loop.at_end_of_turn([&] { log.push_back("end"); });
    } else {
      loop.post([&] { loop.stop(); });
    }
  };
  loop.add_fd(a.read_end.get(), EventLoop::readable | EventLoop::edge, &h);
  loop.add_fd(b.get(), EventLoop::readable | EventLoop::edge, &h);
  // Both are ready before the first epoll_wait, so one call reports both.
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(log, (std::vector<std::string>{"io", "end", "io"}));
  loop.remove_fd(a.read_end.get());
  loop.remove_fd(b.get());
}

TEST(EventLoop, EndOfTurnQueuedBeforeRunDoesNotWaitForAnEvent) {
  EventLoop loop;
  bool ran = false;
  loop.at_end_of_turn([&] {
    ran = true;
    loop.stop();
  });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_TRUE(ran);
}

TEST(EventLoop, RemoveFdDuringATurnPreventsItsLaterDispatch) {
  EventLoop loop;
  Pipe a, b;
  a.put();
  b.put();
  int calls = 0;
  FnHandler ha, hb;
  // Whichever is dispatched first unregisters the other, whose event was already read.
  ha.fn = [&](std::uint32_t) {
    ++calls;
    loop.remove_fd(b.read_end.get());
    loop.remove_fd(a.read_end.get());
  };
  hb.fn = [&](std::uint32_t) {
    ++calls;
    loop.remove_fd(a.read_end.get());
    loop.remove_fd(b.read_end.get());
  };
  loop.add_fd(a.read_end.get(), EventLoop::readable, &ha);
  loop.add_fd(b.read_end.get(), EventLoop::readable, &hb);
  EXPECT_EQ(loop.fd_count(), 2u);
  loop.at_end_of_turn([&] { loop.stop(); });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(loop.fd_count(), 0u);
}

TEST(EventLoop, StaleEventIsNotDeliveredToAFdNumberReusedInTheSameTurn) {
  EventLoop loop;
  Pipe a, b;
  a.put();
  b.put();
  std::unique_ptr<Pipe> replacement;
  int first_calls = 0;
  int replacement_calls = 0;
  int reused_fd = -1;
  FnHandler ha, hb, hr;
  auto first = [&](Pipe& other) {
    ++first_calls;
    // Close the other pipe's read end; the next pipe gets its number (lowest free fd) and an
    // empty pipe, so any call for it this turn could only come from the stale event.
    reused_fd = other.read_end.get();
    loop.remove_fd(reused_fd);
    other.read_end.reset();
    replacement = std::make_unique<Pipe>();
    ASSERT_EQ(replacement->read_end.get(), reused_fd);
    loop.add_fd(replacement->read_end.get(), EventLoop::readable, &hr);
    loop.at_end_of_turn([&] { loop.stop(); });
  };
  ha.fn = [&](std::uint32_t) {
    if (first_calls == 0) first(b);
  };
  hb.fn = [&](std::uint32_t) {
    if (first_calls == 0) first(a);
  };
  hr.fn = [&](std::uint32_t) { ++replacement_calls; };
  loop.add_fd(a.read_end.get(), EventLoop::readable, &ha);
  loop.add_fd(b.read_end.get(), EventLoop::readable, &hb);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(first_calls, 1);
  EXPECT_EQ(replacement_calls, 0);
  for (Pipe* p : {&a, &b, replacement.get()}) {
    if (p->read_end) loop.remove_fd(p->read_end.get());
  }
  EXPECT_EQ(loop.fd_count(), 0u);
}

// Registrations are indexed by fd number: a handler that registers a much higher fd makes the
// table grow in the middle of dispatch, and the rest of the turn must still be delivered.
TEST(EventLoop, AnFdRegisteredDuringDispatchFarAboveTheOthersIsServedFromTheNextTurn) {
  EventLoop loop;
  Pipe a, b, far_pipe;
  net::Fd high(::fcntl(far_pipe.read_end.get(), F_DUPFD_CLOEXEC, 900));
  ASSERT_GE(high.get(), 900);
  a.put();
  b.put();
  far_pipe.put();
  int a_calls = 0, b_calls = 0, high_calls = 0;
  FnHandler ha, hb, hh;
  auto register_high = [&] {
    if (a_calls + b_calls == 1) loop.add_fd(high.get(), EventLoop::readable, &hh);
  };
  ha.fn = [&](std::uint32_t) {
    a.take();
    ++a_calls;
    register_high();
  };
  hb.fn = [&](std::uint32_t) {
    b.take();
    ++b_calls;
    register_high();
  };
  hh.fn = [&](std::uint32_t) {
    far_pipe.take();
    ++high_calls;
    loop.stop();
  };
  loop.add_fd(a.read_end.get(), EventLoop::readable, &ha);
  loop.add_fd(b.read_end.get(), EventLoop::readable, &hb);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(a_calls, 1);
  EXPECT_EQ(b_calls, 1);
  EXPECT_EQ(high_calls, 1);
  EXPECT_EQ(loop.fd_count(), 3u);
  loop.remove_fd(high.get());
  loop.remove_fd(high.get());  // twice: ignored
  loop.remove_fd(a.read_end.get());
  loop.remove_fd(b.read_end.get());
  EXPECT_EQ(loop.fd_count(), 0u);
}

TEST(EventLoop, LevelTriggeredHandlerIsCalledAgainWhileDataIsUnread) {
  EventLoop loop;
  Pipe p;
  p.put();
  int calls = 0;
  FnHandler h;
  h.fn = [&](std::uint32_t events) {
    EXPECT_TRUE(events & EventLoop::readable);
    if (++calls == 3) {
      p.take();
      loop.remove_fd(p.read_end.get());
      loop.stop();
    }
  };
  loop.add_fd(p.read_end.get(), EventLoop::readable, &h);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(calls, 3);
}

// Under `edge` a readiness is reported when it arises, not on every turn while it lasts; new
// data or a modify_fd reports it again. A socket, since a pipe's writes into a non-empty pipe
// need not wake its readers.
TEST(EventLoop, EdgeTriggeredHandlerIsCalledOncePerArrivalOrModify) {
  EventLoop loop;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  net::Fd reader(sv[0]), writer(sv[1]);
  auto put = [&] { ASSERT_EQ(::write(writer.get(), "x", 1), 1); };
  put();
  int calls = 0, turns = 0;
  FnHandler h;
  h.fn = [&](std::uint32_t events) {
    EXPECT_TRUE(events & EventLoop::readable);
    ++calls;  // reads nothing: the data stays
  };
  const std::uint32_t interest = EventLoop::readable | EventLoop::edge;
  loop.add_fd(reader.get(), interest, &h);
  // A zero-delay timer re-armed by itself runs once per turn: it counts the turns.
  std::function<void()> tick = [&] {
    ++turns;
    if (turns == 5) {
      EXPECT_EQ(calls, 1);
      put();
    } else if (turns == 10) {
      EXPECT_EQ(calls, 2);
      loop.modify_fd(reader.get(), interest, &h);
    } else if (turns == 15) {
      loop.remove_fd(reader.get());
      return loop.stop();
    }
    loop.call_after(0ms, tick);
  };
  loop.call_after(0ms, tick);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(calls, 3);
}

TEST(EventLoop, ModifyFdChangesInterest) {
  EventLoop loop;
  Pipe p;
  std::uint32_t seen = 0;
  FnHandler h;
  h.fn = [&](std::uint32_t events) {
    seen |= events;
    loop.remove_fd(p.write_end.get());
    loop.stop();
  };
  // No interest yet: an empty pipe's write end is writable, but must not be reported.
  loop.add_fd(p.write_end.get(), 0, &h);
  loop.post([&] {
    EXPECT_EQ(seen, 0u);
    loop.modify_fd(p.write_end.get(), EventLoop::writable, &h);
  });
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_EQ(seen, EventLoop::writable);
}

TEST(EventLoop, ClosedWriterIsReportedAsHangup) {
  EventLoop loop;
  Pipe p;
  p.write_end.reset();
  std::uint32_t seen = 0;
  FnHandler h;
  h.fn = [&](std::uint32_t events) {
    seen = events;
    loop.remove_fd(p.read_end.get());
    loop.stop();
  };
  loop.add_fd(p.read_end.get(), EventLoop::readable, &h);
  ASSERT_TRUE(run_bounded(loop));
  EXPECT_TRUE(seen & EventLoop::hangup);
}

TEST(EventLoop, AddingARegisteredFdOrModifyingAnUnknownOneThrows) {
  EventLoop loop;
  Pipe p;
  FnHandler h;
  h.fn = [](std::uint32_t) {};
  loop.add_fd(p.read_end.get(), EventLoop::readable, &h);
  EXPECT_THROW(loop.add_fd(p.read_end.get(), EventLoop::readable, &h), std::system_error);
  EXPECT_THROW(loop.modify_fd(p.write_end.get(), EventLoop::writable, &h), std::system_error);
  // What epoll refuses (a number no file has) or nothing can be served by stays unregistered.
  EXPECT_THROW(loop.add_fd(-1, EventLoop::readable, &h), std::system_error);
  EXPECT_THROW(loop.add_fd(p.write_end.get(), EventLoop::readable, nullptr), std::system_error);
  EXPECT_THROW(loop.add_fd(4000, EventLoop::readable, &h), std::system_error);
  EXPECT_THROW(loop.modify_fd(4000, EventLoop::readable, &h), std::system_error);
  EXPECT_EQ(loop.fd_count(), 1u);
  loop.remove_fd(p.read_end.get());
  loop.remove_fd(p.read_end.get());  // unknown now: ignored
  EXPECT_EQ(loop.fd_count(), 0u);
}

}  // namespace
}  // namespace tether
