// conch/policies/fake_clock.hpp — a clock that moves only when a test says so.
//
// Every timed decision in conch goes through the clock policy, so a test that
// plugs in a fake_clock decides when time passes: `advance(d)` moves it, wakes
// every sleeper whose time has come and fires due timers, in time order.
// Copies share one state (the test keeps a copy, the recipe another), and the
// state is thread-safe. Tests wait for a recipe to block with
// `await_sleepers(n)` instead of sleeping and hoping.
//
//   conch::fake_clock<> clock;      // steady; fake_clock<std::chrono::system_clock> for wall time
//   std::jthread t([clock](std::stop_token s) { clock.sleep_until(clock.now() + 5s, s); });
//   REQUIRE(clock.await_sleepers(1));
//   clock.advance(5s);              // t wakes
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <utility>

namespace conch {

template <class Chrono = std::chrono::steady_clock>
class fake_clock {
 public:
  using duration = typename Chrono::duration;
  using rep = typename Chrono::rep;
  using period = typename Chrono::period;
  /// The real clock's time_point, so wall-time code (formatting, time zones)
  /// takes a fake system time unchanged.
  using time_point = typename Chrono::time_point;
  static constexpr bool is_steady = Chrono::is_steady;
  using timer_id = std::uint64_t;

  /// Where a fresh fake clock starts: a steady one a day after its epoch (so
  /// no code mistakes "now" for a zero sentinel), a system one at
  /// 2026-01-01T00:00:00Z.
  static time_point default_start() {
    if constexpr (is_steady) {
      return time_point{} + std::chrono::duration_cast<duration>(std::chrono::hours(24));
    } else {
      return time_point{} + std::chrono::duration_cast<duration>(std::chrono::seconds(1767225600));
    }
  }

  fake_clock() : fake_clock(default_start()) {}
  explicit fake_clock(time_point start) : s_(std::make_shared<state>(start)) {}

  time_point now() const {
    std::lock_guard lock(s_->m);
    return s_->now;
  }

  /// Blocks until the clock reaches `tp` (true) or `stop` is requested (false).
  bool sleep_until(time_point tp, std::stop_token stop) const {
    std::unique_lock lock(s_->m);
    ++s_->sleepers;
    s_->cv.notify_all();  // for await_sleepers
    const bool reached = s_->cv.wait(lock, stop, [&] { return s_->now >= tp; });
    --s_->sleepers;
    s_->cv.notify_all();
    return reached;
  }

  /// Moves time forward by `d` (>= 0), stepping through due timers in order:
  /// each fires with now() equal to its own time, outside the lock, so it may
  /// schedule more timers (which fire too if they fall within `d`).
  void advance(duration d) const {
    if (d < duration::zero())
      throw std::invalid_argument("conch::fake_clock: advance by a negative duration");
    run_until(now_plus(d));
  }

  /// Jumps to `tp`. A steady fake refuses to go back; a system one may (a
  /// wall-clock step), and then fires nothing until time reaches the timers.
  void set(time_point tp) const {
    {
      std::lock_guard lock(s_->m);
      if (tp < s_->now) {
        if constexpr (is_steady)
          throw std::invalid_argument("conch::fake_clock: a steady clock cannot go back");
        s_->now = tp;
      }
    }
    run_until(tp);
  }

  /// How many threads are blocked in sleep_until right now.
  std::size_t sleepers() const {
    std::lock_guard lock(s_->m);
    return s_->sleepers;
  }

  /// Waits (in real time, at most `within`) until at least `n` threads sleep.
  bool await_sleepers(std::size_t n,
                      std::chrono::milliseconds within = std::chrono::seconds(10)) const {
    std::unique_lock lock(s_->m);
    return s_->cv.wait_for(lock, within, [&] { return s_->sleepers >= n; });
  }

  /// Runs `fn` when advance() or set() brings the clock to `tp` (a time already
  /// past fires on the next advance, even advance(0)). Returns an id for cancel().
  timer_id schedule_at(time_point tp, std::function<void()> fn) const {
    std::lock_guard lock(s_->m);
    const timer_id id = ++s_->last_id;
    s_->timers.emplace(std::pair{tp, id}, std::move(fn));
    return id;
  }

  /// False if the timer already fired or never existed.
  bool cancel(timer_id id) const {
    std::lock_guard lock(s_->m);
    for (auto it = s_->timers.begin(); it != s_->timers.end(); ++it) {
      if (it->first.second == id) {
        s_->timers.erase(it);
        return true;
      }
    }
    return false;
  }

  /// How many timers wait to fire.
  std::size_t timers() const {
    std::lock_guard lock(s_->m);
    return s_->timers.size();
  }

  /// Two fake clocks are equal when they are copies sharing one time.
  friend bool operator==(const fake_clock& a, const fake_clock& b) noexcept { return a.s_ == b.s_; }

 private:
  struct state {
    explicit state(time_point start) : now(start) {}
    std::mutex m;
    std::condition_variable_any cv;
    time_point now;
    std::size_t sleepers = 0;
    timer_id last_id = 0;
    std::map<std::pair<time_point, timer_id>, std::function<void()>> timers;
  };

  time_point now_plus(duration d) const {
    std::lock_guard lock(s_->m);
    return s_->now + d;
  }

  void run_until(time_point target) const {
    for (;;) {
      std::function<void()> due;
      {
        std::lock_guard lock(s_->m);
        auto first = s_->timers.begin();
        if (first == s_->timers.end() || first->first.first > target) {
          if (s_->now < target) s_->now = target;
          s_->cv.notify_all();
          return;
        }
        if (s_->now < first->first.first) s_->now = first->first.first;
        due = std::move(first->second);
        s_->timers.erase(first);
        s_->cv.notify_all();
      }
      if (due) due();
    }
  }

  std::shared_ptr<state> s_;
};

}  // namespace conch
