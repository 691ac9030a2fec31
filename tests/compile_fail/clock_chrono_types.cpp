// expect: conch: a clock policy needs chrono's member types duration, time_point, rep and period
#include "conch/policies/clock.hpp"

struct no_types {
  static constexpr bool is_steady = true;
  int now() const;
};
static_assert(conch::check_clock_policy<no_types>());
