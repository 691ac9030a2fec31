// conch/logic/lock_delay.hpp — the lock delay: when a new holder may start.
//
// A holder that lets go cleanly (a fenced release or resign, after its work
// stopped) deletes its holder key and its *held marker* in one txn. A holder
// lost uncleanly — its lease expired or was revoked, or its key was deleted
// by hand — leaves the marker behind: etcd deletes only the leased holder key,
// the marker has no lease. A free office or slot whose marker is still there
// was therefore lost uncleanly, and its old holder's work may still run (its
// wrapper has yet to notice, or is frozen and only its watchdog will kill the
// child). The next holder starts only `delay` after it first saw that:
// its first sighting is no earlier than the deletion, so the delay counted
// from it is never shorter than the one counted from the deletion.
//
// Markers live outside the offices, so `etcdctl elect` and `--who` never see
// them (keys.hpp: `<prefix>held/...`):
//   election   held/elect/<name>/<lease hex>   put with the candidate key (one
//              per candidate, same create_revision); a marker created before
//              the leader's key whose candidate is gone is stale
//   semaphore  held/sema/<name>/max=<N>/<i>    put by the claim of slot i; a
//              marker of a free slot is stale
// Pure: the I/O half is detail/lock_delay.hpp.
#pragma once

#include "conch/logic/keys.hpp"
#include "conch/policies/transport.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace conch::detail {

/// Remembers when each unclean loss was first seen, so the same stale marker
/// seen again later keeps its first sighting, and tells when its delay ends.
/// `TimePoint` is the clock policy's (a fake clock in tests).
template <class TimePoint>
class handover_gate {
 public:
  explicit handover_gate(std::chrono::milliseconds delay = std::chrono::milliseconds{0})
      : delay_(delay) {}

  std::chrono::milliseconds delay() const noexcept { return delay_; }
  bool enabled() const noexcept { return delay_ > std::chrono::milliseconds{0}; }

  /// An unclean loss seen at `now`: the stale marker (or vanished foreign
  /// holder) `key`, at `rev` (its mod_revision; a new rev is a new loss).
  /// Returns when its delay ends.
  TimePoint saw(const std::string& key, revision rev, TimePoint now) {
    auto [it, fresh] = seen_.try_emplace(key, rev, now);
    if (!fresh && it->second.first != rev) it->second = {rev, now};
    const TimePoint ready = it->second.second + delay_;
    if (!latest_ || *latest_ < ready) latest_ = ready;
    return ready;
  }

  /// When the delay of `key` at `rev` would end, were it seen at `now`.
  TimePoint ready_of(const std::string& key, revision rev, TimePoint now) const {
    auto it = seen_.find(key);
    if (it == seen_.end() || it->second.first != rev) return now + delay_;
    return it->second.second + delay_;
  }

  /// The end of the latest delay noted so far (nullopt: no unclean loss seen).
  std::optional<TimePoint> latest() const { return latest_; }

  void clear() {
    seen_.clear();
    latest_.reset();
  }

 private:
  std::chrono::milliseconds delay_;
  std::map<std::string, std::pair<revision, TimePoint>> seen_;
  std::optional<TimePoint> latest_;
};

/// A free slot a semaphore's head may claim, and the mod_revision of its stale
/// held marker (0: none — released cleanly, or never held).
struct free_slot {
  int slot = 0;
  revision stale = 0;
};

/// The slot to claim and when: a cleanly freed one at once (the lowest);
/// otherwise the one whose lock delay ends first. Without a delay, the
/// lowest free slot at once. `free` is not empty.
template <class TimePoint>
std::pair<int, TimePoint> choose_slot(const std::vector<free_slot>& free,
                                      const std::string& marker_dir,
                                      const handover_gate<TimePoint>& gate, TimePoint now) {
  if (!gate.enabled()) return {free.front().slot, now};
  std::optional<std::pair<int, TimePoint>> best;
  for (const auto& f : free) {
    const TimePoint ready =
        f.stale ? gate.ready_of(slot_marker(marker_dir, f.slot), f.stale, now) : now;
    if (!best || ready < best->second || (ready == best->second && f.slot < best->first))
      best = std::pair{f.slot, ready};
  }
  return *best;
}

/// Whether the election candidate `predecessor` is a conch candidate: its held
/// marker (the newest marker created before us, `marker_before`) was created
/// in the same txn as its key. An `etcdctl elect` candidate has none.
inline bool has_marker(const key_value& predecessor,
                       const std::optional<key_value>& marker_before) {
  return marker_before && marker_before->create_revision == predecessor.create_revision;
}

}  // namespace conch::detail
