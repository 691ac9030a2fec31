// expect: conch: a backoff policy needs `next()` returning a std::chrono duration
#include "conch/policies/backoff.hpp"

struct int_next {
  int next();
  void reset();
};
static_assert(conch::check_backoff_policy<int_next>());
