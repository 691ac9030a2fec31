// conch/detail/cron_clock.hpp — which clock a cron daemon's ticks follow and
// which its lease's deadlines use, made from the policy bundle's clock.
#pragma once

#include "conch/policies/clock.hpp"

#include <type_traits>

namespace conch {

namespace detail {
/// The clock cron ticks follow: the bundle's own when it tells wall time.
template <class P>
using cron_wall_clock =
    std::conditional_t<P::clock::is_steady, system_clock_policy, typename P::clock>;
/// The clock the daemon's lease deadlines use: the bundle's own when steady.
template <class P>
using cron_lease_clock =
    std::conditional_t<P::clock::is_steady, typename P::clock, steady_clock_policy>;

/// The tick clock made from the bundle's clock instance: that instance when
/// it tells wall time, the system clock otherwise.
template <class P>
cron_wall_clock<P> wall_clock_of(const typename P::clock& c) {
  if constexpr (P::clock::is_steady)
    return {};
  else
    return c;
}
/// The lease clock made from the bundle's clock instance: that instance when
/// it is steady (copies share one time, so a fake clock's test drives the
/// lease too), the real steady clock otherwise.
template <class P>
cron_lease_clock<P> lease_clock_of(const typename P::clock& c) {
  if constexpr (P::clock::is_steady)
    return c;
  else
    return {};
}
}  // namespace detail

}  // namespace conch
