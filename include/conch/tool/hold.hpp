// conch/tool/hold.hpp — acquire, run the child while holding, release: the flow
// `conch elect` and `conch sema` share.
//
// The tools differ only in what they acquire (an office, a slot) and how they
// let go of it; everything else — stop signals while waiting, the watchdog,
// the supervision loop, exit codes — is this one piece of code. A tool plugs
// in a `holding_recipe`:
//   acquire(stop)  blocks until held. Errors: errc::busy / errc::timed_out
//                  (exit 75), errc::cancelled (stop requested), errc::lost
//                  (exit 70), anything else (exit 69);
//   env()          the child's CONCH_* variables once held;
//   release()      the fenced release (resign, free the slot).
//
//   struct office_recipe { ... acquire, env, release ... } recipe{...};
//   return conch::tool::hold_and_run(session, recipe, {.program = "conch elect", ...}, inbox);
#pragma once

#include "conch/exit_codes.hpp"
#include "conch/logic/duration.hpp"
#include "conch/process/fd.hpp"
#include "conch/process/signals.hpp"
#include "conch/process/supervise.hpp"
#include "conch/process/watchdog.hpp"
#include "conch/result.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/flags.hpp"

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <poll.h>
#include <stop_token>
#include <string>
#include <sys/eventfd.h>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

namespace conch::tool {

template <class R>
concept holding_recipe = requires(R& r, std::stop_token stop) {
  { r.acquire(stop) } -> std::same_as<result<void>>;
  { r.env() } -> std::convertible_to<std::vector<std::pair<std::string, std::string>>>;
  { r.release() } -> std::same_as<result<void>>;
};

/// While we wait to acquire, the main thread is blocked in the recipe: a
/// small thread reads the stop signals and turns the first into a stop
/// request, so waiting ends at once and no child is started.
class signal_watch {
 public:
  explicit signal_watch(process::signal_inbox& inbox)
      : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), thread_([this, &inbox] { run(inbox); }) {}
  ~signal_watch() { finish(); }
  signal_watch(const signal_watch&) = delete;
  signal_watch& operator=(const signal_watch&) = delete;

  std::stop_token token() const noexcept { return stop_.get_token(); }
  /// Ends the watch; signals arriving later stay in the inbox.
  void finish() {
    if (!thread_.joinable()) return;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
    thread_.join();
  }
  /// The first stop signal seen, if any.
  std::optional<int> signal() const {
    int s = signal_.load();
    return s ? std::optional<int>(s) : std::nullopt;
  }

 private:
  void run(process::signal_inbox& inbox) {
    for (;;) {
      pollfd fds[2] = {{inbox.fd(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents) return;
      while (auto sig = inbox.take()) {
        int none = 0;
        signal_.compare_exchange_strong(none, *sig);
        stop_.request_stop();
      }
    }
  }

  process::unique_fd wake_;
  std::stop_source stop_;
  std::atomic<int> signal_{0};
  std::thread thread_;
};

/// What an operator may want to hear of a holding wrapper (systemd notices,
/// metrics; see tool/ops.hpp). Every hook is optional.
struct hold_hooks {
  std::function<void()> waiting{};      ///< about to wait to acquire
  std::function<void()> acquired{};     ///< held; the child starts next
  std::function<void(long)> started{};  ///< a child started (pid)
  std::function<void(int)> exited{};    ///< a child ended (its exit code)
  std::function<void(int)> done{};      ///< the wrapper's exit code, once decided
  /// Each look at the lease's local deadline: from the supervising loop while
  /// held, and every `watch_every` while waiting.
  std::function<void(std::chrono::steady_clock::time_point)> lease{};
  std::chrono::milliseconds watch_every{0};
};

/// `--lock-delay auto|0|DURATION` (elect, sema): after a holder is lost
/// uncleanly (its lease expired or was revoked, its key deleted by hand), the
/// next one starts its child only this long after it saw the loss; a clean
/// release hands over at once. `auto` is the waiter's own --ttl + --kill-after:
/// the lost holder's child is gone by the loss + (TTL - margin) + kill-after
/// even when its wrapper is frozen (its watchdog kills the child at the local
/// deadline, at most TTL - margin after the last renewal), so the margin,
/// max(TTL/10, 500ms), is the slack. Contenders of one office should share
/// --ttl and --kill-after, or set --lock-delay to cover the largest.
struct lock_delay_flag {
  std::string text{"auto"};

  explicit lock_delay_flag(command_line& p) {
    p.text("--lock-delay", text, "auto|0|DURATION",
           "after a holder's lease is lost uncleanly, start CMD only this long after the loss "
           "(auto: --ttl + --kill-after; 0: at once)");
  }

  /// The delay for a waiter with `ttl` and `kill_after`; an error names the flag.
  result<std::chrono::milliseconds> finish(std::chrono::seconds ttl,
                                           std::chrono::milliseconds kill_after) const {
    if (text == "auto")
      return std::chrono::duration_cast<std::chrono::milliseconds>(ttl) + kill_after;
    auto d = conch::detail::parse_duration(text);
    if (!d) return error{errc::invalid_argument, "--lock-delay: " + d.error().message};
    return *d;
  }
};

/// Finishes the flags every holding tool has: the common ones into `common`,
/// then --lock-delay into `delay` (its auto value depends on --ttl and
/// --kill-after). An error names the flag.
inline result<void> finish_holding_flags(common_flags& flags, const lock_delay_flag& lock_delay,
                                         common_options& common, std::chrono::milliseconds& delay) {
  auto c = flags.finish();
  if (!c) return std::move(c).error();
  common = std::move(*c);
  auto d = lock_delay.finish(common.ttl, common.kill_after);
  if (!d) return std::move(d).error();
  delay = *d;
  return {};
}

struct hold_options {
  /// Prefixes diagnostics ("conch elect").
  std::string program{"conch"};
  process::supervise_options supervise{};
  /// The binary hosting watchdog_main(), executed when main() did not call
  /// process::watchdog::prefork() (the cheap way).
  std::string watchdog_host{"/proc/self/exe"};
  hold_hooks hooks{};
  /// The exit code (and message) for a session whose early lease grant
  /// failed (basic_session::start_early): what an unreachable etcd gets.
  std::function<int(const error&)> grant_failed{};
};

namespace hold_detail {

/// While waiting to acquire: hands the session's deadline to hooks.lease every
/// hooks.watch_every (so a systemd watchdog is fed while waiting too).
template <class Session>
std::jthread watch_lease_while_waiting(Session& session, const hold_hooks& hooks) {
  using session_deadline = std::remove_cvref_t<decltype(session.local_deadline())>;
  if constexpr (std::is_same_v<session_deadline, std::chrono::steady_clock::time_point>) {
    if (!hooks.lease || hooks.watch_every <= std::chrono::milliseconds(0)) return {};
    return std::jthread([&session, &hooks](std::stop_token stop) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock{m};
      while (!stop.stop_requested()) {
        hooks.lease(session.local_deadline());
        cv.wait_for(lock, stop, hooks.watch_every, [] { return false; });
      }
    });
  } else {
    return {};
  }
}

/// The exit code for a failure to acquire (SPEC §3 table).
inline int acquire_failure_code(errc code) {
  switch (code) {
    case errc::busy:
    case errc::timed_out:
      return exit_code::busy;
    case errc::lost:
    case errc::lease_not_found:
      return exit_code::lost;
    default:
      return exit_code::unavailable;
  }
}

/// What was acquired, for the supervisor: the recipe's environment and the
/// session's loss; each look at the deadline is also handed to hooks.lease.
template <class Session, class Recipe>
process::held_claim claim_of(Session& session, Recipe& recipe, const hold_hooks& hooks) {
  process::held_claim claim;
  claim.env = recipe.env();
  claim.lost = session.lost_token();
  using session_deadline = std::remove_cvref_t<decltype(session.local_deadline())>;
  if constexpr (std::is_same_v<session_deadline, std::chrono::steady_clock::time_point>)
    claim.local_deadline = [&session, &hooks] {
      const auto d = session.local_deadline();
      if (hooks.lease) hooks.lease(d);
      return d;
    };
  claim.lost_reason = [&session] { return session.lost_reason(); };
  if constexpr (requires { session.on_deadline_moved([](auto) {}); })
    claim.on_deadline_moved = [&session](std::function<void()> f) {
      if (f)
        session.on_deadline_moved([f = std::move(f)](auto) { f(); });
      else
        session.on_deadline_moved({});
    };
  return claim;
}

/// Whether a failed acquire's first write reached etcd before the session's
/// early lease grant (basic_session::start_early): the grant has since
/// succeeded and the session lives, so the acquire may be taken again.
template <class Session>
bool outran_grant(Session& session, const error& e) {
  if constexpr (requires { session.granted(); })
    return e.code == errc::lost && session.granted() && !session.lost();
  else
    return false;
}

inline int report_done(const hold_hooks& hooks, int code) {
  if (hooks.done) hooks.done(code);
  return code;
}

}  // namespace hold_detail

/// Acquires through `recipe` on `session`, supervises the child while held,
/// releases, and returns the wrapper's exit code (SPEC §3 table).
template <class Session, holding_recipe Recipe>
int hold_and_run(Session& session, Recipe& recipe, hold_options opt, process::signal_inbox& inbox) {
  auto say = [&](const std::string& line) {
    std::cerr << opt.program << ": " << line << std::endl;
  };
  opt.supervise.program = opt.program;

  // Started before waiting, so a failure to start it is known before we hold anything.
  auto watchdog =
      process::watchdog::start(opt.watchdog_host, {.kill_after = opt.supervise.kill_after});
  if (!watchdog) {
    say(watchdog.error().message);
    return exit_code::unavailable;
  }

  const hold_hooks& hooks = opt.hooks;
  result<void> acquired;
  std::optional<int> stop_signal;
  {
    if (hooks.waiting) hooks.waiting();
    auto lease_watch = hold_detail::watch_lease_while_waiting(session, hooks);
    signal_watch watch{inbox};
    acquired = recipe.acquire(watch.token());
    if (!acquired && hold_detail::outran_grant(session, acquired.error())) {
      acquired = recipe.acquire(watch.token());
    }
    watch.finish();
    stop_signal = watch.signal();
  }
  if (!acquired) {
    const auto& e = acquired.error();
    if (stop_signal) return hold_detail::report_done(hooks, exit_code::from_signal(*stop_signal));
    if constexpr (requires { session.granted(); }) {
      if (auto g = session.granted(); !g && opt.grant_failed)
        return hold_detail::report_done(hooks, opt.grant_failed(g.error()));
    }
    say(e.message);
    return hold_detail::report_done(hooks, hold_detail::acquire_failure_code(e.code));
  }
  if (stop_signal) {  // acquired as the signal came: never start a child after it
    (void)recipe.release();
    return hold_detail::report_done(hooks, exit_code::from_signal(*stop_signal));
  }
  if (hooks.acquired) hooks.acquired();
  if (hooks.started) opt.supervise.on_start = hooks.started;
  if (hooks.exited) opt.supervise.on_exit = hooks.exited;

  const auto claim = hold_detail::claim_of(session, recipe, hooks);
  auto out = process::supervise(claim, opt.supervise, inbox, &*watchdog);
  if (out.how != process::supervise_outcome::ending::lost) {
    if (auto r = recipe.release(); !r) say("release: " + r.error().message);
  }
  return hold_detail::report_done(hooks, out.exit_code);
}

}  // namespace conch::tool
