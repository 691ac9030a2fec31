// conch/detail/cron_gate.hpp — a won tick's way to its run under the job's
// controls: the concurrency policy and the timeout.
//
// One run at a time (forbid, replace): a run holds `<prefix>cron/running/NAME`,
// created if absent and bound to its claimer's lease, for as long as its
// process group may live. The key is absent exactly when no run of the job
// may be running on any daemon: the holder deletes it once its group is
// stopped, and a dead or cut-off holder's lease takes it along — only after
// that daemon's supervisor (or its watchdog) stopped the group at the
// lease's local deadline, which comes before etcd expires the lease. So a
// tick that finds the key held skips (forbid) or stops the holder (replace).
//
// Replace stops the holder (SIGTERM, then SIGKILL after kill-after) and
// waits for its key to go: directly when the holder runs on this daemon,
// through the job's stop key (cron_stop.hpp) when on another.
#pragma once

#include "conch/detail/cron_fire.hpp"
#include "conch/detail/cron_stop.hpp"
#include "conch/detail/cron_tick.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_policy.hpp"
#include "conch/logic/records.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

namespace conch::detail {

/// Who holds a job's running key, as a failed hold read it.
struct running_holder {
  running_record record{};
  revision created = 0;  ///< the key's create revision: which run holds it
  revision seen_at = 0;  ///< the revision it was read at
};

/// Creates the job's running key for this run, bound to `lease`: its
/// revision when created, else `errc::busy` with the holder. An unanswered
/// txn is sent again until answered (a resend that finds our own record
/// knows the first landed); `errc::cancelled` when `stop` ends that first.
template <class Backoff, transport T>
result<revision> hold_running(T& t, const std::string& key, const running_record& me,
                              lease_id lease, running_holder& holder, std::stop_token stop,
                              Backoff retry) {
  txn_request txn;
  txn.compares.push_back(compare::create_revision(key) == 0);
  put_request put;
  put.key = key;
  put.value = encode_record(me);
  put.lease = lease;
  txn.success.emplace_back(std::move(put));
  range_request read;
  read.key = key;
  txn.failure.emplace_back(std::move(read));
  auto r = t.txn(txn, t.default_deadline());
  while (!r) {
    if (!cron_pause(retry.next(), stop))
      return error{errc::cancelled, "running key undecided at shutdown: " + r.error().message};
    r = t.txn(txn, t.default_deadline());
  }
  if (r->succeeded) return r->header_revision;
  holder = {.seen_at = r->header_revision};
  for (const auto& op : r->responses)
    if (const auto* seen = std::get_if<range_response>(&op); seen && !seen->kvs.empty()) {
      holder.record =
          decode_record<running_record>(seen->kvs.front().value).value_or(running_record{});
      holder.created = seen->kvs.front().create_revision;
    }
  if (holder.record == me) return holder.created;  // our own, from a send whose answer was lost
  return error{errc::busy, "held"};
}

/// Deletes the running key if it is still this run's (created at `rev`),
/// retried until answered: a key left behind would hold the job for as long
/// as the daemon's lease lives. At shutdown (`stop`) the lease's revocation
/// takes it instead.
template <class Backoff, transport T>
void release_running(T& t, const std::string& key, revision rev, std::stop_token stop,
                     Backoff retry) {
  txn_request txn;
  txn.compares.push_back(compare::create_revision(key) == rev);
  delete_request del;
  del.key = key;
  txn.success.emplace_back(std::move(del));
  while (!t.txn(txn, t.default_deadline()))
    if (!cron_pause(retry.next(), stop)) return;
}

/// Who holds a job's running key, for a log line.
inline std::string holder_text(const running_holder& holder) {
  const running_record& h = holder.record;
  auto id = parse_run_id(h.run);
  return "the run of " +
         (id ? format_rfc3339(id->tick) + (id->manual ? " (cron run)" : "") : h.run) + " on " +
         (h.host.empty() ? std::string("?") : h.host) + "/" + std::to_string(h.pid);
}

/// A won tick's result that says it was not run, and why.
template <class Session, class Clock, class Options>
run_record skipped_run(const cron_fire_context<Session, Clock, Options>& c, const cron_job& job,
                       const cron_claimed<Session>& won, std::string why) {
  run_record r{};
  r.name = job.name();
  r.tick = won.claim.tick;
  r.host = c.options.host;
  r.pid = ::getpid();
  r.lease = won.claim.lease;
  r.start = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  r.end = r.start;
  r.skipped = std::move(why);
  return r;
}

/// Takes the job's running key for a won tick under forbid or replace: its
/// revision, or `errc::busy` with why the tick is skipped ("overlap: ..." or
/// "replace: ..."), or another error when etcd did not answer.
template <class Session, class Clock, class Options>
result<revision> take_gate(const cron_fire_context<Session, Clock, Options>& c, const cron_job& job,
                           const cron_claimed<Session>& won, cron_local_runs& local) {
  const running_record me{won.run, c.options.host, ::getpid(), won.claim.lease};
  running_holder holder{};
  using backoff = std::remove_cvref_t<decltype(c.options.backoff)>;
  auto hold = [&] {
    return hold_running(c.transport, job.running_key, me, won.session->lease(), holder, c.run_stop,
                        backoff(c.options.backoff));
  };
  auto held = hold();
  if (held || held.error().code != errc::busy) return held;
  if (job.concurrency == cron_concurrency::forbid)
    return error{errc::busy, "overlap: " + holder_text(holder) + " is still running"};
  // Replace: the holder's group gets SIGTERM, then SIGKILL after kill_after,
  // and its key goes once the group is gone; this daemon's own run is told
  // directly, another daemon's through the job's stop key.
  const auto bound = c.options.kill_after + c.options.ttl + std::chrono::seconds{5};
  bool gone = false;
  if (local.stop_held(job.name(), holder.created)) {
    c.say({.what = cron_event::kind::replaced,
           .job = job.name(),
           .tick = won.tick_text,
           .message = "replacing " + holder_text(holder) + ": stopping its group"});
    gone = local.wait_gone(job.name(), holder.created, bound);
  } else {
    gone = ask_stop(c.transport, job.stop_key, job.running_key, holder.created, holder.seen_at,
                    won.session->lease(), bound, c.run_stop);
  }
  if (!gone) return error{errc::busy, "replace: " + holder_text(holder) + " did not stop"};
  held = hold();
  if (!held && held.error().code == errc::busy)
    return error{errc::busy, "replace: " + holder_text(holder) + " took the job meanwhile"};
  return held;
}

/// Runs a won tick under the job's controls: the concurrency gate first
/// (a tick that may not run gets a result saying why), then the command,
/// stopped (SIGTERM, SIGKILL after kill_after) at the job's timeout or when
/// a newer tick replaces it.
template <class Session, class Clock, class Options>
run_record run_gated(const cron_fire_context<Session, Clock, Options>& c, const cron_job& job,
                     const cron_claimed<Session>& won, cron_local_runs& local) {
  std::optional<revision> gate;
  if (job.concurrency != cron_concurrency::allow) {
    auto g = take_gate(c, job, won, local);
    if (!g) return skipped_run(c, job, won, g.error().message);
    gate = *g;
  }
  auto stop = local.enter(job.name(), gate.value_or(0));
  std::atomic<bool> timed_out{false};
  std::jthread timer;
  if (job.timeout.count() > 0)
    timer = std::jthread{[&, stop](std::stop_token done) {
      if (!cron_pause(job.timeout, std::move(done))) return;
      timed_out = true;
      stop->stop.request_stop();
    }};
  run_record r = run_claimed(c, job, won, stop->stop.get_token());
  if (timer.joinable()) {
    timer.request_stop();
    timer.join();
  }
  r.timed_out = timed_out.load();
  if (gate)
    release_running(c.transport, job.running_key, *gate, c.run_stop,
                    std::remove_cvref_t<decltype(c.options.backoff)>(c.options.backoff));
  local.leave(job.name(), stop);
  return r;
}

/// What a recorded result says in the log: a skip (with its reason) or a
/// finished run (reason "timeout" when the job's timeout stopped it).
template <class Session>
cron_event result_event(const cron_job& job, const cron_claimed<Session>& won,
                        const run_record& r) {
  cron_event e{.job = job.name(), .tick = won.tick_text, .rev = won.rev};
  if (!r.skipped.empty()) {
    e.what = cron_event::kind::skipped;
    e.message = r.skipped;
    e.reason = r.skipped.starts_with("replace")   ? "replace"
               : r.skipped.starts_with("overlap") ? "overlap"
                                                  : "shutdown";
    return e;
  }
  e.what = cron_event::kind::finished;
  e.exit_code = r.exit_code;
  e.took = std::chrono::duration_cast<std::chrono::milliseconds>(r.end - r.start);
  if (r.timed_out) {
    e.reason = "timeout";
    e.message = "timed out after " + format_duration(job.timeout);
  }
  return e;
}

}  // namespace conch::detail
