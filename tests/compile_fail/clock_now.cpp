// expect: conch: a clock policy needs `time_point now() const`
#include "conch/policies/clock.hpp"

#include <chrono>

struct no_now {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<no_now, duration>;
  static constexpr bool is_steady = true;
};
static_assert(conch::check_clock_policy<no_now>());
