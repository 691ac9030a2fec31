// expect: conch: a policy bundle needs member types transport, clock, backoff and fencing (inherit from conch::default_policies and override what you need)
#include "conch/policies/default_policies.hpp"

struct no_fencing_member {
  using transport = conch::etcd_transport;
  using clock = conch::steady_clock_policy;
  using backoff = conch::no_backoff;
};
static_assert(conch::check_policy_bundle<no_fencing_member>());
