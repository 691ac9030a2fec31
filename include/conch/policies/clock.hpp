// conch/policies/clock.hpp — the clock policy: what "now" is and how to wait.
//
// A clock policy is chrono-shaped (`duration`, `time_point`, `rep`, `period`,
// `is_steady`, `now()`), so code written against std::chrono reads the same.
// `now()` is called on an instance (a static one does too), so a fake clock
// can carry per-instance state. Every wait goes through one customization
// point, `conch::sleep_until(clock, tp, stop)`: it uses the clock's own
// `sleep_until(tp, stop)` member when there is one (so a fake clock can wake
// a waiter the moment a test advances time) and a stoppable wait otherwise,
// so `std::chrono::steady_clock` is a clock policy as it is:
//
//   std::chrono::steady_clock clock;
//   std::stop_source stop;
//   if (!conch::sleep_until(clock, clock.now() + 100ms, stop.get_token())) return;  // stopped
//
// Deadlines (lease, keepalive, kill-after) need a steady clock; cron wall time
// needs the system clock. Both have a real model here and a fake one in
// policies/fake_clock.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <utility>

namespace conch {

/// A clock policy: chrono's Clock requirements, with `now()` callable on an
/// instance. Copies must observe one time. A clock may add
/// `bool sleep_until(time_point, std::stop_token) const` (see conch::sleep_until).
template <class C>
concept clock_policy = std::copy_constructible<C> && requires(const C& c) {
  typename C::duration;
  typename C::rep;
  typename C::period;
  typename C::time_point;
  { C::is_steady } -> std::convertible_to<bool>;
  { c.now() } -> std::same_as<typename C::time_point>;
};

/// Whether clock `C` brings its own way to wait.
template <class C>
concept clock_with_sleep = requires(const C& c, typename C::time_point tp, std::stop_token stop) {
  { c.sleep_until(tp, stop) } -> std::same_as<bool>;
};

/// The one way conch waits: until `clock` reaches `tp` (true) or `stop` is
/// requested (false). Uses the clock's own `sleep_until` member when it has
/// one; otherwise a condition variable that only `stop` notifies, re-reading
/// `clock.now()` after each real-time wait (a clock running at another rate
/// is re-checked at least every second).
template <clock_policy C>
bool sleep_until(const C& clock, typename C::time_point tp, std::stop_token stop) {
  if constexpr (clock_with_sleep<C>) {
    return clock.sleep_until(tp, std::move(stop));
  } else {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    for (;;) {
      if (stop.stop_requested()) return false;
      const auto left = tp - clock.now();
      if (left <= left.zero()) return true;
      const auto step = std::min(std::chrono::ceil<std::chrono::nanoseconds>(left),
                                 std::chrono::nanoseconds{std::chrono::seconds{1}});
      // The predicate is never true: only the time or a stop request ends a wait.
      cv.wait_for(lock, stop, step, [] { return false; });
    }
  }
}

/// A clock policy that never goes backwards: what every deadline is measured on.
template <class C>
concept monotonic_clock_policy = clock_policy<C> && bool(C::is_steady);

/// Spells out which part of the clock policy `C` is missing. Recipes call it in
/// a static_assert so a bad clock fails with a sentence instead of a concept dump.
template <class C>
constexpr bool check_clock_policy() {
  if constexpr (!requires {
                  typename C::duration;
                  typename C::time_point;
                  typename C::rep;
                  typename C::period;
                }) {
    static_assert(
        requires { typename C::time_point; },
        "conch: a clock policy needs chrono's member types duration, time_point, rep and period");
    return false;
  } else {
    static_assert(
        requires { bool(C::is_steady); },
        "conch: a clock policy needs `static constexpr bool is_steady`");
    static_assert(
        requires(const C& c) {
          { c.now() } -> std::same_as<typename C::time_point>;
        },
        "conch: a clock policy needs `time_point now() const`");
    static_assert(std::copy_constructible<C>,
                  "conch: a clock policy must be copyable (copies share one time)");
    return clock_policy<C>;
  }
}

/// As check_clock_policy, and the clock must be steady (for deadlines).
template <class C>
constexpr bool check_monotonic_clock_policy() {
  if constexpr (check_clock_policy<C>()) {
    static_assert(C::is_steady,
                  "conch: deadlines need a steady clock (Clock::is_steady must be true)");
    return C::is_steady;
  } else {
    return false;
  }
}

namespace detail {

/// A stateless policy over a real chrono clock; waiting is conch::sleep_until's
/// stoppable wait (a stop request interrupts it at once).
template <class Chrono>
struct chrono_clock {
  using duration = typename Chrono::duration;
  using rep = typename Chrono::rep;
  using period = typename Chrono::period;
  using time_point = typename Chrono::time_point;
  static constexpr bool is_steady = Chrono::is_steady;

  static time_point now() noexcept { return Chrono::now(); }

  static bool sleep_until(time_point tp, std::stop_token stop) {
    return conch::sleep_until(Chrono{}, tp, std::move(stop));
  }
};

}  // namespace detail

/// The monotonic clock: leases, keepalives, kill-after. Empty, so a recipe
/// holds it as a `[[no_unique_address]]` member at no cost.
struct steady_clock_policy : detail::chrono_clock<std::chrono::steady_clock> {};

/// Wall time: cron ticks and the times printed in records.
struct system_clock_policy : detail::chrono_clock<std::chrono::system_clock> {};

}  // namespace conch

#include "conch/policies/fake_clock.hpp"  // IWYU pragma: export
