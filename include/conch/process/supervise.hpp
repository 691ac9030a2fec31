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
// It knows nothing of etcd: what was acquired comes in as a `held_claim`.
//
//   conch::tool::held_claim claim{.env = {...}, .lost = session.lost_token(),
//                                 .local_deadline = [&] { return session.local_deadline(); }};
//   auto out = conch::process::supervise(claim, {.argv = argv, .program = "conch elect"}, inbox, &wd);
//   // out.ending: exited / lost / stopped / not_started; out.exit_code
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "conch/logic/duration.hpp"
#include "conch/logic/supervision.hpp"
#include "conch/policies/backoff.hpp"
#include "conch/process/group.hpp"
#include "conch/process/signals.hpp"
#include "conch/process/spawn.hpp"
#include "conch/process/watchdog.hpp"
#include "conch/exit_codes.hpp"

namespace conch::process {

/// What the wrapper holds while its child runs: an office, a slot.
struct held_claim {
  /// Added to the child's environment: CONCH_REV, CONCH_KEY, CONCH_LEASE, ...
  std::vector<std::pair<std::string, std::string>> env{};
  /// Requested when the claim is lost (the session's lost_token()).
  std::stop_token lost{};
  /// The local deadline the watchdog enforces (the session's local_deadline()).
  std::function<std::chrono::steady_clock::time_point()> local_deadline{};
  /// Why the claim was lost, for the diagnostic line.
  std::function<std::string()> lost_reason{};
};

struct supervise_options {
  std::vector<std::string> argv{};
  std::chrono::milliseconds kill_after{std::chrono::seconds(5)};
  conch::detail::restart_rule restart{};
  /// Prefixes diagnostics on stderr ("conch elect").
  std::string program{"conch"};
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
};

/// Runs the child of `claim` to its end; see the file comment. `inbox` carries
/// the stop signals; `stop` is an extra stop request (treated like SIGTERM);
/// `watchdog` may be null (no frozen-wrapper protection).
template <class Backoff = conch::exponential_backoff>
supervise_outcome supervise(const held_claim& claim, const supervise_options& opt,
                            signal_inbox& inbox, watchdog* watchdog,
                            Backoff backoff = {}, std::stop_token stop = {}) {
  using clock = std::chrono::steady_clock;
  using conch::detail::exit_context;
  using outcome = supervise_outcome;

  outcome out;
  exit_context ctx;
  conch::detail::restart_schedule<Backoff> plan{std::move(backoff), opt.restart};
  const auto kill_after = std::chrono::duration_cast<clock::duration>(opt.kill_after);
  conch::detail::kill_sequence<clock::time_point> seq{kill_after};
  std::optional<child> child;
  clock::time_point started{};
  clock::time_point start_at{};  // when to (re)start the child, if start_pending
  bool start_pending = false;
  std::optional<clock::time_point> renewed;
  bool killed = false;
  bool child_heard_stop = false;  // a stop signal reached a running child

  // Loss and stop requests arrive on other threads: make them wake our poll().
  unique_fd wake{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  auto poke = [fd = wake.get()] {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  };
  std::stop_callback on_lost{claim.lost, poke};
  std::stop_callback on_stop{stop, poke};

  auto say = [&](const std::string& line) { std::cerr << opt.program << ": " << line << std::endl; };
  auto deadline = [&]() -> std::optional<clock::time_point> {
    if (!claim.local_deadline) return std::nullopt;
    return claim.local_deadline();
  };

  auto start_child = [&]() -> bool {
    // With a watchdog the child waits at its launch gate until it is watched.
    auto c = process::spawn({.argv = opt.argv, .env = claim.env, .gated = watchdog != nullptr});
    if (!c) {
      say(c.error().message);
      out.how = outcome::ending::not_started;
      out.exit_code = c.error().code == errc::permission_denied ? exit_code::cannot_execute
                                                                  : exit_code::not_found;
      return false;
    }
    if (watchdog) {
      auto d = deadline().value_or(clock::time_point::max());
      if (auto w = watchdog->watch(c->group(), d); !w) {
        say("watchdog: " + w.error().message + "; not starting the child unguarded");
        out.how = outcome::ending::not_started;
        out.exit_code = exit_code::unavailable;
        return false;  // ~child kills it at its gate
      }
      renewed = d;
    }
    if (auto r = c->release(); !r) say(r.error().message);
    child = std::move(*c);
    ++out.starts;
    started = clock::now();
    seq = conch::detail::kill_sequence<clock::time_point>{kill_after};
    killed = false;
    return true;
  };
  // Forward `sig` to the group; the first one starts the kill-after clock.
  auto stop_group = [&](int sig, clock::time_point now) {
    if (!child) return;
    (void)child->signal_group(sig);
    seq.start(now);
  };

  // The first start goes through the same checks as a restart.
  start_at = clock::now();
  start_pending = true;
  for (;;) {
    process::reap_orphans();  // a subreaper's adopted zombies: never members of a live group
    const auto now = clock::now();

    // The watchdog acts on the last deadline we sent it, and its kill sequence
    // always finishes. If that deadline has passed (we were stalled: SIGSTOP,
    // a stuck thread), it has stopped the group or is about to, even when a
    // keepalive answer read since has moved the session's deadline: the claim
    // is lost to us all the same, not a child that died by itself.
    const bool watchdog_fired = watchdog && child && watchdog->fired(now);
    const auto current_deadline = deadline();
    if (watchdog && child && current_deadline &&
        conch::detail::watchdog_needs_renewal(renewed, *current_deadline)) {
      (void)watchdog->renew(*current_deadline);
      renewed = current_deadline;
    }
    const bool past_deadline = (current_deadline && now >= *current_deadline) || watchdog_fired;
    if (!ctx.lost && (claim.lost.stop_requested() || past_deadline)) {
      ctx.lost = true;
      std::string why = claim.lost.stop_requested() && claim.lost_reason ? claim.lost_reason()
                        : watchdog_fired ? std::string("local deadline passed while the wrapper was stalled; "
                                                       "the watchdog stopped the child")
                        : past_deadline  ? std::string("local deadline passed")
                                         : std::string();
      say("lost the claim" + (why.empty() ? why : ": " + why) +
          (child ? "; stopping the child's process group" : ""));
      stop_group(SIGTERM, now);
    }
    while (auto sig = inbox.take()) {
      ctx.stop_requested = true;
      out.stop_signal = *sig;
      child_heard_stop = child_heard_stop || child.has_value();
      stop_group(*sig, now);  // each one is forwarded
    }
    if (!ctx.stop_requested && stop.stop_requested()) {
      ctx.stop_requested = true;
      out.stop_signal = SIGTERM;
      child_heard_stop = child.has_value();
      stop_group(SIGTERM, now);
    }

    if (!child) {  // before the first start, or between restarts
      if (!conch::detail::may_start_child(ctx)) break;  // never a child after a stop or a loss
      if (start_pending && now >= start_at) {
        start_pending = false;
        if (!start_child()) return out;
        continue;
      }
    } else {
      if (!killed && seq.kill_due(now)) {
        say("child group still running " + conch::detail::format_duration(opt.kill_after) +
            " after SIGTERM: SIGKILL");
        (void)child->signal_group(SIGKILL);
        killed = true;
      }
      if (child->exited()) {
        if (!killed && process::live_members(child->group()) > 0) {
          // The leader is gone but its group is not: stop the rest too. The
          // unreaped leader keeps the group id from being reused meanwhile.
          if (!seq.started()) stop_group(SIGTERM, now);
        } else {
          // Stalled since the checks above, past the watchdog's deadline: it was the watchdog.
          if (!ctx.lost && watchdog && watchdog->fired()) {
            ctx.lost = true;
            say("lost the claim: local deadline passed while the wrapper was stalled; "
                "the watchdog stopped the child");
          }
          if (watchdog) (void)watchdog->forget(child->group());
          const auto status = child->reap();
          child.reset();
          out.exit_code = conch::detail::exit_code_of(status);
          auto delay = plan.delay_after(ctx, now - started);
          if (!delay) break;
          say("child exited with " + std::to_string(out.exit_code) + "; restarting in " +
              conch::detail::format_duration(
                  std::chrono::duration_cast<std::chrono::milliseconds>(*delay)));
          start_at = now + *delay;
          start_pending = true;
          continue;
        }
      }
    }

    // Sleep until something can change: a signal, the loss, the child's exit,
    // the SIGKILL or restart time, or the next look at the local deadline.
    auto wake_at = now + std::chrono::milliseconds(200);
    if (child && seq.started() && !killed) wake_at = std::min(wake_at, *seq.kill_at());
    if (start_pending) wake_at = std::min(wake_at, start_at);
    if (child && (child->exit_fd() < 0 || child->exited()))
      wake_at = std::min(wake_at, now + std::chrono::milliseconds(20));
    const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
    pollfd fds[3] = {{inbox.fd(), POLLIN, 0},
                     {wake.get(), POLLIN, 0},
                     {child && !child->exited() ? child->exit_fd() : -1, POLLIN, 0}};
    ::poll(fds, 3, static_cast<int>(std::max<std::int64_t>(timeout, 0)));
    if (fds[1].revents) {
      std::uint64_t n;
      [[maybe_unused]] auto r = ::read(wake.get(), &n, sizeof n);
    }
  }

  if (ctx.lost) {
    out.how = outcome::ending::lost;
    out.exit_code = exit_code::lost;
  } else if (ctx.stop_requested) {
    out.how = outcome::ending::stopped;
    // Stopped between restarts: no child answered the signal, so we do.
    if (!child_heard_stop) out.exit_code = exit_code::from_signal(out.stop_signal.value_or(SIGTERM));
  } else {
    out.how = outcome::ending::exited;
  }
  return out;
}

}  // namespace conch::process
