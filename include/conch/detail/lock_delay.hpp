// conch/detail/lock_delay.hpp — the I/O half of the lock delay (logic/lock_delay.hpp):
// sleeping out a delay on the clock policy, a semaphore head's choice of slot
// and its wait, an election candidate's marker and its wait, and removing an
// election's stale held markers once their delay is over.
#pragma once

#include "conch/detail/waiting.hpp"
#include "conch/logic/election_office.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/lock_delay.hpp"
#include "conch/logic/semaphore_read.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/fencing.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

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
  read.success.emplace_back(markers_before(marker_dir, rev, 100));  // etcd's txn limit is 128 ops
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

// Sits out a lock delay ending at `ready` while watching the slots from right
// after `seen`: a slot released meanwhile ends it early (ok: re-read).
// `Line` is a semaphore_line.
template <class Line, class TimePoint>
result<void> watch_during_delay(Line& line, const sema_state& seen, TimePoint ready,
                                const stop_union& stop, deadline give_up) {
  const auto& clock = line.session_.clock();
  watch_request w = watch_request::prefix(line.layout_.slots());
  w.start_revision = seen.at + 1;
  w.no_put = true;
  auto stream = line.transport().watch(w);
  ++line.watches_;
  auto retry = line.backoff_;
  const deadline until = std::min(give_up, real_deadline(clock, ready));
  auto changed = line.io_.watch_until(stream, stop, until, retry, [&](const watch_batch& b) {
    line.watch_events_ += b.events.size();
    return !b.events.empty();
  });
  if (changed) return {};
  if (changed.error().code != errc::timed_out || std::chrono::steady_clock::now() >= give_up)
    return changed;
  return wait_ready(clock, ready, stop, give_up);  // on the clock policy's own time
}

// A semaphore's head with a free slot: picks the slot to claim into
// `seen.next` (a cleanly freed one before one lost uncleanly) and, if its
// lock delay is not over, sits it out and re-reads. True: claim now.
template <class Line>
result<bool> sit_out_slot_delay(Line& line, sema_state& seen, bool nonblock, const stop_union& stop,
                                deadline give_up) {
  auto& gate = line.gate_;
  if (!gate.enabled()) return true;
  const auto& l = line.layout_;
  const auto now = line.session_.clock().now();
  auto free = seen.free_slots(l);
  if (free.empty()) return true;  // the ranking's slot: nothing better known
  const auto [slot, ready] = choose_slot(free, l.markers(), gate, now);
  for (const auto& f : free)
    if (f.slot == slot && f.stale) gate.saw(slot_marker(l.markers(), slot), f.stale, now);
  seen.next.slot = slot;
  if (ready <= now) return true;
  if (nonblock)
    return error{errc::busy, "slot " + std::to_string(slot) + " of semaphore " + l.office +
                                 " was lost uncleanly; its lock delay of " +
                                 std::to_string(gate.delay().count()) + "ms is not over"};
  line.guard_queue(true, seen.at);  // losing our queue key ends the delay at once
  if (auto w = watch_during_delay(line, seen, ready, stop, give_up); !w)
    return std::move(w).error();
  auto fresh = line.read(stop, give_up);
  if (!fresh) return std::move(fresh).error();
  seen = std::move(*fresh);
  return false;
}

/// An election candidate's side of the lock delay: its held marker, the
/// unclean losses it saw while waiting, and sitting out their delay once it
/// leads. Used from the candidate's thread.
template <class Session>
class election_handover {
 public:
  using clock_type = typename Session::policies::clock;
  using gate_type = handover_gate<typename clock_type::time_point>;

  explicit election_handover(Session& s) : session_(s) {}

  /// A new campaign by `lease` in the office whose markers live in `dir`.
  void start(std::string dir, lease_id lease, std::chrono::milliseconds delay) {
    dir_ = std::move(dir);
    marker_ = candidate_marker(dir_, lease);
    gate_ = gate_type{delay};
    unmarked_.reset();
  }
  const std::string& dir() const noexcept { return dir_; }
  const std::string& marker() const noexcept { return marker_; }

  /// The campaign txn, putting our marker with our key (`leader`: also read who leads).
  txn_request campaign_txn(const std::string& office, const std::string& key,
                           const std::string& value, lease_id lease, bool leader) const {
    return detail::campaign_txn(office, key, value, lease, dir_, marker_, leader);
  }
  /// The waiter's re-read, with the newest marker created before our key.
  txn_request predecessor_txn(const std::string& office, const std::string& key,
                              revision rev) const {
    return detail::predecessor_txn(office, key, rev, dir_);
  }
  /// Resign: the fenced delete of our key, and of our marker in the same txn.
  txn_request release_txn(const fence& held) const {
    txn_request t = fenced_release(held);
    t.success.emplace_back(delete_request{marker_, {}, false});
    return t;
  }

  /// After each read while waiting: an unmarked predecessor (an `etcdctl
  /// elect` one) that is gone now was lost uncleanly, as far as we can tell.
  void after_read(const campaign_entry& seen) {
    if (unmarked_ &&
        (!seen.predecessor || seen.predecessor->create_revision != unmarked_->create_revision))
      gate_.saw(unmarked_->key, unmarked_->create_revision, session_.clock().now());
    unmarked_.reset();
    if (seen.predecessor && !has_marker(*seen.predecessor, seen.marker_before))
      unmarked_ = seen.predecessor;
  }

  /// Our predecessor, the sole candidate ahead of us, was deleted (its watch
  /// said so): true if we may lead on that alone, `seen` then saying so. An
  /// unmarked predecessor's deletion is an unclean loss (its delay is noted);
  /// a marked one's is clean only if its marker went with it, so with a delay
  /// false: re-read (the marker is read with the predecessor).
  bool lead_on_delete(campaign_entry& seen) {
    if (!seen.predecessor) return true;
    const bool marked = has_marker(*seen.predecessor, seen.marker_before);
    if (marked && gate_.enabled()) return false;
    if (marked) seen.marker_before.reset();  // no delay: a marker it left is removed later
    seen.predecessor.reset();
    after_read(seen);
    return true;
  }

  /// Once we lead with key revision `rev` (`seen`: the read that said so):
  /// with a delay and an unclean loss seen (a stale marker now, an unmarked
  /// predecessor gone), sit it out; then drop the stale markers (with or
  /// without a delay, so they never pile up). Otherwise at once.
  result<void> sit_out(const campaign_entry& seen, revision rev, bool nonblock,
                       const stop_union& stop, deadline give_up, const std::string& office) {
    const auto& clock = session_.clock();
    const auto now = clock.now();
    if (seen.marker_before && gate_.enabled())
      gate_.saw(seen.marker_before->key, seen.marker_before->mod_revision, now);
    std::optional<typename clock_type::time_point> ready;
    if (gate_.enabled()) ready = gate_.latest();
    if (ready && nonblock && *ready > now)
      return error{errc::busy, "office " + office + " was lost uncleanly; its lock delay of " +
                                   std::to_string(gate_.delay().count()) + "ms is not over"};
    if (ready)
      if (auto r = wait_ready(clock, *ready, stop, give_up); !r) return r;
    if (seen.marker_before)
      remove_stale_markers(session_.transport(), dir_, rev,
                           call_deadline(session_.transport().default_deadline(), give_up));
    return {};
  }

 private:
  Session& session_;
  std::string dir_;
  std::string marker_;
  gate_type gate_{};
  std::optional<key_value> unmarked_;  // the predecessor we watch, if it has no held marker
};

}  // namespace conch::detail
