// Compile-only: std::chrono::steady_clock is a clock policy as it is. Every
// recipe that waits (session, election, semaphore, observer) is instantiated
// whole with it, so each of their waits goes through conch::sleep_until.
#include "conch/conch.hpp"
#include "conch/etcd.hpp"

#include <chrono>
#include <stop_token>

namespace {

struct chrono_policies : conch::default_policies {
  using clock = std::chrono::steady_clock;
};

}  // namespace

static_assert(conch::clock_policy<std::chrono::steady_clock>);
static_assert(conch::monotonic_clock_policy<std::chrono::steady_clock>);
static_assert(conch::check_policy_bundle<chrono_policies>());

template class conch::basic_session<chrono_policies>;
template class conch::basic_election<chrono_policies>;
template class conch::basic_semaphore<chrono_policies>;
template class conch::detail::leader_observer<chrono_policies>;

// The customization point itself, on the bare chrono clock.
[[maybe_unused]] bool conch_compile_chrono_wait(std::stop_token stop) {
  const std::chrono::steady_clock clock;
  return conch::sleep_until(clock, clock.now() + std::chrono::milliseconds{1}, std::move(stop));
}
