// expect: conch: a clock policy must be copyable (copies share one time)
#include "conch/policies/clock.hpp"

#include <chrono>

struct move_only_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<move_only_clock, duration>;
  static constexpr bool is_steady = true;
  move_only_clock() = default;
  move_only_clock(move_only_clock&&) = default;
  time_point now() const;
};
static_assert(conch::check_clock_policy<move_only_clock>());
