// conch/cron.hpp — at-most-once distributed cron: the daemon side.
//
// Several daemons share one etcd. Each watches the jobs under
// `<prefix>cron/jobs/`, computes every job's next tick T on its clock, and at
// T tries to claim `<prefix>cron/fire/NAME/<T>` with a create-if-absent txn.
// The single winner runs the command under the supervision core and records
// the result at `<prefix>cron/runs/NAME/<T>`; the job's history is pruned in
// batches, off the tick's path (detail/cron_pruner.hpp). The claims and
// results of ticks in flight at once share one etcd write, each txn
// unchanged and answered on its own (detail/txn_batcher.hpp).
//
// - At most once: the claim is one key per tick, created once and never
//   lease-bound, so neither a dead winner nor a daemon with a skewed clock can
//   make a tick run twice. A killed winner leaves a claim without a result: a
//   zombie (see cron_jobs.hpp), never rerun.
// - No catch-up: a daemon counts ticks from the moment it starts, and one that
//   fell behind skips what it missed instead of firing it late in a burst.
// - Job controls (docs/cron.md "Job controls"): a tick whose job's previous
//   run still runs skips, overlaps or replaces it (detail/cron_gate.hpp,
//   cron_stop.hpp); a per-job timeout; paused jobs; runs asked for by hand.
// - Ticks are instants on the wall clock; `@every` ticks are multiples of the
//   period since the Unix epoch, so every daemon computes the same instants.
//   The bundle's clock drives the ticks when it tells wall time (is_steady is
//   false: system_clock_policy, fake_clock<std::chrono::system_clock>); a
//   steady clock — the default — measures deadlines only, and ticks then
//   follow system_clock_policy. The daemon's lease always runs on a steady
//   clock: the instance given to the constructor when it is steady (so a
//   test's fake_clock<> drives the lease), steady_clock_policy otherwise.
//
//   conch::etcd_transport t{opts};
//   conch::cron daemon{t, {.prefix = "conch/", .on_event = log}};  // basic_cron<default_policies>
//   if (auto r = daemon.start(); !r) return fail(69, r.error());
//   daemon.run(stop_token);   // until stopped; runs in flight finish (kill-after)
#pragma once

#include "conch/detail/cron_clock.hpp"
#include "conch/detail/cron_fire.hpp"
#include "conch/detail/cron_gate.hpp"
#include "conch/detail/cron_lease.hpp"
#include "conch/detail/cron_peers.hpp"
#include "conch/detail/cron_pool.hpp"
#include "conch/detail/cron_pruner.hpp"
#include "conch/detail/cron_table.hpp"
#include "conch/detail/cron_tick.hpp"
#include "conch/detail/start_thread.hpp"
#include "conch/detail/txn_batcher.hpp"
#include "conch/fwd.hpp"
#include "conch/logic/cron_agenda.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_turns.hpp"
#include "conch/logic/hex.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/transport.hpp"
#include "conch/process/output.hpp"
#include "conch/process/supervise.hpp"
#include "conch/result.hpp"
#include "conch/session.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <utility>

namespace conch {

template <class P>
class basic_cron {
  static_assert(check_policy_bundle<P>());
  static_assert(check_transport_policy<typename P::transport>());
  static_assert(
      std::is_same_v<typename detail::cron_wall_clock<P>::time_point,
                     std::chrono::system_clock::time_point>,
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

  struct options {
    std::string prefix = "conch/";
    std::chrono::seconds ttl{10};   ///< the daemon's lease, named in its claims
    std::size_t history = 100;      ///< ticks kept per job; 0 keeps all
    std::size_t output_cap = 4096;  ///< output kept per result, at most run_record::max_output
    std::chrono::milliseconds kill_after{5000};  ///< grace for runs at shutdown
    std::size_t workers =
        64;  ///< ticks claimed and run at once; later ones wait (and are shed when late)
    std::string host{};  ///< claimer host; empty: gethostname()
    std::function<void(const cron_event&)>
        on_event{};  ///< the log; called from several threads, serialized
    /// Guards every run's process group against a frozen daemon (see
    /// process/watchdog.hpp); empty: runs are stopped by the daemon alone.
    process::watchdog_handle watchdog{};
    /// Paces retries (claims and results in doubt, the jobs watch, the
    /// lease's keepalives); each operation copies it.
    typename P::backoff backoff{};
  };

  /// `c` is the bundle's clock: the ticks follow it when it tells wall time,
  /// the lease's deadlines when it is steady.
  explicit basic_cron(transport_type& t, options o = {}, typename P::clock c = {})
      : transport_(t),
        options_(settled(std::move(o))),
        clock_(detail::wall_clock_of<P>(c)),
        lease_(t, {.ttl = options_.ttl, .backoff = options_.backoff}, options_.kill_after,
               detail::lease_clock_of<P>(c), emit_) {}
  basic_cron(const basic_cron&) = delete;
  basic_cron& operator=(const basic_cron&) = delete;
  ~basic_cron() { drain(); }

  /// Grants the daemon's lease and reads the jobs. Fails when etcd cannot be
  /// reached (or refuses us): nothing is scheduled then.
  result<void> start() {
    if (auto s = lease_.current(); !s) return std::move(s).error();
    return load_jobs();
  }

  /// Schedules and fires ticks until `stop`; then lets runs in flight finish
  /// (killing them after kill_after), records their results and revokes the
  /// lease. Starts first if start() was not called.
  result<void> run(std::stop_token stop) {
    if (!loaded_)
      if (auto r = start(); !r) return r;
    // Threads refused are waited for, never fatal: the watches, then workers
    // (at least one, up to options::workers). Ticks due meanwhile are shed.
    std::jthread watcher = detail::keep_starting(
        [this](std::stop_token s) {
          detail::run_guarded([&] { watch_jobs(s); }, pacing(s), complaint("job watch failed: "));
        },
        pacing(stop), complaint("job watch not started: "));
    std::jthread stopper = keep_watching([this](std::stop_token s) { watch_stops(s); }, stop,
                                         "stop-request watch");  // replacing ticks (cron_stop.hpp)
    std::jthread claims = keep_watching([this](std::stop_token s) { watch_claims(s); }, stop,
                                        "claims watch");  // turns (cron_peers.hpp)
    auto work = [this](tick_task& task) { work_on(task); };
    for (auto pause = pacing(stop);
         pool_.start(options_.workers, work, complaint("worker not started: ")) == 0 && pause();) {
    }
    schedule_until(stop);
    watcher = {};  // stops and joins
    claims = {};
    drain();
    return {};
  }

  /// The lease this daemon names in its claims (0 before start()).
  lease_id lease() const { return lease_.lease(); }
  /// When the daemon's lease is presumed lost unless renewed (see session.hpp):
  /// what a watchdog over the runs enforces. Empty before start().
  std::optional<typename session_type::time_point> local_deadline() const {
    return lease_.local_deadline();
  }
  const options& settings() const noexcept { return options_; }
  /// Ticks this daemon shed because they came too late to it.
  std::uint64_t skipped() const noexcept { return skipped_.load(); }

 private:
  /// A due tick waiting for a worker.
  struct tick_task {
    std::shared_ptr<const detail::cron_job> job;
    revision job_rev = 0;
    detail::tick_time tick{};
    std::string run{};      ///< a `cron run` id; empty for a scheduled tick
    bool deferred = false;  ///< other daemons went first: skipped if seen taken
  };

  /// The options with the prefix normalized and the host filled in.
  static options settled(options o) {
    o.prefix = detail::normalize_prefix(o.prefix);
    if (o.host.empty()) {
      char buf[256] = {};
      ::gethostname(buf, sizeof buf - 1);
      o.host = buf;
    }
    return o;
  }

  void emit(cron_event e) {
    if (e.what == cron_event::kind::skipped) ++skipped_;
    if (!options_.on_event) return;
    std::lock_guard lock{event_mutex_};
    options_.on_event(e);
  }

  // ---- the jobs ----

  result<void> load_jobs() {
    auto r = transport_.range(range_request::prefix(detail::cron_jobs_dir(options_.prefix)),
                              transport_.default_deadline());
    if (!r) return std::move(r).error();
    std::lock_guard lock{mutex_};
    std::set<std::string> present;
    for (const auto& kv : r->kvs) present.insert(table_.put(kv, clock_.now()));
    table_.keep_only(present);
    watch_from_ = r->header_revision + 1;
    loaded_ = true;
    wake_.request_stop();
    return {};
  }

  // The watch thread: job changes take effect at once, without polling.
  void watch_jobs(std::stop_token stop) {
    typename P::backoff retry = options_.backoff;
    while (!stop.stop_requested()) {
      revision from;
      {
        std::lock_guard lock{mutex_};
        from = watch_from_;
      }
      auto stream =
          transport_.watch(watch_request::prefix(detail::cron_jobs_dir(options_.prefix), from));
      std::stop_callback cancel{stop, [&] { stream.cancel(); }};
      for (;;) {
        auto batch = stream.next(std::chrono::steady_clock::now() + std::chrono::minutes{10});
        if (batch) {
          std::lock_guard lock{mutex_};
          for (const auto& e : batch->events) {
            if (e.type == watch_event::kind::put)
              table_.put(e.kv, clock_.now());
            else
              table_.erase(e.kv);
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
            if (!detail::cron_pause(retry.next(), stop)) return;
          }
        } else {
          emit({.what = cron_event::kind::error, .message = "job watch: " + batch.error().message});
          if (!detail::cron_pause(retry.next(), stop)) return;
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
      table_.fire_due(now, [this](auto&&... due) { fire(due...); });
      table_.fire_requested([this](auto&&... asked) { fire(asked...); });
      time_point wake_at = table_.earliest().value_or(now + std::chrono::hours{24});
      if (auto turn = release_deferred(now)) wake_at = std::min(wake_at, *turn);
      std::stop_source wake;
      wake_ = wake;
      lock.unlock();
      {
        std::stop_callback forward{stop, [&] { wake.request_stop(); }};
        (void)conch::sleep_until(clock_, wake_at, wake.get_token());
      }
      lock.lock();
    }
  }

  /// Hands a due tick to the worker pool: the thread count stays fixed
  /// whatever the number of jobs and ticks. A tick that waits too long is
  /// shed by its worker (see detail::claim_tick), logged and counted. A tick
  /// that other daemons go first for waits its turn (detail/cron_peers.hpp,
  /// logic/cron_turns.hpp); a `cron run` is claimed at once.
  void fire(std::shared_ptr<const detail::cron_job> job, revision job_rev, detail::tick_time tick,
            std::string run = {}) {
    const auto rank = !run.empty() ? 0
                                   : peers_.rank(detail::tick_key(job->fire_dir, tick),
                                                 detail::lease_hex(lease_.lease()),
                                                 detail::cron_peers::clock::now());
    if (rank == 0) {
      pool_.push({std::move(job), job_rev, tick, std::move(run)});
      return;
    }
    // The first daemon's queue ahead of this tick is likely as long as ours.
    const auto next = job->next_after(tick);
    const auto cap = detail::cron_turn_cap(
        next ? std::chrono::duration_cast<std::chrono::milliseconds>(*next - tick)
             : detail::cron_turn_max);
    const auto turn = detail::cron_turn(rank, pool_.queued(), pool_.per_task(), cap);
    deferred_.emplace(time_point(tick) + turn, tick_task{std::move(job), job_rev, tick, {}, true});
  }

  /// Queues the deferred ticks whose turn came and that no one was seen to
  /// claim meanwhile; returns when the next turn comes. Under mutex_.
  std::optional<time_point> release_deferred(time_point now) {
    for (auto it = deferred_.begin(); it != deferred_.end() && it->first <= now;
         it = deferred_.erase(it))
      if (!peers_.taken(detail::tick_key(it->second.job->fire_dir, it->second.tick)))
        pool_.push(std::move(it->second));
    if (deferred_.empty()) return std::nullopt;
    return deferred_.begin()->first;
  }

  void watch_stops(std::stop_token s) {
    detail::watch_stop_requests(transport_, detail::cron_stop_dir(options_.prefix), local_runs_,
                                options_.backoff, emit_, std::move(s));
  }
  void watch_claims(std::stop_token s) {
    detail::watch_claims(transport_, options_.prefix + "cron/fire/", peers_, options_.backoff,
                         std::move(s));
  }
  /// A watch thread started like the job watch: waited for, restarted if it fails.
  template <class F>
  std::jthread keep_watching(F f, std::stop_token stop, const std::string& what) {
    return detail::keep_starting(
        [this, f, what](std::stop_token s) {
          detail::run_guarded([&] { f(s); }, pacing(s), complaint(what + " failed: "));
        },
        pacing(std::move(stop)), complaint(what + " not started: "));
  }

  /// Pauses paced by the backoff (false once `stop` comes); error lines.
  auto pacing(std::stop_token stop) const { return detail::cron_pacing(options_.backoff, stop); }
  auto complaint(std::string what) {
    return [this, what = std::move(what)](const std::string& why) {
      emit({.what = cron_event::kind::error, .message = what + why});
    };
  }

  void work_on(tick_task& task) {
    // A deferred tick may wait in the queue behind others (a burst of
    // ticks): by now its first claimer may have been seen taking it.
    if (task.deferred) {
      const auto key = detail::tick_key(task.job->fire_dir, task.tick);
      if (peers_.taken(key)) return;
      // Unclaimed at our turn: those before us are gone or stalled — unless
      // we are behind as well (a backlog here says all may be).
      if (pool_.queued() == 0) peers_.missed(key, detail::lease_hex(lease_.lease()));
    }
    try {
      if (auto fire_key = fire_tick(*task.job, task.job_rev, task.tick, task.run);
          fire_key && detail::prune_turn(*fire_key, options_.history))
        pruner_.add(task.job);
    } catch (const std::exception& e) {  // resources ran out (threads, memory): this tick only
      emit({.what = cron_event::kind::error,
            .job = task.job->name(),
            .tick = detail::format_rfc3339(task.tick),
            .message = std::string("tick abandoned: ") + e.what()});
    }
  }

  /// Stops scheduling, gives runs in flight kill_after, joins them, revokes the lease.
  void drain() {
    run_stop_.request_stop();
    // Results unwritten get kill_after plus a lease's time (no thread: one try).
    auto give_up = detail::start_thread(
        [this, grace = options_.kill_after + options_.ttl](std::stop_token done) {
          if (detail::cron_pause(grace, done)) result_stop_.request_stop();
        });
    if (!give_up) {
      complaint("results unwritten at shutdown get one try: ")(give_up.error().message);
      result_stop_.request_stop();
    }
    pool_.finish();  // queued ticks return at once, runs get kill_after
    pruner_.stop();
    lease_.close();
  }

  using fire_context = detail::cron_fire_context<session_type, clock_type, options>;
  fire_context context() {
    return {transport_, writes_, lease_, clock_, options_, emit_, run_stop_.get_token()};
  }

  /// Claim, run, record: the life of one tick on one daemon. The claim's
  /// key once its result is recorded.
  std::optional<std::string> fire_tick(const detail::cron_job& job, revision job_rev,
                                       detail::tick_time tick, const std::string& run) {
    if (run_stop_.stop_requested()) return std::nullopt;  // shutting down: claim nothing more
    const auto c = context();
    auto won = detail::claim_tick<typename P::backoff>(c, job, job_rev, tick, run);
    if (!won) return std::nullopt;
    if (won->recorded) {  // claimed with its result: not run
      emit(detail::result_event(job, *won, *won->recorded));
      return std::move(won->fire_key);
    }
    auto record = [&](const detail::run_record& r, revision gate) {
      won->session.reset();  // the run is over: a lost lease may be replaced now
      return detail::record_result(writes_, job, *won, gate, r, result_stop_.get_token(),
                                   options_.backoff);
    };
    auto [result, written] = detail::run_gated(c, job, *won, local_runs_, record);
    if (!written) {
      emit({.what = cron_event::kind::error,
            .job = job.name(),
            .tick = won->tick_text,
            .rev = won->rev,
            .message = "result not recorded: " + written.error().message});
      return std::nullopt;
    }
    emit(detail::result_event(job, *won, result));
    return std::move(won->fire_key);
  }

  transport_type& transport_;
  detail::txn_batcher<transport_type> writes_{transport_};  // claims and results: group commit
  options options_;
  [[no_unique_address]] clock_type clock_;
  std::mutex event_mutex_;
  const std::function<void(cron_event)> emit_ = [this](cron_event e) { emit(std::move(e)); };
  detail::cron_lease<session_type> lease_;

  std::mutex mutex_;  // guards everything below
  detail::cron_table<time_point> table_{options_.prefix, emit_};
  revision watch_from_ = 0;
  bool loaded_ = false;
  std::stop_source wake_;         // requested to make the scheduler look again
  std::stop_source run_stop_;     // shutdown: runs in flight get kill_after
  std::stop_source result_stop_;  // results still unwritten are given up
  std::atomic<std::uint64_t> skipped_{0};
  detail::cron_local_runs local_runs_;             // what a replacing tick stops
  std::multimap<time_point, tick_task> deferred_;  // ticks waiting for their turn
  detail::cron_peers peers_;

  detail::cron_pruner<transport_type> pruner_{
      transport_, options_.history, [this](const detail::cron_job& j, long n) {
        emit({.what = cron_event::kind::zombies, .job = j.name(), .count = n});
      }};
  detail::cron_pool<tick_task> pool_;  // last: joined first
};

}  // namespace conch
