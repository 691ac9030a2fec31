// conch/tool/tool_metrics.hpp — the metrics conchd, `conch elect` and
// `conch sema` export (docs/operating.md lists them all), and how each is fed:
// conchd's from its cron events (logic/cron_event.hpp), the wrappers' from the
// holding flow's hooks (tool/hold.hpp). Pure bookkeeping: no HTTP, no etcd.
#pragma once

#include "conch/logic/cron_event.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/tool/hold.hpp"
#include "conch/tool/metrics.hpp"

#include <chrono>
#include <string>

namespace conch::tool {

inline void describe_session_metrics(metrics_registry& m) {
  m.describe("conch_session_up", metric_type::gauge,
             "1 while the session's lease is held and ahead of its local deadline, else 0.");
}

inline void describe_cron_metrics(metrics_registry& m) {
  describe_session_metrics(m);
  m.describe("conch_cron_ticks_claimed_total", metric_type::counter,
             "Ticks this daemon claimed, by job.");
  m.describe("conch_cron_ticks_run_total", metric_type::counter,
             "Runs this daemon started, by job.");
  m.describe(
      "conch_cron_ticks_skipped_total", metric_type::counter,
      "Ticks not run, by job and reason: late (not claimed: the next tick was already due), "
      "overlap (claimed and recorded as skipped: concurrency forbid and the previous run still "
      "runs), replace (claimed and recorded as skipped: the previous run is on another daemon).");
  m.describe("conch_cron_ticks_timed_out_total", metric_type::counter,
             "Runs the job's --timeout stopped, by job.");
  m.describe("conch_cron_runs_replaced_total", metric_type::counter,
             "Runs of this daemon stopped for a newer tick of their job (concurrency replace), "
             "by job.");
  m.describe("conch_cron_ticks_failed_total", metric_type::counter,
             "Runs that ended with a non-zero exit code, by job.");
  m.describe("conch_cron_ticks_killed_total", metric_type::counter,
             "Runs ended by a signal (stopped at shutdown after --kill-after, or by the watchdog), "
             "by job.");
  m.describe(
      "conch_cron_errors_total", metric_type::counter,
      "Errors the daemon logged (claims or results not written, unreadable jobs, watch errors).");
  m.describe("conch_cron_claim_conflicts_total", metric_type::counter,
             "Claims of this daemon another daemon won first (the tick ran there), by job.");
  m.describe("conch_cron_zombie_claims", metric_type::gauge,
             "Claims in the job's history with no result whose claimer's lease is gone (never "
             "rerun), as last seen by this daemon's history pruning, by job.");
  m.describe("conch_cron_run_duration_seconds", metric_type::histogram, "How long runs took.",
             duration_buckets());
  m.describe("conch_cron_tick_start_lag_seconds", metric_type::histogram,
             "From a tick's scheduled instant to its run's start on this daemon.",
             latency_buckets());
}

/// Folds one cron event into `m`; `now` is when it happened.
inline void observe_cron_event(metrics_registry& m, const cron_event& e, detail::wall_time now) {
  const metric_labels job{{"job", e.job}};
  switch (e.what) {
    case cron_event::kind::claimed:
      m.add("conch_cron_ticks_claimed_total", job);
      break;
    case cron_event::kind::started: {
      m.add("conch_cron_ticks_run_total", job);
      if (auto tick = detail::parse_rfc3339(e.tick)) {
        const std::chrono::duration<double> lag = now - *tick;
        m.observe("conch_cron_tick_start_lag_seconds", {}, std::max(0.0, lag.count()));
      }
      break;
    }
    case cron_event::kind::skipped:
      m.add("conch_cron_ticks_skipped_total",
            {{"job", e.job}, {"reason", e.reason.empty() ? std::string("late") : e.reason}});
      break;
    case cron_event::kind::finished:
      m.observe("conch_cron_run_duration_seconds", {},
                std::chrono::duration<double>(e.took).count());
      if (e.exit_code != 0) m.add("conch_cron_ticks_failed_total", job);
      if (e.exit_code > 128) m.add("conch_cron_ticks_killed_total", job);
      if (e.reason == "timeout") m.add("conch_cron_ticks_timed_out_total", job);
      break;
    case cron_event::kind::replaced:
      m.add("conch_cron_runs_replaced_total", job);
      break;
    case cron_event::kind::error:
      m.add("conch_cron_errors_total");
      break;
    case cron_event::kind::job_loaded:
    case cron_event::kind::job_removed:
      break;
    case cron_event::kind::job_corrupt:
      m.add("conch_cron_errors_total");
      break;
    case cron_event::kind::daemon:
      break;
    case cron_event::kind::conflict:
      m.add("conch_cron_claim_conflicts_total", job);
      break;
    case cron_event::kind::zombies:
      m.set("conch_cron_zombie_claims", job, static_cast<double>(e.count));
      break;
  }
}

/// Families of a holding wrapper; `kind` is "elect" or "sema", `name` the office or semaphore.
inline void describe_hold_metrics(metrics_registry& m) {
  describe_session_metrics(m);
  m.describe("conch_holding", metric_type::gauge,
             "1 while this wrapper holds its office or slot, else 0.");
  m.describe("conch_waiting", metric_type::gauge, "1 while this wrapper waits to acquire, else 0.");
  m.describe("conch_child_starts_total", metric_type::counter, "Times the command was started.");
  m.describe("conch_child_restarts_total", metric_type::counter,
             "Times the command was started again (--restart).");
  m.describe("conch_child_exits_total", metric_type::counter,
             "Times the command ended, by exit code.");
  m.describe("conch_losses_total", metric_type::counter,
             "Times the office or slot was lost with the lease (exit 70).");
}

/// Hooks that keep the wrapper's metrics (see describe_hold_metrics).
inline hold_hooks metrics_hooks(metrics_registry& m) {
  hold_hooks h;
  h.waiting = [&m] { m.set("conch_waiting", {}, 1); };
  h.acquired = [&m] {
    m.set("conch_waiting", {}, 0);
    m.set("conch_holding", {}, 1);
  };
  h.started = [&m](long) {
    if (m.value("conch_child_starts_total") > 0) m.add("conch_child_restarts_total");
    m.add("conch_child_starts_total");
  };
  h.exited = [&m](int code) { m.add("conch_child_exits_total", {{"code", std::to_string(code)}}); };
  h.lease = [&m](std::chrono::steady_clock::time_point d) {
    m.set("conch_session_up", {}, std::chrono::steady_clock::now() < d ? 1 : 0);
  };
  h.watch_every = std::chrono::seconds(1);
  h.done = [&m](int code) {
    m.set("conch_waiting", {}, 0);
    m.set("conch_holding", {}, 0);
    if (code == 70) m.add("conch_losses_total");
  };
  return h;
}

}  // namespace conch::tool
