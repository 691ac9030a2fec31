// expect: compiles
// The control: the stock policies pass every check with the same command,
// so a failure above is the static_assert's and not the command's.
#include "conch/policies/default_policies.hpp"

#include <chrono>

struct chrono_clock : conch::default_policies {
  using clock = std::chrono::steady_clock;
};
static_assert(conch::check_policy_bundle<conch::default_policies>());
static_assert(conch::check_policy_bundle<chrono_clock>());
static_assert(conch::check_monotonic_clock_policy<conch::steady_clock_policy>());
static_assert(conch::check_backoff_policy<conch::exponential_backoff>());
static_assert(conch::check_fencing_policy<conch::counter_fencing>());
