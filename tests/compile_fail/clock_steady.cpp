// expect: conch: deadlines need a steady clock (Clock::is_steady must be true)
#include "conch/policies/clock.hpp"

static_assert(conch::check_monotonic_clock_policy<conch::system_clock_policy>());
