// conch/detail/lock_delay.hpp — the I/O half of the lock delay (logic/lock_delay.hpp):
// sleeping out a delay on the clock policy, and removing an election's stale
// held markers once their delay is over.
#pragma once

#include "conch/logic/election_office.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <string>

namespace conch::detail {

/// Sleeps on `clock` until `ready`. errc::cancelled on `stop`, errc::timed_out
/// when `give_up` (real time) comes first.
template <class Clock>
result<void> wait_ready(const Clock& clock, typename Clock::time_point ready,
                        const stop_union& stop, deadline give_up) {
  using steady = std::chrono::steady_clock;
  for (;;) {
    if (stop.stop_requested()) return error{errc::cancelled, "stopped"};
    const auto now = clock.now();
    if (now >= ready) return {};
    auto wake = ready;
    if (give_up != deadline::max()) {
      const auto left = give_up - steady::now();
      if (left <= left.zero()) return error{errc::timed_out, "gave up during the lock delay"};
      wake = std::min(ready, now + std::chrono::duration_cast<typename Clock::duration>(left));
    }
    if (!conch::sleep_until(clock, wake, stop.token())) return error{errc::cancelled, "stopped"};
  }
}

/// Deletes the held markers under `marker_dir` created before `rev` (the new
/// leader's key): their candidates are gone and their delay is over. Best
/// effort: a marker left behind only costs a later leader one more delay.
template <class Transport>
void remove_stale_markers(Transport& t, const std::string& marker_dir, revision rev, deadline d) {
  txn_request read;
  read.success.emplace_back(markers_before(marker_dir, rev, 0));
  auto r = t.txn(read, d);
  if (!r) return;
  const auto* stale = range_at(*r, 0);
  if (!stale || stale->kvs.empty()) return;
  txn_request drop;
  for (const auto& kv : stale->kvs) {
    drop.compares.push_back(compare::create_revision(kv.key) == kv.create_revision);
    drop.success.emplace_back(delete_request{kv.key, {}, false});
  }
  (void)t.txn(drop, d);
}

}  // namespace conch::detail
