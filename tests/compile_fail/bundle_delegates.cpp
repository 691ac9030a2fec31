// expect: conch: a backoff policy needs `void reset()`
// The bundle check names the missing piece through the policy's own check.
#include "conch/policies/default_policies.hpp"

#include <chrono>

struct no_reset {
  std::chrono::milliseconds next();
};
struct bad_backoff : conch::default_policies {
  using backoff = no_reset;
};
static_assert(conch::check_policy_bundle<bad_backoff>());
