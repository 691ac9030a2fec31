// expect: conch: a clock policy needs `static constexpr bool is_steady`
#include "conch/policies/clock.hpp"

#include <chrono>

struct no_is_steady {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<no_is_steady, duration>;
  time_point now() const;
};
static_assert(conch::check_clock_policy<no_is_steady>());
