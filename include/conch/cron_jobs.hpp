// conch/cron_jobs.hpp — the job table of conch's cron: add, remove, list.
//
// What `conch cron add|rm|ls` do, as library calls on any transport:
//
//   conch::add_cron_job(t, "conch/", {.name = "backup", .schedule = "0 3 * * *",
//                                     .tz = "Europe/Berlin", .argv = {"backup.sh"}}, now);
//   conch::remove_cron_job(t, "conch/", "backup");  // a run in flight finishes
//   conch::pause_cron_job(t, "conch/", "backup", true);  // no ticks until resumed (false)
//   conch::request_cron_run(t, "conch/", "backup", now);  // one run now, on one daemon
//   for (auto& job : *conch::list_cron_jobs(t, "conch/", now, 5)) ...
//
// A listing shows each job's next tick and its last runs, newest first: done
// (with exit code), running (claimed, no result, claimer's lease alive) or
// zombie (claimed, no result, claimer's lease gone — the tick is never rerun).
// A job value that is not a readable job is listed with its problem.
#pragma once

#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_view.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace conch {

/// Stores (or replaces) a job. An invalid name, schedule or zone, or an empty
/// command, is `errc::invalid_argument` and nothing is written.
template <transport T>
result<revision> add_cron_job(T& t, std::string_view prefix_text, const cron_job_spec& spec,
                              std::chrono::system_clock::time_point now) {
  const std::string prefix = detail::normalize_prefix(prefix_text);
  detail::job_record record{};
  record.name = spec.name;
  record.schedule = spec.schedule;
  record.tz = spec.tz;
  record.argv = spec.argv;
  record.created = std::chrono::floor<std::chrono::milliseconds>(now);
  record.concurrency = spec.concurrency.empty() ? "forbid" : spec.concurrency;
  record.timeout_ms = spec.timeout.count();
  auto job = detail::make_cron_job(prefix, record);
  if (!job) return std::move(job).error();
  put_request put;
  put.key = job->key;
  put.value = detail::encode_record(record);
  auto r = t.put(put, t.default_deadline());
  if (!r) return std::move(r).error();
  return r->header_revision;
}

/// Deletes a job: no further ticks. A run in flight finishes and records its
/// result; the history stays until pruned. False when there was no such job.
template <transport T>
result<bool> remove_cron_job(T& t, std::string_view prefix_text, std::string_view name) {
  const std::string prefix = detail::normalize_prefix(prefix_text);
  auto key = detail::encode_key(prefix, detail::cron_job_key{std::string(name)});
  if (!key)
    return error{errc::invalid_argument,
                 "job name " + detail::quoted(name) + ": " + key.error().message};
  delete_request del;
  del.key = *key;
  auto r = t.delete_range(del, t.default_deadline());
  if (!r) return std::move(r).error();
  return r->deleted > 0;
}

namespace detail {

/// Rewrites job `name`'s record with `change`, fenced by the revision it was
/// read at (a concurrent `add` or `pause` is not overwritten: read again).
/// False when there is no such job; `errc::corrupt` when its value cannot be read.
template <transport T, class Change>
result<bool> update_cron_job(T& t, std::string_view prefix_text, std::string_view name,
                             Change change) {
  const std::string prefix = normalize_prefix(prefix_text);
  auto key = encode_key(prefix, cron_job_key{std::string(name)});
  if (!key)
    return error{errc::invalid_argument, "job name " + quoted(name) + ": " + key.error().message};
  for (int attempt = 0; attempt < 10; ++attempt) {
    range_request get;
    get.key = *key;
    auto r = t.range(get, t.default_deadline());
    if (!r) return std::move(r).error();
    if (r->kvs.empty()) return false;
    auto job = read_cron_job(prefix, *key, r->kvs.front().value);
    if (!job) return std::move(job).error();
    change(job->record);
    txn_request txn;
    txn.compares.push_back(compare::mod_revision(*key) == r->kvs.front().mod_revision);
    put_request put;
    put.key = *key;
    put.value = encode_record(job->record);
    txn.success.emplace_back(std::move(put));
    auto w = t.txn(txn, t.default_deadline());
    if (!w) return std::move(w).error();
    if (w->succeeded) return true;
  }
  return error{errc::busy, "job " + quoted(name) + " keeps changing; try again"};
}

}  // namespace detail

/// Pauses (`paused`) or resumes job `name`: a paused job keeps its history
/// and no daemon claims its ticks; resumed, it ticks from the next one due.
/// False when there is no such job.
template <transport T>
result<bool> pause_cron_job(T& t, std::string_view prefix, std::string_view name, bool paused) {
  return detail::update_cron_job(t, prefix, name,
                                 [&](detail::job_record& r) { r.paused = paused; });
}

/// Asks for one run of job `name` now: the daemons claim it like a tick,
/// once, under the id returned (shown by `ls`). Runs even while the job is
/// paused (pausing stops the schedule). Nothing when there is no such job.
template <transport T>
result<std::optional<std::string>> request_cron_run(T& t, std::string_view prefix,
                                                    std::string_view name,
                                                    std::chrono::system_clock::time_point now) {
  const std::string id = detail::run_request_id(std::chrono::floor<std::chrono::milliseconds>(now));
  auto r = detail::update_cron_job(t, prefix, name,
                                   [&](detail::job_record& rec) { rec.run_request = id; });
  if (!r) return std::move(r).error();
  if (!*r) return std::optional<std::string>{};
  return std::optional<std::string>{id};
}

namespace detail {

/// Asks each lease once per listing whether it is alive.
template <transport T>
struct lease_liveness {
  T& t;
  std::map<lease_id, bool> known{};
  bool operator()(lease_id id) {
    auto [it, fresh] = known.try_emplace(id, false);
    if (fresh) {
      auto ttl = t.lease_time_to_live(id, t.default_deadline());
      it->second = ttl && ttl->ttl > 0;
    }
    return it->second;
  }
};

/// The last `last_runs` runs of one job, newest first.
template <transport T>
result<void> add_cron_runs(T& t, cron_job_view& view, const std::string& fire_dir,
                           const std::string& runs_dir, std::size_t last_runs,
                           lease_liveness<T>& alive) {
  if (last_runs == 0 || fire_dir.empty()) return {};
  auto newest = range_request::prefix(fire_dir);
  newest.order = range_request::sort_order::descend;
  newest.target = range_request::sort_target::key;
  newest.limit = static_cast<std::int64_t>(last_runs);
  auto claimed = t.range(newest, t.default_deadline());
  if (!claimed) return std::move(claimed).error();
  std::vector<key_value> results;
  if (!claimed->kvs.empty()) {
    range_request since_oldest;
    since_oldest.key = runs_dir + claimed->kvs.back().key.substr(fire_dir.size());
    since_oldest.range_end = prefix_end(runs_dir);
    auto r = t.range(since_oldest, t.default_deadline());
    if (!r) return std::move(r).error();
    results = std::move(r->kvs);
  }
  view.runs = cron_runs_from(claimed->kvs, fire_dir, results, runs_dir, alive);
  return {};
}

/// The job's skip and timeout counts over its kept results.
template <transport T>
result<void> add_cron_counts(T& t, cron_job_view& view, const std::string& runs_dir) {
  if (runs_dir.empty()) return {};
  auto all = t.range(range_request::prefix(runs_dir), t.default_deadline());
  if (!all) return std::move(all).error();
  count_controls(view, all->kvs);
  return {};
}

}  // namespace detail

/// Every job with its next tick after `now` and its last `last_runs` claimed
/// ticks; then every removed job that still has history, marked removed.
template <transport T>
result<std::vector<cron_job_view>> list_cron_jobs(T& t, std::string_view prefix_text,
                                                  std::chrono::system_clock::time_point now,
                                                  std::size_t last_runs = 5) {
  const std::string prefix = detail::normalize_prefix(prefix_text);
  auto jobs = t.range(range_request::prefix(detail::cron_jobs_dir(prefix)), t.default_deadline());
  if (!jobs) return std::move(jobs).error();
  auto every_claim = range_request::prefix(std::string(prefix) + "cron/fire/");
  every_claim.keys_only = true;
  auto claims = t.range(every_claim, t.default_deadline());
  if (!claims) return std::move(claims).error();
  detail::lease_liveness<T> alive{t};
  std::vector<cron_job_view> out;
  std::set<std::string> listed;
  for (const auto& kv : jobs->kvs) {
    std::string fire_dir, runs_dir;
    auto view = detail::job_view_of(prefix, kv, now, fire_dir, runs_dir);
    if (auto where = detail::decode_key<detail::cron_job_key>(prefix, kv.key))
      listed.insert(where->name);
    if (auto r = detail::add_cron_runs(t, view, fire_dir, runs_dir, last_runs, alive); !r)
      return std::move(r).error();
    if (auto r = detail::add_cron_counts(t, view, runs_dir); !r) return std::move(r).error();
    out.push_back(std::move(view));
  }
  // Removed jobs keep their history (a run in flight at `rm` records its
  // result; a zombie stays a zombie): list it too.
  std::set<std::string> removed;
  for (const auto& kv : claims->kvs)
    if (auto k = detail::decode_key<detail::cron_fire_key>(prefix, kv.key);
        k && !listed.contains(k->name))
      removed.insert(k->name);
  for (const auto& name : removed) {
    cron_job_view view;
    view.name = name;
    view.removed = true;
    auto fire_dir = detail::cron_fire_dir(prefix, name);
    auto runs_dir = detail::cron_runs_dir(prefix, name);
    if (!fire_dir || !runs_dir) continue;
    if (auto r = detail::add_cron_runs(t, view, *fire_dir, *runs_dir, last_runs, alive); !r)
      return std::move(r).error();
    out.push_back(std::move(view));
  }
  return out;
}

}  // namespace conch
