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
//   clock: the instance given to the constructor when it is steady (so a
//   test's fake_clock<> drives the lease), steady_clock_policy otherwise.
//
//   conch::etcd_transport t{opts};
//   conch::cron daemon{t, {.prefix = "conch/", .on_event = log}};  // basic_cron<default_policies>
//   if (auto r = daemon.start(); !r) return fail(69, r.error());
//   daemon.run(stop_token);   // until stopped; runs in flight finish (kill-after)
#pragma once

#include "conch/detail/cron_tick.hpp"
#include "conch/fwd.hpp"
#include "conch/logic/cron_agenda.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
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
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

namespace conch {

namespace detail {
/// The clock cron ticks follow: the bundle's own when it tells wall time.
template <class P>
using cron_wall_clock =
    std::conditional_t<P::clock::is_steady, system_clock_policy, typename P::clock>;
/// The clock the daemon's lease deadlines use: the bundle's own when steady.
template <class P>
using cron_lease_clock =
    std::conditional_t<P::clock::is_steady, typename P::clock, steady_clock_policy>;

/// The tick clock made from the bundle's clock instance: that instance when
/// it tells wall time, the system clock otherwise.
template <class P>
cron_wall_clock<P> wall_clock_of(const typename P::clock& c) {
  if constexpr (P::clock::is_steady)
    return {};
  else
    return c;
}
/// The lease clock made from the bundle's clock instance: that instance when
/// it is steady (copies share one time, so a fake clock's test drives the
/// lease too), the real steady clock otherwise.
template <class P>
cron_lease_clock<P> lease_clock_of(const typename P::clock& c) {
  if constexpr (P::clock::is_steady)
    return c;
  else
    return {};
}
}  // namespace detail

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
  };

  /// `c` is the bundle's clock: the ticks follow it when it tells wall time,
  /// the lease's deadlines when it is steady.
  explicit basic_cron(transport_type& t, options o = {}, typename P::clock c = {})
      : transport_(t),
        options_(std::move(o)),
        clock_(detail::wall_clock_of<P>(c)),
        lease_clock_(detail::lease_clock_of<P>(c)) {
    options_.prefix = detail::normalize_prefix(options_.prefix);
    if (options_.host.empty()) {
      char buf[256] = {};
      ::gethostname(buf, sizeof buf - 1);
      options_.host = buf;
    }
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
    start_workers();
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
  /// Ticks this daemon shed because they came too late to it.
  std::uint64_t skipped() const noexcept { return skipped_.load(); }

 private:
  struct job_slot {
    revision mod_revision = 0;
    std::shared_ptr<const detail::cron_job> job;  // null: the value is corrupt
  };
  /// A due tick waiting for a worker.
  struct tick_task {
    std::shared_ptr<const detail::cron_job> job;
    revision job_rev = 0;
    detail::tick_time tick{};
  };

  void emit(cron_event e) {
    if (!options_.on_event) return;
    std::lock_guard lock{event_mutex_};
    options_.on_event(e);
  }

  // ---- the lease ----

  /// The session to name in a claim; a lost one is replaced by a new one,
  /// but only once the runs started under it have ended: the supervisor of
  /// each saw the loss and stopped its group (kill_after bounds the wait).
  /// Claims made under the old lease then read as zombies unless their
  /// result is recorded, which is the truth: their claimer's lease is gone.
  result<std::shared_ptr<session_type>> current_session() {
    std::lock_guard lock{session_mutex_};
    if (session_ && !session_->lost()) return session_;
    if (session_ && !loss_reported_) {
      emit({.what = cron_event::kind::error,
            .message = "lease lost (" + session_->lost_reason() +
                       "); granting a new one once its runs are stopped"});
      loss_reported_ = true;
    }
    const auto bound =
        std::chrono::steady_clock::now() + options_.kill_after + std::chrono::seconds{2};
    while (session_ && session_.use_count() > 1 && std::chrono::steady_clock::now() < bound)
      (void)detail::cron_pause(std::chrono::milliseconds{10}, {});
    typename session_type::options lease_options;
    lease_options.ttl = options_.ttl;
    auto fresh = std::make_shared<session_type>(transport_, lease_options, lease_clock_);
    if (auto r = fresh->start(); !r) return std::move(r).error();
    session_ = std::move(fresh);
    loss_reported_ = false;
    return session_;
  }
  result<lease_id> current_lease() {
    auto s = current_session();
    if (!s) return std::move(s).error();
    return (*s)->lease();
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

  std::optional<detail::tick_time> plan(const std::string& name, const detail::cron_job& job,
                                        time_point after) {
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
    return conch::sleep_until(steady_clock_policy{}, std::chrono::steady_clock::now() + d,
                              std::move(stop));
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
      auto stream =
          transport_.watch(watch_request::prefix(detail::cron_jobs_dir(options_.prefix), from));
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
        fire(it->second.job, it->second.mod_revision,
             std::chrono::floor<std::chrono::seconds>(due.tick));
        plan(due.job, *it->second.job, detail::resume_point<time_point>(due.tick, now));
      }
      const time_point wake_at = agenda_.earliest().value_or(now + std::chrono::hours{24});
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
  /// shed by its worker (see claim_tick), logged and counted.
  void fire(std::shared_ptr<const detail::cron_job> job, revision job_rev, detail::tick_time tick) {
    {
      std::lock_guard lock{queue_mutex_};
      queue_.push_back({std::move(job), job_rev, tick});
    }
    queue_cv_.notify_one();
  }

  /// Starts the workers; a thread that cannot be made is reported, never fatal.
  void start_workers() {
    for (std::size_t i = workers_.size(); i < std::max<std::size_t>(1, options_.workers); ++i) {
      try {
        workers_.emplace_back([this] { work(); });
      } catch (const std::system_error& e) {
        emit({.what = cron_event::kind::error,
              .message = std::string("worker not started: ") + e.what()});
        break;
      }
    }
  }

  void work() {
    for (;;) {
      tick_task task;
      {
        std::unique_lock lock{queue_mutex_};
        queue_cv_.wait(lock, [&] { return !queue_.empty() || workers_done_; });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        fire_tick(*task.job, task.job_rev, task.tick);
      } catch (const std::exception& e) {  // resources ran out (threads, memory): this tick only
        emit({.what = cron_event::kind::error,
              .job = task.job->name(),
              .tick = detail::format_rfc3339(task.tick),
              .message = std::string("tick abandoned: ") + e.what()});
      }
    }
  }

  /// Stops scheduling, gives runs in flight kill_after, joins them, revokes the lease.
  void drain() {
    run_stop_.request_stop();
    // Results still unwritten get kill_after plus a lease's time to land.
    std::jthread give_up{[this, grace = options_.kill_after + options_.ttl](std::stop_token done) {
      if (detail::cron_pause(grace, done)) result_stop_.request_stop();
    }};
    {
      std::lock_guard lock{queue_mutex_};
      workers_done_ = true;
    }
    queue_cv_.notify_all();
    workers_.clear();  // joins: queued ticks return at once, runs get kill_after
    std::shared_ptr<session_type> session;
    {
      std::lock_guard lock{session_mutex_};
      session = std::move(session_);
    }
    if (session) (void)session->close();
  }

  /// A tick this daemon won.
  struct claimed {
    std::shared_ptr<session_type> session;  ///< the session the claim names
    detail::claim_record claim;
    revision rev = 0;
    std::string fire_key, runs_key, tick_text;
  };

  /// Claim, run, record, prune: the life of one tick on one daemon.
  void fire_tick(const detail::cron_job& job, revision job_rev, detail::tick_time tick) {
    if (run_stop_.stop_requested()) return;  // shutting down: claim nothing more
    auto won = claim_tick(job, job_rev, tick);
    if (!won) return;
    auto result = run_tick(job, *won);
    won->session.reset();  // the run is over: a lost lease may be replaced now
    const std::string& name = job.name();
    if (auto w =
            detail::send_result(transport_,
                                detail::result_txn(won->fire_key, won->rev, won->runs_key,
                                                   detail::encode_record(result)),
                                won->fire_key, result_stop_.get_token(), typename P::backoff{});
        !w) {
      emit({.what = cron_event::kind::error,
            .job = name,
            .tick = won->tick_text,
            .rev = won->rev,
            .message = "result not recorded: " + w.error().message});
      return;
    }
    emit(
        {.what = cron_event::kind::finished,
         .job = name,
         .tick = won->tick_text,
         .rev = won->rev,
         .exit_code = result.exit_code,
         .took = std::chrono::duration_cast<std::chrono::milliseconds>(result.end - result.start)});
    detail::prune_history(transport_, job, options_.history);
  }

  std::optional<claimed> claim_tick(const detail::cron_job& job, revision job_rev,
                                    detail::tick_time tick) {
    const std::string& name = job.name();
    claimed won;
    won.tick_text = detail::format_rfc3339(tick);
    auto session = current_session();
    if (!session) {
      emit({.what = cron_event::kind::error,
            .job = name,
            .tick = won.tick_text,
            .message = "no lease, tick not claimed: " + session.error().message});
      return std::nullopt;
    }
    won.session = std::move(*session);
    // A daemon that fell behind (overloaded, stalled, cut off) sheds a tick
    // once the job's next one is due, rather than running ticks ever later.
    if (const auto next = job.next_after(tick);
        next && detail::is_stale_tick(clock_.now(), *next)) {
      emit({.what = cron_event::kind::skipped,
            .job = name,
            .tick = won.tick_text,
            .message =
                "late: the next tick (" + detail::format_rfc3339(*next) + ") is already due"});
      return std::nullopt;
    }
    if (run_stop_.stop_requested()) return std::nullopt;
    won.fire_key = detail::tick_key(job.fire_dir, tick);
    won.runs_key = detail::tick_key(job.runs_dir, tick);
    auto& claim = won.claim;
    claim.name = name;
    claim.tick = tick;
    claim.host = options_.host;
    claim.pid = ::getpid();
    claim.lease = detail::lease_hex(won.session->lease());
    claim.start = std::chrono::floor<std::chrono::milliseconds>(clock_.now());
    const std::string value = detail::encode_record(claim);
    auto rev =
        detail::send_claim(transport_,
                           detail::claim_txn(job.fire_dir, job.floor_dir, detail::format_tick(tick),
                                             value, job.key, job_rev),
                           value, run_stop_.get_token(), typename P::backoff{});
    if (!rev) {
      if (rev.error().code != errc::busy)
        emit({.what = cron_event::kind::error,
              .job = name,
              .tick = won.tick_text,
              .message = rev.error().message});
      return std::nullopt;
    }
    won.rev = *rev;
    emit({.what = cron_event::kind::claimed,
          .job = name,
          .tick = won.tick_text,
          .rev = won.rev,
          .message = "lease " + claim.lease});
    return won;
  }

  /// Runs a won tick's command under the supervisor: the daemon's lease lost
  /// stops its group; so does the command's own exit (what it left running
  /// in its group is stopped before the result is recorded); a shutdown
  /// gives it kill_after.
  detail::run_record run_tick(const detail::cron_job& job, const claimed& won) {
    const std::string& name = job.name();
    process::held_claim held;
    held.env = {{"CONCH_TICK", won.tick_text},
                {"CONCH_REV", std::to_string(won.rev)},
                {"CONCH_NAME", name},
                {"CONCH_KEY", won.fire_key},
                {"CONCH_LEASE", won.claim.lease}};
    held.lost = won.session->lost_token();
    if constexpr (std::is_same_v<typename session_type::time_point,
                                 std::chrono::steady_clock::time_point>)
      held.local_deadline = [s = won.session.get()] { return s->local_deadline(); };
    held.lost_reason = [s = won.session.get()] { return s->lost_reason(); };
    process::output_tail tail{options_.output_cap};
    process::supervise_options run;
    run.argv = job.record.argv;
    run.kill_after = options_.kill_after;
    run.forward_stop = false;
    run.capture = &tail;
    run.on_start = [&](long pid) {
      emit({.what = cron_event::kind::started,
            .job = name,
            .tick = won.tick_text,
            .rev = won.rev,
            .pid = pid});
    };
    run.say = [&](const std::string& line) {
      emit({.what = cron_event::kind::error,
            .job = name,
            .tick = won.tick_text,
            .rev = won.rev,
            .message = line});
    };
    detail::run_record result{};
    result.start = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    auto out =
        process::supervisor<exponential_backoff>{
            held, run, nullptr, options_.watchdog, {}, run_stop_.get_token()}
            .run();
    result.end = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    result.name = name;
    result.tick = won.claim.tick;
    result.host = options_.host;
    result.pid = ::getpid();
    result.lease = won.claim.lease;
    result.exit_code = out.exit_code;
    result.output = detail::utf8_tail(out.how == process::supervise_outcome::ending::not_started
                                          ? out.not_started_reason
                                          : tail.str(),
                                      options_.output_cap);
    return result;
  }

  transport_type& transport_;
  options options_;
  [[no_unique_address]] clock_type clock_;
  [[no_unique_address]] detail::cron_lease_clock<P> lease_clock_;

  mutable std::mutex session_mutex_;
  std::shared_ptr<session_type> session_;  // runs hold a copy while their child runs
  bool loss_reported_ = false;
  std::mutex event_mutex_;

  std::mutex mutex_;  // guards everything below
  std::map<std::string, job_slot> jobs_;
  detail::cron_agenda<time_point> agenda_;
  revision watch_from_ = 0;
  bool loaded_ = false;
  std::stop_source wake_;         // requested to make the scheduler look again
  std::stop_source run_stop_;     // shutdown: runs in flight get kill_after
  std::stop_source result_stop_;  // results still unwritten are given up
  std::atomic<std::uint64_t> skipped_{0};

  std::mutex queue_mutex_;  // guards the queue and workers_done_
  std::condition_variable queue_cv_;
  std::deque<tick_task> queue_;
  bool workers_done_ = false;
  std::vector<std::jthread> workers_;  // last: joined first
};

}  // namespace conch
