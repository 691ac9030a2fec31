// conch/detail/cron_fire.hpp — one tick on one daemon: the claim, and the run
// of a claim won under the supervisor (process/supervise.hpp).
#pragma once

#include "conch/detail/cron_lease.hpp"
#include "conch/detail/cron_tick.hpp"
#include "conch/detail/txn_batcher.hpp"
#include "conch/logic/cron_agenda.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_policy.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/records.hpp"
#include "conch/policies/backoff.hpp"
#include "conch/process/output.hpp"
#include "conch/process/supervise.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <unistd.h>
#include <utility>

namespace conch::detail {

/// What claiming and running a tick reads from its daemon. `Options` is the
/// daemon's options (host, output_cap, kill_after, watchdog).
template <class Session, class Clock, class Options>
struct cron_fire_context {
  typename Session::transport_type& transport;
  /// Claims and results go here: those of ticks in flight at once share one
  /// etcd write (detail/txn_batcher.hpp); the txns are the same.
  txn_batcher<typename Session::transport_type>& writes;
  cron_lease<Session>& lease;
  const Clock& clock;  ///< the wall clock ticks follow
  const Options& options;
  const std::function<void(cron_event)>& say;
  std::stop_token run_stop;  ///< shutdown: claim nothing more, runs get kill_after
};

/// A tick this daemon won.
template <class Session>
struct cron_claimed {
  std::shared_ptr<Session> session;  ///< the session the claim names
  claim_record claim;
  revision rev = 0;
  std::string fire_key, runs_key, tick_text;
  std::string run;  ///< the keys' last segment: the tick, or a `cron run` id
  /// The job's running key's create revision when the claim took it
  /// (forbid, replace; then it equals `rev`); 0 otherwise.
  revision gate = 0;
  /// Who held the running key when a replace claim found it held.
  std::optional<running_holder> holder;
  /// The result recorded with the claim (forbid, the job held: skipped).
  std::optional<run_record> recorded;
};

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

/// Who holds a job's running key, for a log line.
inline std::string holder_text(const running_holder& holder) {
  const running_record& h = holder.record;
  auto id = parse_run_id(h.run);
  return "the run of " +
         (id ? format_rfc3339(id->tick) + (id->manual ? " (cron run)" : "") : h.run) + " on " +
         (h.host.empty() ? std::string("?") : h.host) + "/" + std::to_string(h.pid);
}

/// Why a claim sent for `tick` did not win it: refused by etcd until the
/// next tick was due (skipped, late), taken by another daemon (a conflict),
/// or an error.
inline cron_event unclaimed_event(const cron_job& job, const std::string& tick, const error& e) {
  if (e.code == errc::timed_out)
    return {.what = cron_event::kind::skipped,
            .job = job.name(),
            .tick = tick,
            .message = "late: " + e.message,
            .reason = "late"};
  if (e.code == errc::busy)
    return {.what = cron_event::kind::conflict,
            .job = job.name(),
            .tick = tick,
            .message = "claimed by another daemon"};
  return {.what = cron_event::kind::error, .job = job.name(), .tick = tick, .message = e.message};
}

/// Sends the claim of a tick whose record `won` holds, in one txn with what
/// the job's concurrency policy takes: the running key (forbid, replace). A
/// forbid tick that finds the key held is claimed with its skipped result
/// instead (`won.recorded`); a replace tick is claimed without the key, and
/// learns its holder (`won.holder`). The claim's revision, or why not.
template <class Backoff, class Session, class Clock, class Options, class Late>
result<revision> send_claims(const cron_fire_context<Session, Clock, Options>& c,
                             const cron_job& job, revision job_rev, cron_claimed<Session>& won,
                             const std::string& value, Late&& late) {
  auto send = [&](const txn_request& txn, running_holder* held = nullptr) {
    return send_claim(c.writes, txn, value, c.run_stop, Backoff(c.options.backoff), late, held);
  };
  auto claim = [&](const running_take* take) {
    return claim_txn(job.fire_dir, job.floor_dir, won.run, value, job.key, job_rev, take);
  };
  if (job.concurrency == cron_concurrency::allow) return send(claim(nullptr));
  const running_take take{
      job.running_key,
      encode_record(running_record{won.run, won.claim.host, won.claim.pid, won.claim.lease}),
      won.session->lease()};
  running_holder holder{};
  auto rev = send(claim(&take), &holder);
  if (rev) won.gate = *rev;
  if (rev || rev.error().code != errc::failed_precondition) return rev;
  if (job.concurrency == cron_concurrency::replace) {
    won.holder = holder;
    return send(claim(nullptr));
  }
  run_record skip =
      skipped_run(c, job, won, "overlap: " + holder_text(holder) + " is still running");
  rev = send(claim_recorded_txn(job.fire_dir, job.floor_dir, won.run, value, job.key, job_rev,
                                won.runs_key, encode_record(skip)));
  if (rev) won.recorded = std::move(skip);
  return rev;
}

/// Claims `tick` of `job` (at `job_rev`) under the daemon's current lease;
/// nullopt when there is no lease, the tick came too late, another daemon
/// holds it (a conflict, counted) or the daemon is shutting down (each
/// reported but the last).
/// A run asked for by hand (`cron run`) passes its id as `run`: claimed the
/// same way, under its own key, and never late.
template <class Backoff, class Session, class Clock, class Options>
std::optional<cron_claimed<Session>> claim_tick(const cron_fire_context<Session, Clock, Options>& c,
                                                const cron_job& job, revision job_rev,
                                                tick_time tick, const std::string& run = {}) {
  cron_claimed<Session> won;
  won.tick_text = format_rfc3339(tick);
  auto session = c.lease.current();
  if (!session) {
    c.say({.what = cron_event::kind::error,
           .job = job.name(),
           .tick = won.tick_text,
           .message = "no lease, tick not claimed: " + session.error().message});
    return std::nullopt;
  }
  won.session = std::move(*session);
  // A daemon that fell behind (overloaded, stalled, cut off) sheds a tick
  // once the job's next one is due, rather than running ticks ever later.
  const auto next = job.next_after(tick);
  auto late = [&] { return run.empty() && next && is_stale_tick(c.clock.now(), *next); };
  if (late()) {
    c.say({.what = cron_event::kind::skipped,
           .job = job.name(),
           .tick = won.tick_text,
           .message = "late: the next tick (" + format_rfc3339(*next) + ") is already due",
           .reason = "late"});
    return std::nullopt;
  }
  if (c.run_stop.stop_requested()) return std::nullopt;
  won.run = run.empty() ? format_tick(tick) : run;
  won.fire_key = job.fire_dir + won.run;
  won.runs_key = job.runs_dir + won.run;
  won.claim = {job.name(),
               tick,
               c.options.host,
               ::getpid(),
               lease_hex(won.session->lease()),
               std::chrono::floor<std::chrono::milliseconds>(c.clock.now())};
  const std::string value = encode_record(won.claim);
  auto rev = send_claims<Backoff>(c, job, job_rev, won, value, late);
  if (!rev) {
    c.say(unclaimed_event(job, won.tick_text, rev.error()));
    return std::nullopt;
  }
  won.rev = *rev;
  c.say({.what = cron_event::kind::claimed,
         .job = job.name(),
         .tick = won.tick_text,
         .rev = won.rev,
         .message = "lease " + won.claim.lease + (run.empty() ? "" : " (cron run " + run + ")")});
  return won;
}

/// The claim as the supervisor sees it: the environment, and the lease's
/// loss and deadline.
template <class Session>
process::held_claim held_by(const cron_job& job, const cron_claimed<Session>& won) {
  process::held_claim held;
  held.env = {{"CONCH_TICK", won.tick_text},
              {"CONCH_REV", std::to_string(won.rev)},
              {"CONCH_NAME", job.name()},
              {"CONCH_KEY", won.fire_key},
              {"CONCH_LEASE", won.claim.lease}};
  held.lost = won.session->lost_token();
  if constexpr (std::is_same_v<typename Session::time_point, std::chrono::steady_clock::time_point>)
    held.local_deadline = [s = won.session.get()] { return s->local_deadline(); };
  held.lost_reason = [s = won.session.get()] { return s->lost_reason(); };
  return held;
}

/// Runs a won tick's command under the supervisor: the daemon's lease lost
/// stops its group; so does the command's own exit (what it left running
/// in its group is stopped before the result is recorded); a shutdown
/// gives it kill_after; `terminate` (timeout, replace) sends SIGTERM, then
/// SIGKILL after kill_after.
template <class Session, class Clock, class Options>
run_record run_claimed(const cron_fire_context<Session, Clock, Options>& c, const cron_job& job,
                       const cron_claimed<Session>& won, std::stop_token terminate = {}) {
  auto say = [&](cron_event e) {
    e.job = job.name();
    e.tick = won.tick_text;
    e.rev = won.rev;
    c.say(std::move(e));
  };
  process::held_claim held = held_by(job, won);
  process::output_tail tail{c.options.output_cap};
  process::supervise_options run;
  run.argv = job.record.argv;
  run.kill_after = c.options.kill_after;
  run.forward_stop = false;
  run.terminate = std::move(terminate);
  run.capture = &tail;
  run.on_start = [&](long pid) { say({.what = cron_event::kind::started, .pid = pid}); };
  run.say = [&](const std::string& line) {
    say({.what = cron_event::kind::error, .message = line});
  };
  run_record result{};
  result.start = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  auto out = process::supervisor<exponential_backoff>{held, run,       nullptr, c.options.watchdog,
                                                      {},   c.run_stop}
                 .run();
  result.end = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  result.name = job.name();
  result.tick = won.claim.tick;
  result.host = c.options.host;
  result.pid = ::getpid();
  result.lease = won.claim.lease;
  result.exit_code = out.exit_code;
  result.output =
      utf8_tail(out.how == process::supervise_outcome::ending::not_started ? out.not_started_reason
                                                                           : tail.str(),
                c.options.output_cap);
  return result;
}

}  // namespace conch::detail
