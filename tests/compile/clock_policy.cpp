// Compile-only: the clock policy concept against its archetype.
#include "conch/policies/clock.hpp"

#include <chrono>
#include <stop_token>

namespace {

/// The least a clock policy must offer. Declared only: it can never run.
struct clock_archetype {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<clock_archetype, duration>;
  static constexpr bool is_steady = true;
  time_point now() const;
  bool sleep_until(time_point, std::stop_token) const;
};

struct wall_archetype : clock_archetype {
  static constexpr bool is_steady = false;
};

/// A clock without a wait of its own: conch::sleep_until waits for it.
struct no_sleep {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<no_sleep, duration>;
  static constexpr bool is_steady = true;
  time_point now() const;
};

struct no_now {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<no_now, duration>;
  static constexpr bool is_steady = true;
};

}  // namespace

static_assert(conch::clock_policy<clock_archetype>);
static_assert(conch::monotonic_clock_policy<clock_archetype>);
static_assert(conch::check_monotonic_clock_policy<clock_archetype>());
static_assert(conch::clock_policy<wall_archetype> &&
              !conch::monotonic_clock_policy<wall_archetype>);

static_assert(conch::clock_policy<conch::steady_clock_policy>);
static_assert(conch::clock_policy<conch::system_clock_policy>);
static_assert(conch::clock_policy<conch::fake_clock<>>);
static_assert(conch::clock_policy<conch::fake_clock<std::chrono::system_clock>>);
static_assert(conch::monotonic_clock_policy<conch::steady_clock_policy>);
static_assert(conch::monotonic_clock_policy<conch::fake_clock<>>);

// A chrono clock fits unchanged: its static now() is callable on an instance,
// and conch::sleep_until waits for it with a stoppable wait.
static_assert(conch::clock_policy<std::chrono::steady_clock>);
static_assert(conch::check_monotonic_clock_policy<std::chrono::steady_clock>());
static_assert(conch::clock_policy<std::chrono::system_clock>);
static_assert(!conch::clock_with_sleep<std::chrono::steady_clock>);
static_assert(conch::clock_with_sleep<conch::steady_clock_policy>);
static_assert(conch::clock_with_sleep<conch::fake_clock<>>);
static_assert(conch::clock_policy<no_sleep> && !conch::clock_with_sleep<no_sleep>);
static_assert(!conch::clock_policy<no_now>);
static_assert(!conch::clock_policy<int>);
