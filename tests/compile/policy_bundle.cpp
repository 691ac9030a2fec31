// Compile-only: the policy bundle, its default, and overriding one member.
// This file includes no gRPC header: default_policies names etcd_transport
// without needing it.
#include "conch/fwd.hpp"
#include "conch/policies/default_policies.hpp"

#include <type_traits>

namespace {

struct bundle_archetype {
  struct transport;  // only named: a bundle may name an incomplete transport
  using clock = conch::fake_clock<>;
  using backoff = conch::no_backoff;
  using fencing = conch::no_fencing;
};

struct fake_time : conch::default_policies {
  using clock = conch::fake_clock<>;
};

struct no_fencing_member {
  using transport = conch::etcd_transport;
  using clock = conch::steady_clock_policy;
  using backoff = conch::no_backoff;
};

struct bad_clock : conch::default_policies {
  using clock = int;  // no chrono types, no now()
};

struct chrono_clock : conch::default_policies {
  using clock = std::chrono::steady_clock;  // fits unchanged
};

}  // namespace

static_assert(conch::policy_bundle<bundle_archetype>);
static_assert(conch::check_policy_bundle<bundle_archetype>());
static_assert(conch::policy_bundle<conch::default_policies>);
static_assert(conch::check_policy_bundle<conch::default_policies>());
static_assert(conch::policy_bundle<fake_time>);
static_assert(std::is_same_v<fake_time::backoff, conch::exponential_backoff>);  // inherited default

static_assert(conch::policy_bundle<chrono_clock>);
static_assert(conch::check_policy_bundle<chrono_clock>());

static_assert(!conch::policy_bundle<no_fencing_member>);
static_assert(!conch::policy_bundle<bad_clock>);

// The aliases name the defaulted templates.
static_assert(std::is_same_v<conch::session, conch::basic_session<conch::default_policies>>);
static_assert(std::is_same_v<conch::election, conch::basic_election<conch::default_policies>>);
static_assert(std::is_same_v<conch::semaphore, conch::basic_semaphore<conch::default_policies>>);
static_assert(std::is_same_v<conch::cron, conch::basic_cron<conch::default_policies>>);
