// conch/logic/supervision.hpp — the decisions of the supervision core, as pure logic.
//
// Everything here is a function of explicit time points and durations (any
// chrono clock: the real steady clock in the tools, `fake_clock` in tests), so
// "when to SIGKILL", "restart or exit", "with what delay" and "what exit code"
// are tested in milliseconds without a process in sight.
//
//   detail::kill_sequence<clock::time_point> ks{kill_after};
//   ks.start(now);                        // SIGTERM sent now
//   if (ks.kill_due(later)) ...           // SIGKILL the group
#pragma once

#include "conch/policies/backoff.hpp"

#include <chrono>
#include <optional>
#include <utility>

namespace conch::detail {

/// How a child ended, as reported by waitid(): its exit code, or the signal
/// that killed it.
struct child_status {
  enum class how { exited, signalled };
  how kind = how::exited;
  int value = 0;  ///< exit code or signal number

  static constexpr child_status exited(int code) { return {how::exited, code}; }
  static constexpr child_status signalled(int sig) { return {how::signalled, sig}; }
  friend constexpr bool operator==(const child_status&, const child_status&) = default;
};

/// The wrapper's exit code for a child that ran: the child's own code, or
/// 128 + n when signal n killed it (what a shell reports, so scripts that
/// check `$?` see the same number with or without conch in front).
constexpr int exit_code_of(child_status s) noexcept {
  return s.kind == child_status::how::exited ? (s.value & 0xff) : 128 + s.value;
}

/// SIGTERM first, SIGKILL once `kill_after` has passed since the first
/// SIGTERM. Later triggers (a second signal, the lease lost while already
/// stopping) never push the SIGKILL back: the bound on the overlap is measured
/// from the first request to stop.
template <class TimePoint>
class kill_sequence {
 public:
  using time_point = TimePoint;
  using duration = typename TimePoint::duration;

  explicit constexpr kill_sequence(duration kill_after) : kill_after_(kill_after) {}

  /// Records that SIGTERM went out at `now`. Returns true the first time only.
  constexpr bool start(time_point now) {
    if (started_) return false;
    term_sent_ = now;
    started_ = true;
    return true;
  }
  constexpr bool started() const noexcept { return started_; }
  /// When SIGKILL is due; empty until SIGTERM was sent.
  constexpr std::optional<time_point> kill_at() const {
    if (!started_) return std::nullopt;
    return term_sent_ + kill_after_;
  }
  constexpr bool kill_due(time_point now) const {
    return started_ && now >= term_sent_ + kill_after_;
  }
  constexpr duration kill_after() const noexcept { return kill_after_; }

 private:
  duration kill_after_;
  time_point term_sent_{};
  bool started_ = false;
};

/// `--restart` and what it allows.
struct restart_rule {
  bool enabled = false;
  /// A child that ran at least this long without exiting counts as stable:
  /// the next restart starts the backoff from the beginning.
  std::chrono::milliseconds stable_after{conch::default_stable_after};
};

/// Why the supervision loop is looking at a child that is no longer running.
struct exit_context {
  bool stop_requested = false;  ///< a stop signal arrived (or the owner asked to stop)
  bool lost = false;            ///< the claim (lease, office, slot) is gone
};

/// What to do once the child has exited.
struct after_exit {
  enum class step { finish, restart };
  step next = step::finish;
  bool reset_backoff = false;  ///< the child was stable: restart from the first delay
  friend constexpr bool operator==(const after_exit&, const after_exit&) = default;
};

/// Restart only with `--restart`, only while still holding, and never after a
/// stop request: no child is ever started after a stop signal.
template <class Duration>
constexpr after_exit decide_after_exit(const restart_rule& rule, exit_context ctx,
                                       Duration ran_for) {
  if (!rule.enabled || ctx.stop_requested || ctx.lost) return {};
  return {after_exit::step::restart, ran_for >= rule.stable_after};
}

/// May a child be started now? (The first start and every restart ask.)
constexpr bool may_start_child(exit_context ctx) noexcept {
  return !ctx.stop_requested && !ctx.lost;
}

/// Restart delays for `--restart`: a backoff value (fresh per supervision)
/// that is reset whenever a child proved stable. `Backoff` is any backoff
/// policy: `next()` gives the next delay, `reset()` starts over.
template <class Backoff>
class restart_schedule {
 public:
  restart_schedule(Backoff backoff, restart_rule rule)
      : backoff_(std::move(backoff)), rule_(rule) {}

  /// The delay before restarting a child that ran for `ran_for`, or empty
  /// when the child must not be restarted.
  template <class Duration>
  auto delay_after(exit_context ctx, Duration ran_for)
      -> std::optional<decltype(std::declval<Backoff&>().next())> {
    if (decide_after_exit(rule_, ctx, ran_for).next != after_exit::step::restart)
      return std::nullopt;
    return conch::next_restart_delay(backoff_, ran_for, rule_.stable_after);
  }

  const restart_rule& rule() const noexcept { return rule_; }

 private:
  Backoff backoff_;
  restart_rule rule_;
};

/// The watchdog needs a renewal only when the local deadline moved.
template <class TimePoint>
constexpr bool watchdog_needs_renewal(std::optional<TimePoint> last_sent, TimePoint deadline) {
  return !last_sent || *last_sent != deadline;
}

}  // namespace conch::detail
