// conch/process/supervise.hpp — run the child while holding, and stop it when we no longer do.
//
// The loop every holding tool shares (`conch elect`, `conch sema`): start the
// child with the claim's environment, keep the watchdog's deadline in step with
// the session's local deadline, and end on the first of
//   - the child exiting: finish with its code, or restart it with backoff
//     (`--restart`; the backoff resets after a stable child);
//   - the claim lost: SIGTERM to the child's group, SIGKILL after kill-after;
//   - a stop signal (SIGINT/SIGTERM/SIGHUP/SIGQUIT): forwarded to the child's
//     group, SIGKILL after kill-after; no child starts after it.
// When the child leader exits, what it left running in its group is stopped
// too (SIGTERM, then SIGKILL): the work must not outlive the claim.
//
// It knows nothing of etcd: what was acquired comes in as a `held_claim`. A
// cron run is the same loop with its output captured and, at shutdown, the
// run given kill-after before SIGKILL instead of a forwarded signal.
//
//   conch::process::held_claim claim{.env = {...}, .lost = session.lost_token(),
//                                    .local_deadline = [&] { return session.local_deadline(); }};
//   auto out = conch::process::supervise(claim, {.argv = argv, .program = "conch elect"}, inbox,
//   &wd);
//   // out.how: exited / lost / stopped / not_started; out.exit_code
#pragma once

#include "conch/exit_codes.hpp"
#include "conch/logic/duration.hpp"
#include "conch/logic/supervision.hpp"
#include "conch/policies/backoff.hpp"
#include "conch/process/group.hpp"
#include "conch/process/output.hpp"
#include "conch/process/signals.hpp"
#include "conch/process/spawn.hpp"
#include "conch/process/watchdog.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <stop_token>
#include <string>
#include <sys/eventfd.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace conch::process {

/// What the wrapper holds while its child runs: an office, a slot, a tick.
struct held_claim {
  /// Added to the child's environment: CONCH_REV, CONCH_KEY, CONCH_LEASE, ...
  std::vector<std::pair<std::string, std::string>> env{};
  /// Requested when the claim is lost (the session's lost_token()).
  std::stop_token lost{};
  /// The local deadline the watchdog enforces (the session's local_deadline()).
  std::function<std::chrono::steady_clock::time_point()> local_deadline{};
  /// Why the claim was lost, for the diagnostic line.
  std::function<std::string()> lost_reason{};
  /// Registers a callback to be told each move of the local deadline (the
  /// session's on_deadline_moved), so the watchdog is renewed at once rather
  /// than at the next recheck; an empty callback unregisters. The callback
  /// may run on any thread, also after it was unregistered.
  std::function<void(std::function<void()>)> on_deadline_moved{};
};

struct supervise_options {
  std::vector<std::string> argv{};
  std::chrono::milliseconds kill_after{std::chrono::seconds(5)};
  conch::detail::restart_rule restart{};
  /// Prefixes diagnostics on stderr ("conch elect").
  std::string program{"conch"};
  /// A stop request is forwarded to the group as SIGTERM (the tools); when
  /// false the child runs on for kill_after and is then killed (cron runs at
  /// shutdown: a run is let finish, within a bound).
  bool forward_stop = true;
  /// A stop request sent to the group as SIGTERM (then SIGKILL after
  /// kill_after) whatever forward_stop says: a cron run's timeout, or a
  /// newer tick replacing it.
  std::stop_token terminate{};
  /// When set, the child's stdout and stderr are captured here.
  output_tail* capture = nullptr;
  /// Told each child's pid (= its process group) once it runs.
  std::function<void(long pid)> on_start{};
  /// Told each child's exit code once it is reaped (metrics, readiness notices).
  std::function<void(int code)> on_exit{};
  /// Where diagnostics go; empty: stderr, prefixed with `program`.
  std::function<void(const std::string&)> say{};
  /// How often the loop looks at the local deadline when nothing wakes it.
  std::chrono::milliseconds recheck{200};
  /// When the local deadline passes but the claim is not (yet) lost — the
  /// session rides through (session options::ride_through) — the group is
  /// stopped as for a loss, and the child started again once a renewal moves
  /// the deadline ahead. Off: passing the deadline ends supervision as lost.
  bool resume_after_deadline = false;
};

struct supervise_outcome {
  enum class ending {
    exited,       ///< the child exited by itself (and no restart was due)
    lost,         ///< the claim was lost; the group was killed
    stopped,      ///< a stop signal (or stop request) ended it
    not_started,  ///< the command could not be started
  };
  ending how = ending::exited;
  /// What the wrapper should exit with: the child's code (128 + n if signal n
  /// killed it), 70 when lost, 126/127 when it could not start, 128 + n when
  /// stop signal n came before any child ran.
  int exit_code = 0;
  std::optional<int> stop_signal{};
  int starts = 0;  ///< how many times a child was started
  long pid = 0;    ///< the last child's pid; 0 if none started
  std::string not_started_reason{};
};

/// A watchdog that several supervisors may share (one per cron run): each
/// call is serialized when a mutex is given (a call is one send: nothing
/// waits for the watchdog under it).
class watchdog_handle {
 public:
  watchdog_handle() = default;
  watchdog_handle(watchdog* w, std::mutex* m = nullptr)
      : w_(w), m_(m) {}  // NOLINT: implicit from a pointer
  explicit operator bool() const noexcept { return w_ != nullptr; }
  /// See watchdog::watch_and_release(): the watchdog opens `c`'s launch gate.
  result<void> watch_and_release(child& c, std::chrono::steady_clock::time_point d) {
    return call([&] { return w_->watch_and_release(c, d); });
  }
  result<void> renew(std::chrono::steady_clock::time_point d) {
    return call([&] { return w_->renew(d); });
  }
  result<void> forget(pid_t pgid) {
    return call([&] { return w_->forget(pgid); });
  }
  /// Whether the watchdog may have started killing (lock-free: it reads atomics).
  bool fired(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) const {
    return w_->fired(now);
  }

 private:
  template <class F>
  result<void> call(F f) {
    if (!m_) return f();
    std::lock_guard lock{*m_};
    return f();
  }
  watchdog* w_ = nullptr;
  std::mutex* m_ = nullptr;
};

/// The supervision loop: one method per event — the claim lost, a stop
/// signal or request, the child's exit, a (re)start — and a wait for the
/// next one. Used once: construct, run().
template <class Backoff = conch::exponential_backoff>
class supervisor {
 public:
  using clock = std::chrono::steady_clock;

  supervisor(const held_claim& claim, const supervise_options& opt, signal_inbox* inbox,
             watchdog_handle wd, Backoff backoff = {}, std::stop_token stop = {})
      : claim_(claim),
        opt_(opt),
        inbox_(inbox),
        watchdog_(wd),
        stop_(std::move(stop)),
        plan_(std::move(backoff), opt.restart),
        kill_after_(std::chrono::duration_cast<clock::duration>(opt.kill_after)),
        seq_(kill_after_),
        wake_(std::make_shared<unique_fd>(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))) {}

  supervise_outcome run() {
    // Loss, stop requests and deadline moves arrive on other threads: make
    // them wake our poll(). The eventfd lives as long as any copy of `poke`.
    auto poke = [fd = wake_] {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(fd->get(), &one, sizeof one);
    };
    std::stop_callback on_lost{claim_.lost, poke};
    std::stop_callback on_stop{stop_, poke};
    std::stop_callback on_terminate{opt_.terminate, poke};
    deadline_subscription on_moved{claim_.on_deadline_moved, poke};
    start_at_ = clock::now();  // the first start goes through the same checks as a restart
    start_pending_ = true;
    for (;;) {
      // A subreaper's adopted zombies: never members of a live group.
      process::reap_orphans_every(std::chrono::milliseconds(10));
      const auto now = clock::now();
      on_loss(now);
      while (inbox_)
        if (auto sig = inbox_->take())
          on_stop_signal(*sig, now);
        else
          break;
      if (!ctx_.stop_requested && opt_.terminate.stop_requested()) on_terminate_request(now);
      if (!ctx_.stop_requested && stop_.stop_requested()) on_stop_request(now);
      if (!child_) {  // before the first start, or between restarts
        if (!conch::detail::may_start_child(ctx_)) break;  // never a child after a stop or a loss
        if (start_pending_ && !suspended_ && now >= start_at_) {
          if (!restart(now)) return out_;
          continue;
        }
      } else {
        if (!killed_ && seq_.kill_due(now)) kill_group();
        pump_output();
        if (child_->exited() && !on_child_exit(now)) break;
        if (!child_ && start_pending_) continue;
      }
      wait(now);
    }
    return finish();
  }

 private:
  // Holds a registration with held_claim::on_deadline_moved for one run.
  struct deadline_subscription {
    deadline_subscription(const std::function<void(std::function<void()>)>& hook,
                          std::function<void()> f)
        : hook_(hook) {
      if (hook_) hook_(std::move(f));
    }
    ~deadline_subscription() {
      if (hook_) hook_({});
    }
    deadline_subscription(const deadline_subscription&) = delete;
    deadline_subscription& operator=(const deadline_subscription&) = delete;
    const std::function<void(std::function<void()>)>& hook_;
  };

  void say(const std::string& line) {
    if (opt_.say)
      opt_.say(line);
    else
      std::cerr << opt_.program << ": " << line << std::endl;
  }
  std::optional<clock::time_point> deadline() const {
    if (!claim_.local_deadline) return std::nullopt;
    return claim_.local_deadline();
  }
  // Forward `sig` to the group (0: none); the first request starts the kill-after clock.
  void stop_group(int sig, clock::time_point now) {
    if (!child_) return;
    if (sig) (void)child_->signal_group(sig);
    if (seq_.start(now)) forwarded_ = sig != 0;
  }
  void kill_group() {
    say("child group still running " + conch::detail::format_duration(opt_.kill_after) +
        (forwarded_ ? " after SIGTERM: SIGKILL" : " after the stop request: SIGKILL"));
    (void)child_->signal_group(SIGKILL);
    killed_ = true;
  }

  /// Event: the claim may be lost — the session says so, its local deadline
  /// passed, or the watchdog's did. The watchdog acts on the last deadline
  /// we sent it and its kill sequence always finishes: past that deadline
  /// (we were stalled) the claim is lost to us even if a late keepalive
  /// answer has moved the session's deadline since.
  void on_loss(clock::time_point now) {
    const bool watchdog_fired = watchdog_ && child_ && watchdog_.fired(now);
    const auto current = deadline();
    if (watchdog_ && child_ && current &&
        conch::detail::watchdog_needs_renewal(renewed_, *current)) {
      (void)watchdog_.renew(*current);
      renewed_ = current;
    }
    const bool past_deadline = (current && now >= *current) || watchdog_fired;
    if (opt_.resume_after_deadline && !claim_.lost.stop_requested() && !ctx_.lost)
      return on_deadline(past_deadline, watchdog_fired, now);
    if (ctx_.lost || !(claim_.lost.stop_requested() || past_deadline)) return;
    ctx_.lost = true;
    std::string why = claim_.lost.stop_requested() && claim_.lost_reason ? claim_.lost_reason()
                      : watchdog_fired                                   ? std::string(
                                                                               "local deadline passed while the wrapper was stalled; "
                                                                                                                 "the watchdog stopped the child")
                      : past_deadline ? std::string("local deadline passed")
                                      : std::string();
    say("lost the claim" + (why.empty() ? why : ": " + why) +
        (child_ ? "; stopping the child's process group" : ""));
    stop_group(SIGTERM, now);
  }

  /// Event (resume_after_deadline, claim not lost): the local deadline passed
  /// — stop the group and start nothing — or a renewal moved it ahead again
  /// after the group is gone: start the child again.
  void on_deadline(bool past_deadline, bool watchdog_fired, clock::time_point now) {
    if (past_deadline && !suspended_) {
      suspended_ = true;
      start_pending_ = false;
      say(std::string(watchdog_fired ? "local deadline passed while the wrapper was stalled; the "
                                       "watchdog stopped the child"
                                     : "local deadline passed (etcd unreachable?)") +
          "; stopping the child's process group until a renewal proves the lease alive");
      stop_group(SIGTERM, now);
    } else if (suspended_ && !past_deadline && !child_) {
      suspended_ = false;
      say("a renewal was acknowledged: the lease is alive; starting the child again");
      start_at_ = now;
      start_pending_ = true;
    }
  }

  /// Event: a stop signal arrived; each one is forwarded.
  void on_stop_signal(int sig, clock::time_point now) {
    ctx_.stop_requested = true;
    out_.stop_signal = sig;
    child_heard_stop_ = child_heard_stop_ || child_.has_value();
    stop_group(sig, now);
  }

  /// Event: the owner asked to stop (treated like SIGTERM, or given
  /// kill_after when stops are not forwarded).
  void on_stop_request(clock::time_point now) {
    ctx_.stop_requested = true;
    out_.stop_signal = SIGTERM;
    child_heard_stop_ = child_.has_value();
    stop_group(opt_.forward_stop ? SIGTERM : 0, now);
  }

  /// Event: the owner asked the group to terminate (SIGTERM whatever forward_stop says).
  void on_terminate_request(clock::time_point now) {
    ctx_.stop_requested = true;
    out_.stop_signal = SIGTERM;
    child_heard_stop_ = child_.has_value();
    stop_group(SIGTERM, now);
  }

  /// Event: the child leader exited. Its group is stopped too (the work must
  /// not outlive it), then it is reaped; returns false when supervision ends.
  bool on_child_exit(clock::time_point now) {
    if (!killed_ && process::leader_left_members(child_->group())) {
      // The unreaped leader keeps the group id from being reused meanwhile.
      if (!seq_.started()) stop_group(SIGTERM, now);
      return true;
    }
    // Stalled since the checks above, past the watchdog's deadline: it was the watchdog.
    if (!ctx_.lost && watchdog_ && watchdog_.fired()) {
      ctx_.lost = true;
      say("lost the claim: local deadline passed while the wrapper was stalled; the watchdog "
          "stopped the child");
    }
    pump_output();
    if (watchdog_) (void)watchdog_.forget(child_->group());
    out_.exit_code = conch::detail::exit_code_of(child_->reap());
    const bool never_ran = child_->closed_at_gate();
    child_.reset();
    if (never_ran) return not_released();
    if (opt_.on_exit) opt_.on_exit(out_.exit_code);
    if (suspended_) return true;  // started again when the deadline moves ahead
    auto delay = plan_.delay_after(ctx_, now - started_);
    if (!delay) return false;
    say("child exited with " + std::to_string(out_.exit_code) + "; restarting in " +
        conch::detail::format_duration(
            std::chrono::duration_cast<std::chrono::milliseconds>(*delay)));
    start_at_ = now + *delay;
    start_pending_ = true;
    return true;
  }

  /// Event: a start (the first, or a restart) is due. False when the
  /// command could not be started: supervision ends with 126/127.
  bool restart(clock::time_point now) {
    start_pending_ = false;
    // With a watchdog the child waits at its launch gate until it is watched.
    auto c = process::spawn({.argv = opt_.argv,
                             .env = claim_.env,
                             .capture_output = opt_.capture != nullptr,
                             .merge_output = true,
                             .gated = static_cast<bool>(watchdog_)});
    if (!c) {
      say(c.error().message);
      out_.how = supervise_outcome::ending::not_started;
      out_.not_started_reason = c.error().message;
      out_.exit_code = c.error().code == errc::permission_denied ? exit_code::cannot_execute
                                                                 : exit_code::not_found;
      return false;
    }
    if (watchdog_) {  // the watchdog opens the gate once it watches the group
      auto d = deadline().value_or(clock::time_point::max());
      if (auto w = watchdog_.watch_and_release(*c, d); !w) {
        out_.not_started_reason = w.error().message + "; not starting the child unguarded";
        say(out_.not_started_reason);
        out_.how = supervise_outcome::ending::not_started;
        out_.exit_code = exit_code::unavailable;
        return false;  // its gate closed unopened; ~child kills and reaps it
      }
      renewed_ = d;
    } else if (auto r = c->release(); !r) {
      say(r.error().message);
    }
    child_ = std::move(*c);
    ++out_.starts;
    out_.pid = child_->pid();
    started_ = now;
    seq_ = conch::detail::kill_sequence<clock::time_point>{kill_after_};
    killed_ = false;
    if (opt_.on_start) opt_.on_start(child_->pid());
    return true;
  }

  /// Event: the child exited at its launch gate, never released: the
  /// watchdog was gone before it opened it. Supervision ends: 69, nothing ran.
  bool not_released() {
    out_.not_started_reason =
        "watchdog: gone before it released the child; the command did not run "
        "(not starting it unguarded)";
    say(out_.not_started_reason);
    out_.how = supervise_outcome::ending::not_started;
    out_.exit_code = exit_code::unavailable;
    --out_.starts;
    if (opt_.on_exit) opt_.on_exit(out_.exit_code);
    return false;
  }

  void pump_output() {
    if (!opt_.capture || !child_) return;
    if (child_->stdout_fd() >= 0 && !process::pump(child_->stdout_fd(), -1, *opt_.capture))
      child_->close_stdout();
    if (child_->stderr_fd() >= 0 && !process::pump(child_->stderr_fd(), -1, *opt_.capture))
      child_->close_stderr();
  }

  // Sleeps until something can change: a signal, the loss, the child's exit
  // or output, the SIGKILL or restart time, or the next look at the deadline.
  void wait(clock::time_point now) {
    auto wake_at = now + opt_.recheck;
    if (child_ && seq_.started() && !killed_) wake_at = std::min(wake_at, *seq_.kill_at());
    if (start_pending_) wake_at = std::min(wake_at, start_at_);
    if (child_ && (child_->exit_fd() < 0 || child_->exited()))
      wake_at = std::min(wake_at, now + std::chrono::milliseconds(20));
    const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
    const bool live = child_ && !child_->exited();
    pollfd fds[5] = {{inbox_ ? inbox_->fd() : -1, POLLIN, 0},
                     {wake_->get(), POLLIN, 0},
                     {live ? child_->exit_fd() : -1, POLLIN, 0},
                     {child_ && opt_.capture ? child_->stdout_fd() : -1, POLLIN, 0},
                     {child_ && opt_.capture ? child_->stderr_fd() : -1, POLLIN, 0}};
    ::poll(fds, 5, static_cast<int>(std::max<std::int64_t>(timeout, 0)));
    if (fds[1].revents) {
      std::uint64_t n;
      [[maybe_unused]] auto r = ::read(wake_->get(), &n, sizeof n);
    }
  }

  supervise_outcome finish() {
    if (out_.how == supervise_outcome::ending::not_started) return out_;
    if (ctx_.lost) {
      out_.how = supervise_outcome::ending::lost;
      out_.exit_code = exit_code::lost;
    } else if (ctx_.stop_requested) {
      out_.how = supervise_outcome::ending::stopped;
      // Stopped between restarts: no child answered the signal, so we do.
      if (!child_heard_stop_)
        out_.exit_code = exit_code::from_signal(out_.stop_signal.value_or(SIGTERM));
    } else {
      out_.how = supervise_outcome::ending::exited;
    }
    return out_;
  }

  const held_claim& claim_;
  const supervise_options& opt_;
  signal_inbox* inbox_;
  watchdog_handle watchdog_;
  std::stop_token stop_;
  conch::detail::restart_schedule<Backoff> plan_;
  clock::duration kill_after_;
  conch::detail::kill_sequence<clock::time_point> seq_;
  std::shared_ptr<unique_fd> wake_;
  supervise_outcome out_{};
  conch::detail::exit_context ctx_{};
  std::optional<child> child_{};
  clock::time_point started_{}, start_at_{};
  bool start_pending_ = false;
  std::optional<clock::time_point> renewed_{};
  bool killed_ = false;
  bool suspended_ = false;         // past the local deadline, the claim not lost: no child
  bool forwarded_ = true;          // the first stop went to the group as a signal
  bool child_heard_stop_ = false;  // a stop signal reached a running child
};

/// Runs the child of `claim` to its end; see the file comment. `inbox` carries
/// the stop signals; `stop` is an extra stop request (treated like SIGTERM);
/// `watchdog` may be null (no frozen-wrapper protection).
template <class Backoff = conch::exponential_backoff>
supervise_outcome supervise(const held_claim& claim, const supervise_options& opt,
                            signal_inbox& inbox, watchdog* watchdog, Backoff backoff = {},
                            std::stop_token stop = {}) {
  return supervisor<Backoff>{
      claim, opt, &inbox, watchdog_handle{watchdog}, std::move(backoff), std::move(stop)}
      .run();
}

}  // namespace conch::process
