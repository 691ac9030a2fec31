// conch/detail/cron_gate.hpp — a won tick's way to its run under the job's
// controls: the concurrency policy and the timeout.
//
// One run at a time (forbid, replace): a run holds `<prefix>cron/running/NAME`,
// created if absent by the tick's claim txn and bound to its claimer's lease,
// for as long as its process group may live. The key is absent exactly when
// no run of the job may be running on any daemon: the holder deletes it with
// its result, once its group is stopped, and a dead or cut-off holder's lease
// takes it along — only after that daemon's supervisor (or its watchdog)
// stopped the group at the lease's local deadline, which comes before etcd
// expires the lease. So a tick that finds the key held skips (forbid: the
// claim and its skipped result are one txn) or stops the holder (replace).
// Either way a tick costs two writes when its job is free: claim, result.
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

/// Takes the job's running key for a replace tick whose claim found it held
/// by `holder`: stops that run first. The key's revision, or `errc::busy`
/// with why the tick is skipped ("replace: ..."), or another error when etcd
/// did not answer.
template <class Session, class Clock, class Options>
result<revision> take_gate(const cron_fire_context<Session, Clock, Options>& c, const cron_job& job,
                           const cron_claimed<Session>& won, const running_holder& holder,
                           cron_local_runs& local) {
  const running_record me{won.run, c.options.host, ::getpid(), won.claim.lease};
  running_holder now{};
  using backoff = std::remove_cvref_t<decltype(c.options.backoff)>;
  auto hold = [&] {
    return hold_running(c.transport, job.running_key, me, won.session->lease(), now, c.run_stop,
                        backoff(c.options.backoff));
  };
  // The holder's group gets SIGTERM, then SIGKILL after kill_after, and its
  // key goes with its result once the group is gone; this daemon's own run
  // is told directly, another daemon's through the job's stop key.
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
  auto held = hold();
  if (!held && held.error().code == errc::busy)
    return error{errc::busy, "replace: " + holder_text(now) + " took the job meanwhile"};
  return held;
}

/// Records a won tick's result and releases the job's running key (held
/// since `gate`; 0: none) in one txn, sent through `writes` (shared with the
/// ticks in flight at once). Should that txn fail its compares — the key
/// went with a lost lease, or the claim is gone — each is done on its own,
/// fenced as before: the key is never left to a run that ended.
template <class Backoff, transport T, class Session>
result<void> record_result(txn_batcher<T>& writes, const cron_job& job,
                           const cron_claimed<Session>& won, revision gate, const run_record& r,
                           std::stop_token stop, Backoff retry) {
  const std::string value = encode_record(r);
  if (gate != 0) {
    auto both = send_result(
        writes, result_txn(won.fire_key, won.rev, won.runs_key, value, job.running_key, gate),
        won.fire_key, stop, retry);
    if (both || both.error().code != errc::failed_precondition) return both;
    release_running(writes.transport(), job.running_key, gate, stop, retry);
  }
  return send_result(writes, result_txn(won.fire_key, won.rev, won.runs_key, value), won.fire_key,
                     stop, retry);
}

/// Runs a won tick under the job's controls, and `record`s its result (a
/// `result<void>(const run_record&, revision gate)`: the result, with the
/// release of the running key held since `gate`, 0 for none) before the run
/// leaves this daemon's runs in flight — so a replacing tick that waited for
/// it finds the key gone. The concurrency gate comes first (a tick that may
/// not run gets a result saying why), then the command, stopped (SIGTERM,
/// SIGKILL after kill_after) at the job's timeout or when a newer tick
/// replaces it. What `record` returned.
template <class Session, class Clock, class Options, class Record>
auto run_gated(const cron_fire_context<Session, Clock, Options>& c, const cron_job& job,
               const cron_claimed<Session>& won, cron_local_runs& local, Record&& record)
    -> std::pair<run_record, result<void>> {
  revision gate = won.gate;
  if (job.concurrency != cron_concurrency::allow && gate == 0 && won.holder) {
    auto g = take_gate(c, job, won, *won.holder, local);
    if (!g) {
      run_record skip = skipped_run(c, job, won, g.error().message);
      auto done = record(skip, revision{0});
      return {std::move(skip), std::move(done)};
    }
    gate = *g;
  }
  auto stop = local.enter(job.name(), gate);
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
  auto done = record(r, gate);
  local.leave(job.name(), stop);
  return {std::move(r), std::move(done)};
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
