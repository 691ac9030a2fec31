// conch/cron.hpp — at-most-once distributed cron: the daemon side.
//
// Several daemons share one etcd. Each watches the jobs under
// `<prefix>cron/jobs/`, computes every job's next tick T on its clock, and at
// T tries to claim `<prefix>cron/fire/NAME/<T>` with a create-if-absent txn.
// The single winner runs the command under the supervision core and records
// the result at `<prefix>cron/runs/NAME/<T>`, then prunes the job's history.
//
// - At most once: the claim is one key per tick, created once and never
//   lease-bound, so neither a dead winner nor a daemon with a skewed clock can
//   make a tick run twice. A killed winner leaves a claim without a result: a
//   zombie (see cron_jobs.hpp), never rerun.
// - No catch-up: a daemon counts ticks from the moment it starts, and one that
//   fell behind skips what it missed instead of firing it late in a burst.
// - Ticks are instants on the wall clock; `@every` ticks are multiples of the
//   period since the Unix epoch, so every daemon computes the same instants.
//   The bundle's clock drives the ticks when it tells wall time (is_steady is
//   false: system_clock_policy, fake_clock<std::chrono::system_clock>); a
//   steady clock — the default — measures deadlines only, and ticks then
//   follow system_clock_policy. The daemon's lease always runs on a steady
//   clock.
//
//   conch::etcd_transport t{opts};
//   conch::cron daemon{t, {.prefix = "conch/", .on_event = log}};  // basic_cron<default_policies>
//   if (auto r = daemon.start(); !r) return fail(69, r.error());
//   daemon.run(stop_token);   // until stopped; runs in flight finish (kill-after)
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_agenda.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/cron_history.hpp"
#include "conch/process/cron_run.hpp"
#include "conch/detail/cron_tick.hpp"
#include "conch/logic/hex.hpp"
#include "conch/fwd.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"
#include "conch/session.hpp"

namespace conch {

namespace detail {
/// The clock cron ticks follow: the bundle's own when it tells wall time.
template <class P>
using cron_wall_clock = std::conditional_t<P::clock::is_steady, system_clock_policy, typename P::clock>;
/// The clock the daemon's lease deadlines use: the bundle's own when steady.
template <class P>
using cron_lease_clock = std::conditional_t<P::clock::is_steady, typename P::clock, steady_clock_policy>;
}  // namespace detail

template <class P>
class basic_cron {
  static_assert(check_policy_bundle<P>());
  static_assert(check_transport_policy<typename P::transport>());
  static_assert(std::is_same_v<typename detail::cron_wall_clock<P>::time_point, std::chrono::system_clock::time_point>,
                "conch: cron ticks are wall-clock instants: a non-steady clock policy must tell system time "
                "(system_clock_policy, fake_clock<std::chrono::system_clock>)");

  // The lease only tells readers whether a claimer lives; its deadlines are
  // measured on a monotonic clock whatever wall clock the ticks follow.
  struct session_policies : P {
    using clock = detail::cron_lease_clock<P>;
  };

 public:
  using policies = P;
  using transport_type = typename P::transport;
  using clock_type = detail::cron_wall_clock<P>;  ///< what ticks are scheduled on
  using time_point = typename clock_type::time_point;
  using session_type = basic_session<session_policies>;
  /// Runs one claimed tick's command, telling `hooks` when its child starts and ends.
  using runner_type =
      std::function<detail::cron_outcome(const detail::cron_command&, std::stop_token, const detail::cron_run_hooks&)>;

  struct options {
    std::string prefix = "conch/";
    std::chrono::seconds ttl{10};       ///< the daemon's lease, named in its claims
    std::size_t history = 100;          ///< ticks kept per job; 0 keeps all
    std::size_t output_cap = 4096;      ///< output kept per result, at most run_record::max_output
    std::chrono::milliseconds kill_after{5000};  ///< grace for runs at shutdown
    std::string host{};                 ///< claimer host; empty: gethostname()
    std::function<void(const cron_event&)> on_event{};  ///< the log; called from several threads, serialized
    runner_type runner{};               ///< empty: the supervision core (detail::run_command)
  };

  explicit basic_cron(transport_type& t, options o = {}, clock_type c = {})
      : transport_(t), options_(std::move(o)), clock_(std::move(c)) {
    options_.prefix = detail::normalize_prefix(options_.prefix);
    if (options_.host.empty()) {
      char buf[256] = {};
      ::gethostname(buf, sizeof buf - 1);
      options_.host = buf;
    }
    if (!options_.runner)
      options_.runner = [](const detail::cron_command& cmd, std::stop_token stop, const detail::cron_run_hooks& hooks) {
        return detail::run_command(cmd, std::move(stop), hooks);
      };
  }
  basic_cron(const basic_cron&) = delete;
  basic_cron& operator=(const basic_cron&) = delete;
  ~basic_cron() { drain(); }

  /// Grants the daemon's lease and reads the jobs. Fails when etcd cannot be
  /// reached (or refuses us): nothing is scheduled then.
  result<void> start() {
    if (auto lease = current_lease(); !lease) return std::move(lease).error();
    return load_jobs();
  }

  /// Schedules and fires ticks until `stop`; then lets runs in flight finish
  /// (killing them after kill_after), records their results and revokes the
  /// lease. Starts first if start() was not called.
  result<void> run(std::stop_token stop) {
    if (!loaded_)
      if (auto r = start(); !r) return r;
    std::jthread watcher([this](std::stop_token s) { watch_jobs(std::move(s)); });
    schedule_until(stop);
    watcher.request_stop();
    watcher.join();
    drain();
    return {};
  }

  /// The lease this daemon names in its claims (0 before start()).
  lease_id lease() const {
    std::lock_guard lock{session_mutex_};
    return session_ ? session_->lease() : 0;
  }
  /// When the daemon's lease is presumed lost unless renewed (see session.hpp):
  /// what a watchdog over the runs enforces. Empty before start().
  std::optional<typename session_type::time_point> local_deadline() const {
    std::lock_guard lock{session_mutex_};
    if (!session_) return std::nullopt;
    return session_->local_deadline();
  }
  const options& settings() const noexcept { return options_; }

 private:
  struct job_slot {
    revision mod_revision = 0;
    std::shared_ptr<const detail::cron_job> job;  // null: the value is corrupt
  };
  struct run_slot {
    std::jthread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  void emit(cron_event e) {
    if (!options_.on_event) return;
    std::lock_guard lock{event_mutex_};
    options_.on_event(e);
  }

  // ---- the lease ----

  /// The lease to name in a claim; a lost session is replaced by a new one
  /// (claims made under the old lease then read as zombies unless their
  /// result is recorded, which is the truth: their claimer's lease is gone).
  result<lease_id> current_lease() {
    std::lock_guard lock{session_mutex_};
    if (session_ && !session_->lost()) return session_->lease();
    if (session_ && !loss_reported_) {
      emit({.what = cron_event::kind::error,
            .message = "lease lost (" + session_->lost_reason() + "); granting a new one"});
      loss_reported_ = true;
    }
    typename session_type::options lease_options;
    lease_options.ttl = options_.ttl;
    auto fresh = std::make_unique<session_type>(transport_, lease_options);
    if (auto r = fresh->start(); !r) return std::move(r).error();
    session_ = std::move(fresh);
    loss_reported_ = false;
    return session_->lease();
  }

  // ---- the jobs ----

  result<void> load_jobs() {
    auto r = transport_.range(range_request::prefix(detail::cron_jobs_dir(options_.prefix)),
                              transport_.default_deadline());
    if (!r) return std::move(r).error();
    std::lock_guard lock{mutex_};
    std::set<std::string> present;
    for (const auto& kv : r->kvs) present.insert(apply_put(kv));
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (present.contains(it->first)) {
        ++it;
        continue;
      }
      agenda_.drop(it->first);
      emit({.what = cron_event::kind::job_removed, .job = it->first});
      it = jobs_.erase(it);
    }
    watch_from_ = r->header_revision + 1;
    loaded_ = true;
    wake_.request_stop();
    return {};
  }

  /// The job table's name for a key below the jobs directory: the job's
  /// name, or the raw key for a foreign key (kept so it is reported once).
  std::string slot_name(const std::string& key) const {
    auto k = detail::decode_key<detail::cron_job_key>(options_.prefix, key);
    return k ? k->name : key;
  }

  // Called with mutex_ held. Returns the job's slot name.
  std::string apply_put(const key_value& kv) {
    std::string name = slot_name(kv.key);
    auto& slot = jobs_[name];
    if (slot.mod_revision == kv.mod_revision) return name;
    slot.mod_revision = kv.mod_revision;
    auto job = detail::read_cron_job(options_.prefix, kv.key, kv.value);
    if (!job) {
      slot.job.reset();
      agenda_.drop(name);
      emit({.what = cron_event::kind::job_corrupt, .job = name, .message = job.error().message});
      return name;
    }
    slot.job = std::make_shared<const detail::cron_job>(std::move(*job));
    const auto next = plan(name, *slot.job, clock_.now());
    const auto& rec = slot.job->record;
    emit({.what = cron_event::kind::job_loaded,
          .job = name,
          .tick = next ? detail::format_rfc3339(*next) : std::string(),
          .message = rec.schedule + (rec.tz.empty() ? "" : " (" + rec.tz + ")")});
    return name;
  }

  // Called with mutex_ held.
  void apply_delete(const key_value& kv) {
    const std::string name = slot_name(kv.key);
    if (jobs_.erase(name) == 0) return;
    agenda_.drop(name);
    emit({.what = cron_event::kind::job_removed, .job = name});
  }

  std::optional<detail::tick_time> plan(const std::string& name, const detail::cron_job& job, time_point after) {
    auto next = job.next_after(after);
    if (next)
      agenda_.plan(name, *next);
    else
      agenda_.drop(name);
    return next;
  }

  /// Waits out a retry delay in real time: network trouble does not heed a
  /// test's fake wall clock.
  static bool pause(std::chrono::milliseconds d, std::stop_token stop) {
    return steady_clock_policy::sleep_until(std::chrono::steady_clock::now() + d, std::move(stop));
  }

  // The watch thread: job changes take effect at once, without polling.
  void watch_jobs(std::stop_token stop) {
    typename P::backoff retry{};
    while (!stop.stop_requested()) {
      revision from;
      {
        std::lock_guard lock{mutex_};
        from = watch_from_;
      }
      auto stream = transport_.watch(watch_request::prefix(detail::cron_jobs_dir(options_.prefix), from));
      std::stop_callback cancel{stop, [&] { stream.cancel(); }};
      for (;;) {
        auto batch = stream.next(std::chrono::steady_clock::now() + std::chrono::minutes{10});
        if (batch) {
          std::lock_guard lock{mutex_};
          for (const auto& e : batch->events) {
            if (e.type == watch_event::kind::put)
              apply_put(e.kv);
            else
              apply_delete(e.kv);
            watch_from_ = std::max(watch_from_, e.kv.mod_revision + 1);
          }
          watch_from_ = std::max(watch_from_, batch->header_revision + 1);
          wake_.request_stop();
          retry.reset();
          continue;
        }
        if (batch.error().code == errc::timed_out) continue;
        if (stop.stop_requested()) return;
        if (batch.error().code == errc::compacted) {
          // The gap is unreadable: read the jobs afresh and watch from there.
          while (!stop.stop_requested()) {
            auto r = load_jobs();
            if (r) break;
            if (!pause(retry.next(), stop)) return;
          }
        } else {
          emit({.what = cron_event::kind::error, .message = "job watch: " + batch.error().message});
          if (!pause(retry.next(), stop)) return;
        }
        break;
      }
    }
  }

  // ---- the ticks ----

  void schedule_until(const std::stop_token& stop) {
    std::unique_lock lock{mutex_};
    while (!stop.stop_requested()) {
      const time_point now = clock_.now();
      for (auto& due : agenda_.take_due(now)) {
        auto it = jobs_.find(due.job);
        if (it == jobs_.end() || !it->second.job) continue;
        fire(it->second.job, it->second.mod_revision, std::chrono::floor<std::chrono::seconds>(due.tick));
        plan(due.job, *it->second.job, detail::resume_point<time_point>(due.tick, now));
      }
      reap_runs();
      const time_point wake_at = agenda_.earliest().value_or(now + std::chrono::hours{24});
      std::stop_source wake;
      wake_ = wake;
      lock.unlock();
      {
        std::stop_callback forward{stop, [&] { wake.request_stop(); }};
        clock_.sleep_until(wake_at, wake.get_token());
      }
      lock.lock();
    }
  }

  void fire(std::shared_ptr<const detail::cron_job> job, revision job_rev, detail::tick_time tick) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    runs_.push_back({std::jthread([this, job = std::move(job), job_rev, tick, done] {
                       fire_tick(*job, job_rev, tick);
                       done->store(true);
                     }),
                     done});
  }

  void reap_runs() {
    runs_.remove_if([](const run_slot& r) { return r.done->load(); });  // joins
  }

  /// Stops scheduling, gives runs in flight kill_after, joins them, revokes the lease.
  void drain() {
    run_stop_.request_stop();
    std::list<run_slot> runs;
    {
      std::lock_guard lock{mutex_};
      runs = std::move(runs_);
      runs_.clear();
    }
    runs.clear();  // joins
    std::unique_ptr<session_type> session;
    {
      std::lock_guard lock{session_mutex_};
      session = std::move(session_);
    }
    if (session) (void)session->close();
  }

  /// Claim, run, record, prune: the life of one tick on one daemon.
  void fire_tick(const detail::cron_job& job, revision job_rev, detail::tick_time tick) {
    const std::string& name = job.name();
    const std::string tick_text = detail::format_rfc3339(tick);
    if (run_stop_.stop_requested()) return;  // shutting down: claim nothing more
    auto lease = current_lease();
    if (!lease) {
      emit({.what = cron_event::kind::error, .job = name, .tick = tick_text,
            .message = "no lease, tick not claimed: " + lease.error().message});
      return;
    }
    // A daemon that fell behind (overloaded, stalled, cut off) sheds a tick
    // once the job's next one is due, rather than running ticks ever later.
    if (const auto next = job.next_after(tick); next && detail::is_stale_tick(clock_.now(), *next)) {
      emit({.what = cron_event::kind::skipped, .job = name, .tick = tick_text,
            .message = "late: the next tick (" + detail::format_rfc3339(*next) + ") is already due"});
      return;
    }
    if (run_stop_.stop_requested()) return;
    const std::string fire_key = detail::tick_key(job.fire_dir, tick);
    const std::string runs_key = detail::tick_key(job.runs_dir, tick);
    detail::claim_record claim{};
    claim.name = name;
    claim.tick = tick;
    claim.host = options_.host;
    claim.pid = ::getpid();
    claim.lease = detail::lease_hex(*lease);
    claim.start = std::chrono::floor<std::chrono::milliseconds>(clock_.now());
    const std::string claim_value = detail::encode_record(claim);

    auto rev = detail::send_claim<typename P::backoff>(transport_, fire_key, claim_value, job.key, job_rev,
                                                       run_stop_.get_token());
    if (!rev) {
      if (rev.error().code != errc::busy)
        emit({.what = cron_event::kind::error, .job = name, .tick = tick_text, .message = rev.error().message});
      return;
    }
    emit({.what = cron_event::kind::claimed, .job = name, .tick = tick_text, .rev = *rev,
          .message = "lease " + claim.lease});

    detail::cron_command cmd{.argv = job.record.argv,
                             .env = {{"CONCH_TICK", tick_text},
                                     {"CONCH_REV", std::to_string(*rev)},
                                     {"CONCH_NAME", name},
                                     {"CONCH_KEY", fire_key},
                                     {"CONCH_LEASE", claim.lease}},
                             .output_cap = options_.output_cap,
                             .kill_after = options_.kill_after};
    detail::cron_run_hooks hooks;
    hooks.started = [&](long pid) {
      emit({.what = cron_event::kind::started, .job = name, .tick = tick_text, .rev = *rev, .pid = pid});
    };
    auto outcome = options_.runner(cmd, run_stop_.get_token(), hooks);

    detail::run_record result{};
    result.name = name;
    result.tick = tick;
    result.host = options_.host;
    result.pid = ::getpid();
    result.lease = claim.lease;
    result.start = std::chrono::floor<std::chrono::milliseconds>(outcome.start);
    result.end = std::chrono::floor<std::chrono::milliseconds>(outcome.end);
    result.exit_code = outcome.exit_code;
    result.output = detail::utf8_tail(outcome.output, options_.output_cap);
    if (auto w = detail::send_result<typename P::backoff>(transport_, fire_key, *rev, runs_key,
                                                          detail::encode_record(result));
        !w) {
      emit({.what = cron_event::kind::error, .job = name, .tick = tick_text, .rev = *rev,
            .message = "result not recorded: " + w.error().message});
      return;
    }
    emit({.what = cron_event::kind::finished, .job = name, .tick = tick_text, .rev = *rev,
          .pid = outcome.pid, .exit_code = outcome.exit_code,
          .took = std::chrono::duration_cast<std::chrono::milliseconds>(outcome.end - outcome.start)});
    detail::prune_history(transport_, job, options_.history);
  }

  transport_type& transport_;
  options options_;
  [[no_unique_address]] clock_type clock_;

  mutable std::mutex session_mutex_;
  std::unique_ptr<session_type> session_;
  bool loss_reported_ = false;
  std::mutex event_mutex_;

  std::mutex mutex_;  // guards everything below
  std::map<std::string, job_slot> jobs_;
  detail::cron_agenda<time_point> agenda_;
  revision watch_from_ = 0;
  bool loaded_ = false;
  std::stop_source wake_;  // requested to make the scheduler look again
  std::list<run_slot> runs_;
  std::stop_source run_stop_;  // shutdown: runs in flight get kill_after
};

}  // namespace conch
