// expect: conch: a backoff policy must be a default-constructible, copyable value
#include "conch/policies/backoff.hpp"

#include <chrono>

struct move_only_backoff {
  move_only_backoff() = default;
  move_only_backoff(move_only_backoff&&) = default;
  move_only_backoff& operator=(move_only_backoff&&) = default;
  std::chrono::milliseconds next();
  void reset();
};
static_assert(conch::check_backoff_policy<move_only_backoff>());
