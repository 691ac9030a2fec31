// conch/logic/cron_view.hpp — a job and its recent runs as `conch cron ls`
// shows them, built from the claims and results read from etcd. Pure: the
// caller reads; `alive(lease)` is the only question asked of the world.
#pragma once

#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_policy.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/policies/transport.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace conch {

/// A job as a user states it.
struct cron_job_spec {
  std::string name{};
  std::string schedule{};  ///< cron expression, macro or `@every D` (see detail/schedule.hpp)
  std::string tz{};        ///< IANA zone; empty means UTC
  std::vector<std::string> argv{};
  std::string concurrency{};             ///< forbid (also when empty), allow, replace
  std::chrono::milliseconds timeout{0};  ///< a run is stopped after this; 0: never
};

/// One claimed tick.
struct cron_run_view {
  std::string tick;  ///< RFC 3339 UTC
  detail::run_state state = detail::run_state::zombie;
  revision rev = 0;  ///< the claim's revision (the run's CONCH_REV)
  std::string host;  ///< the claimer
  std::int64_t pid = 0;
  std::string lease;             ///< the claimer's lease (hex)
  std::string claimed;           ///< when the tick was claimed
  std::string start, end;        ///< empty until the result is recorded
  std::optional<int> exit_code;  ///< empty until the result is recorded
  std::string output;            ///< the output's tail
  std::string problem;           ///< a claim or result that cannot be read
  bool manual = false;           ///< asked for by `conch cron run`
  std::string run;               ///< the claim key's last segment (tick or run id)
  std::string skipped;           ///< not run, and why (state skipped)
  bool timed_out = false;        ///< the job's timeout stopped it
};

/// One job and its recent history.
struct cron_job_view {
  std::string name;
  bool removed = false;  ///< the job is gone; its history stays until pruned
  std::string problem;   ///< non-empty: the value is corrupt and daemons skip it
  std::string schedule, tz;
  std::vector<std::string> argv;
  std::string created;
  std::string next;                 ///< the next tick (RFC 3339 UTC); empty when none
  std::vector<cron_run_view> runs;  ///< newest first
  std::string concurrency;          ///< forbid, allow or replace
  std::int64_t timeout_ms = 0;      ///< 0: none
  bool paused = false;              ///< no ticks are claimed until resumed
  std::int64_t skips = 0;           ///< results in the kept history that say "skipped"
  std::int64_t timeouts = 0;        ///< results in the kept history stopped by the timeout
};

namespace detail {

/// A job's recent runs from its claims and results (newest claims first).
/// Pure: `alive(lease)` tells whether a claimer's lease still exists.
template <class Alive>
std::vector<cron_run_view> cron_runs_from(const std::vector<key_value>& claims,
                                          const std::string& fire_dir,
                                          const std::vector<key_value>& results,
                                          const std::string& runs_dir, Alive&& alive) {
  std::map<std::string, const key_value*> by_tick;
  for (const auto& kv : results)
    if (kv.key.size() > runs_dir.size()) by_tick[kv.key.substr(runs_dir.size())] = &kv;
  std::vector<cron_run_view> runs;
  for (const auto& claim : claims) {
    cron_run_view v;
    const std::string tick = claim.key.substr(std::min(fire_dir.size(), claim.key.size()));
    auto id = parse_run_id(tick);
    v.tick = id ? format_rfc3339(id->manual ? run_request_time(*id) : wall_time(id->tick)) : tick;
    v.manual = id && id->manual;
    v.run = tick;
    v.rev = claim.create_revision;
    lease_id lease = 0;
    if (auto c = decode_record<claim_record>(claim.value)) {
      v.host = c->host;
      v.pid = c->pid;
      v.lease = c->lease;
      v.claimed = format_rfc3339(c->start);
      if (auto id = parse_lease_hex(c->lease)) lease = *id;
    } else {
      v.problem = "claim: " + c.error().message;
    }
    auto found = by_tick.find(tick);
    if (found != by_tick.end()) {
      if (auto r = decode_record<run_record>(found->second->value)) {
        v.start = format_rfc3339(r->start);
        v.end = format_rfc3339(r->end);
        v.exit_code = r->exit_code;
        v.output = r->output;
        v.skipped = r->skipped;
        v.timed_out = r->timed_out;
      } else {
        v.problem = "result: " + r.error().message;
      }
    }
    v.state = classify_run(found != by_tick.end(), lease != 0 && alive(lease));
    if (!v.skipped.empty()) v.state = run_state::skipped;
    runs.push_back(std::move(v));
  }
  return runs;
}

/// A stored job as listed, and where its history lives (empty: unreadable name).
inline cron_job_view job_view_of(const std::string& prefix, const key_value& kv,
                                 std::chrono::system_clock::time_point now, std::string& fire_dir,
                                 std::string& runs_dir) {
  cron_job_view view;
  auto where = decode_key<cron_job_key>(prefix, kv.key);
  view.name = where ? where->name : kv.key;
  if (auto job = read_cron_job(prefix, kv.key, kv.value)) {
    view.schedule = job->record.schedule;
    view.tz = job->record.tz;
    view.argv = job->record.argv;
    view.created = format_rfc3339(job->record.created);
    view.concurrency = to_string(job->concurrency);
    view.timeout_ms = job->timeout.count();
    view.paused = job->paused();
    if (auto next = job->next_after(now); next && !job->paused()) view.next = format_rfc3339(*next);
    fire_dir = job->fire_dir;
    runs_dir = job->runs_dir;
  } else {
    view.problem = job.error().message;
    if (where) {  // a readable name still has a readable history
      fire_dir = cron_fire_dir(prefix, where->name).value_or(std::string());
      runs_dir = cron_runs_dir(prefix, where->name).value_or(std::string());
    }
  }
  return view;
}

/// Counts the skipped and timed-out results among a job's kept results.
inline void count_controls(cron_job_view& view, const std::vector<key_value>& results) {
  for (const auto& kv : results)
    if (auto r = decode_record<run_record>(kv.value)) {
      view.skips += r->skipped.empty() ? 0 : 1;
      view.timeouts += r->timed_out ? 1 : 0;
    }
}

}  // namespace detail

}  // namespace conch
