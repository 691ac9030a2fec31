// conch/detail/cron_table.hpp — the daemon's jobs as last read from etcd,
// and the agenda of their next ticks. No I/O: the daemon feeds it what it
// reads and watches, under its own lock, and fires what comes due.
#pragma once

#include "conch/logic/cron_agenda.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_policy.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/policies/transport.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace conch::detail {

/// Jobs by name, each with the revision it was read at, and when each runs
/// next on a `TimePoint` clock. Not thread-safe: the owner locks.
template <class TimePoint>
class cron_table {
 public:
  using job_ptr = std::shared_ptr<const cron_job>;

  /// `prefix` is the namespace of the jobs' keys; `say` reports each change.
  cron_table(std::string prefix, std::function<void(cron_event)> say)
      : prefix_(std::move(prefix)), say_(std::move(say)) {}

  /// A job's value read or changed; returns its slot name.
  std::string put(const key_value& kv, TimePoint now) {
    std::string name = slot_name(kv.key);
    auto& slot = jobs_[name];
    if (slot.mod_revision == kv.mod_revision) return name;
    slot.mod_revision = kv.mod_revision;
    auto job = read_cron_job(prefix_, kv.key, kv.value);
    if (!job) {
      slot.job.reset();
      agenda_.drop(name);
      say_({.what = cron_event::kind::job_corrupt, .job = name, .message = job.error().message});
      return name;
    }
    slot.job = std::make_shared<const cron_job>(std::move(*job));
    const auto next = plan(name, *slot.job, now);
    const auto& rec = slot.job->record;
    say_({.what = cron_event::kind::job_loaded,
          .job = name,
          .tick = next ? format_rfc3339(*next) : std::string(),
          .message = rec.schedule + (rec.tz.empty() ? "" : " (" + rec.tz + ")") +
                     (rec.paused ? " paused" : "")});
    note_request(name, slot, now);
    return name;
  }

  /// A job's key deleted.
  void erase(const key_value& kv) {
    const std::string name = slot_name(kv.key);
    if (jobs_.erase(name) == 0) return;
    agenda_.drop(name);
    say_({.what = cron_event::kind::job_removed, .job = name});
  }

  /// After a full read: drops every job not in `present`.
  void keep_only(const std::set<std::string>& present) {
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (present.contains(it->first)) {
        ++it;
        continue;
      }
      agenda_.drop(it->first);
      say_({.what = cron_event::kind::job_removed, .job = it->first});
      it = jobs_.erase(it);
    }
  }

  /// Calls `fire(job, job_revision, tick)` for each tick due at `now` and
  /// plans each job's next tick after it (skipping what `now` left behind).
  template <class Fire>
  void fire_due(TimePoint now, Fire&& fire) {
    for (auto& due : agenda_.take_due(now)) {
      auto it = jobs_.find(due.job);
      if (it == jobs_.end() || !it->second.job) continue;
      fire(it->second.job, it->second.mod_revision,
           std::chrono::floor<std::chrono::seconds>(due.tick));
      plan(due.job, *it->second.job, resume_point<TimePoint>(due.tick, now));
    }
  }

  /// Calls `fire(job, job_revision, tick, run_id)` once for each run asked
  /// for by hand (`cron run`) since the last call.
  template <class Fire>
  void fire_requested(Fire&& fire) {
    for (auto& [name, id] : std::exchange(requested_, {})) {
      auto it = jobs_.find(name);
      if (it == jobs_.end() || !it->second.job || it->second.job->record.run_request != id.text)
        continue;
      fire(it->second.job, it->second.mod_revision, id.tick, id.text);
    }
  }

  std::optional<TimePoint> earliest() const { return agenda_.earliest(); }
  bool has_requests() const noexcept { return !requested_.empty(); }

  /// A run asked for longer ago than this when a daemon first sees it (one
  /// that was down, or started since) is left alone: no late surprise run.
  static constexpr std::chrono::seconds request_window{60};

 private:
  struct job_slot {
    revision mod_revision = 0;
    job_ptr job;               // null: the value is corrupt
    std::string seen_request;  // the last `cron run` id acted on
  };

  /// Queues the job's `cron run` request if it is new to this table and recent.
  void note_request(const std::string& name, job_slot& slot, TimePoint now) {
    const std::string& asked = slot.job->record.run_request;
    if (asked.empty() || asked == slot.seen_request) return;
    slot.seen_request = asked;
    auto id = parse_run_id(asked);
    if (!id || now - run_request_time(*id) > request_window) return;
    requested_.emplace_back(name, std::move(*id));
  }

  /// The table's name for a key below the jobs directory: the job's name, or
  /// the raw key for a foreign key (kept so it is reported once).
  std::string slot_name(const std::string& key) const {
    auto k = decode_key<cron_job_key>(prefix_, key);
    return k ? k->name : key;
  }

  /// A paused job has no next tick.
  std::optional<tick_time> plan(const std::string& name, const cron_job& job, TimePoint after) {
    auto next = job.paused() ? std::nullopt : job.next_after(after);
    if (next)
      agenda_.plan(name, *next);
    else
      agenda_.drop(name);
    return next;
  }

  std::string prefix_;
  std::function<void(cron_event)> say_;
  std::map<std::string, job_slot> jobs_;
  cron_agenda<TimePoint> agenda_;
  std::vector<std::pair<std::string, run_id>> requested_;
};

}  // namespace conch::detail
