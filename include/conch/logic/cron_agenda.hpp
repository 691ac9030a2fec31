// conch/logic/cron_agenda.hpp — the daemon's plan: the next tick of every
// job, earliest first. Pure: no I/O, no clock of its own; time is passed in.
//
//   cron_agenda<sys_ms> a;
//   a.plan("backup", t1);            // replaces any earlier plan for "backup"
//   if (auto w = a.earliest()) clock.sleep_until(*w, stop);
//   for (auto& [job, tick] : a.take_due(clock.now())) fire(job, tick);
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace conch::detail {

template <class TimePoint>
class cron_agenda {
 public:
  struct entry {
    std::string job;
    TimePoint tick;
  };

  /// Plans `job` for `tick`, replacing its previous plan.
  void plan(const std::string& job, TimePoint tick) {
    drop(job);
    by_job_.emplace(job, tick);
    by_tick_.emplace(tick, job);
  }

  /// Forgets `job` (removed, or a schedule that never fires again).
  void drop(const std::string& job) {
    if (auto it = by_job_.find(job); it != by_job_.end()) {
      by_tick_.erase({it->second, job});
      by_job_.erase(it);
    }
  }

  std::optional<TimePoint> planned(const std::string& job) const {
    auto it = by_job_.find(job);
    if (it == by_job_.end()) return std::nullopt;
    return it->second;
  }

  /// The instant to wake up at; nothing when no job is planned.
  std::optional<TimePoint> earliest() const {
    if (by_tick_.empty()) return std::nullopt;
    return by_tick_.begin()->first;
  }

  /// Removes and returns every plan due at `now` (tick <= now), earliest
  /// first. The caller plans each job's following tick.
  std::vector<entry> take_due(TimePoint now) {
    std::vector<entry> due;
    while (!by_tick_.empty() && by_tick_.begin()->first <= now) {
      auto node = by_tick_.extract(by_tick_.begin());
      by_job_.erase(node.value().second);
      due.push_back({std::move(node.value().second), node.value().first});
    }
    return due;
  }

  std::size_t size() const noexcept { return by_job_.size(); }
  bool empty() const noexcept { return by_job_.empty(); }

 private:
  std::map<std::string, TimePoint> by_job_;
  std::set<std::pair<TimePoint, std::string>> by_tick_;
};

/// Where counting resumes after firing tick `fired` at local time `now`: from
/// the later of the two. A daemon that fell behind (stalled, suspended, its
/// clock stepped forward) skips the ticks it missed instead of firing them in
/// a late burst — no catch-up, the same rule as at start, where counting
/// begins at `now`.
template <class TimePoint>
constexpr TimePoint resume_point(TimePoint fired, TimePoint now) {
  return std::max(fired, now);
}

/// Whether a tick is too late to claim at local time `now`: its successor is
/// already due. Claiming it anyway would run ticks ever later once a daemon
/// cannot keep up; shedding it keeps the daemon on the current tick.
template <class TimePoint, class Tick>
constexpr bool is_stale_tick(TimePoint now, Tick successor) {
  return now >= successor;
}

}  // namespace conch::detail
