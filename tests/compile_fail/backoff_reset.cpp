// expect: conch: a backoff policy needs `void reset()`
#include "conch/policies/backoff.hpp"

#include <chrono>

struct no_reset {
  std::chrono::milliseconds next();
};
static_assert(conch::check_backoff_policy<no_reset>());
