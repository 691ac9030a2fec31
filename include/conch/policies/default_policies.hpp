// conch/policies/default_policies.hpp — the policy bundle every recipe takes.
//
// A recipe has one template parameter, a bundle of four policies. Override
// one by inheriting from default_policies, so new members added later keep
// their defaults:
//
//   struct test_policies : conch::default_policies {
//     using clock = conch::fake_clock<>;
//   };
//   conch::basic_session<test_policies> s{transport, {}, clock};
//
// Naming `etcd_transport` here needs no gRPC: it is only declared. Include
// conch/etcd.hpp (target conch::etcd) where a recipe runs.
#pragma once

#include "conch/policies/backoff.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/fencing.hpp"

namespace conch {

class etcd_transport;

struct default_policies {
  using transport = etcd_transport;     ///< etcd v3 over gRPC, the only backend
  using clock = steady_clock_policy;    ///< deadlines on the monotonic clock
  using backoff = exponential_backoff;  ///< full jitter, capped
  using fencing = revision_fencing;     ///< token = create_revision of the holder key
};

/// A policy bundle: the four member types, each modelling its policy. The
/// transport is only required to be named here — it may be an incomplete
/// type until the etcd header is included (check_transport_policy checks it
/// where it is used).
template <class P>
concept policy_bundle = requires {
  typename P::transport;
  typename P::clock;
  typename P::backoff;
  typename P::fencing;
}
&&clock_policy<typename P::clock>&& backoff_policy<typename P::backoff>&&
    fencing_policy<typename P::fencing>;

/// For a recipe's `static_assert(check_policy_bundle<P>())`: one English
/// sentence per missing piece instead of a concept dump.
template <class P>
constexpr bool check_policy_bundle() {
  constexpr bool has_all = requires {
    typename P::transport;
    typename P::clock;
    typename P::backoff;
    typename P::fencing;
  };
  static_assert(has_all,
                "conch: a policy bundle needs member types transport, clock, backoff and fencing "
                "(inherit from conch::default_policies and override what you need)");
  if constexpr (has_all) {
    // Each policy's own check names what its type lacks.
    constexpr bool clock = check_clock_policy<typename P::clock>();
    constexpr bool backoff = check_backoff_policy<typename P::backoff>();
    constexpr bool fencing = check_fencing_policy<typename P::fencing>();
    return clock && backoff && fencing;
  } else {
    return false;
  }
}

/// Where a recipe uses its transport (so the type is complete there).
template <class T>
constexpr bool check_transport_policy() {
  static_assert(transport<T>,
                "conch: Policies::transport must model conch::transport (range, put, delete_range, "
                "txn, lease_grant, "
                "lease_revoke, lease_time_to_live, keepalive, watch, default_deadline); include "
                "conch/etcd.hpp for conch::etcd_transport");
  return transport<T>;
}

}  // namespace conch
