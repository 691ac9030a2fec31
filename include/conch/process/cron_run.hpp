// conch/process/cron_run.hpp — run one claimed tick's command to its end.
//
// The command runs by argv (no shell) in its own process group under the
// supervision core, with the tick's environment (CONCH_TICK, CONCH_REV, ...).
// Its stdout and stderr are captured together and only the last bytes are
// kept for the result record. A stop request (daemon shutdown) lets the run
// go on for `kill_after`, then kills its whole group: a shutdown is bounded,
// and the result of a killed run (128 + 9) is still recorded.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "conch/logic/cron_history.hpp"
#include "conch/logic/supervision.hpp"
#include "conch/process/output.hpp"
#include "conch/process/spawn.hpp"

namespace conch::detail {

/// What became of one run.
struct cron_outcome {
  int exit_code = 0;   ///< the child's code, 128 + n if signal n killed it, 127 if it never started
  std::string output;  ///< the last bytes of stdout + stderr (valid UTF-8)
  std::chrono::system_clock::time_point start, end;
  long pid = 0;  ///< 0 when the command could not be started
};

/// Who wants to know when a run's child starts and ends (a watchdog, a log).
struct cron_run_hooks {
  std::function<void(long pid)> started{};  ///< the child runs, leading process group `pid`
  /// The child has exited but is not reaped yet: its group id cannot be
  /// reused until this returns, so a watchdog can let go of it safely.
  std::function<void(long pid)> exited{};
};

struct cron_command {
  std::vector<std::string> argv{};
  std::vector<std::pair<std::string, std::string>> env{};
  std::size_t output_cap = 4096;
  std::chrono::milliseconds kill_after{5000};
};

/// Runs `cmd` to its end. Never throws for the child's sake: a command that
/// cannot be started ends with 127 and the reason as its output, as a shell
/// would report it.
inline cron_outcome run_command(const cron_command& cmd, std::stop_token stop, const cron_run_hooks& hooks = {}) {
  cron_outcome out;
  out.start = std::chrono::system_clock::now();
  // Held at its launch gate while `started` (a watchdog) takes hold of it.
  auto spawned = process::spawn(
      {.argv = cmd.argv, .env = cmd.env, .capture_output = true, .gated = static_cast<bool>(hooks.started)});
  if (!spawned) {
    out.exit_code = 127;
    out.output = utf8_tail(spawned.error().message, cmd.output_cap);
    out.end = std::chrono::system_clock::now();
    return out;
  }
  process::child& child = *spawned;
  out.pid = child.pid();
  if (hooks.started) hooks.started(child.pid());
  (void)child.release();

  // A stop request becomes a readable descriptor, so one poll() waits for
  // output, the child's exit and shutdown at once.
  process::unique_fd stop_fd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  std::stop_callback notify{stop, [&] {
                              std::uint64_t one = 1;
                              [[maybe_unused]] auto n = ::write(stop_fd.get(), &one, sizeof one);
                            }};
  process::output_tail tail{cmd.output_cap};
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  bool killed = false;
  for (;;) {
    if (child.exited()) break;
    pollfd fds[4] = {{child.exit_fd(), POLLIN, 0},
                     {child.stdout_fd(), POLLIN, 0},
                     {child.stderr_fd(), POLLIN, 0},
                     {kill_at ? -1 : stop_fd.get(), POLLIN, 0}};
    int timeout = child.exit_fd() < 0 ? 50 : -1;  // no pidfd (old kernel): look again soon
    if (kill_at && !killed) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*kill_at - std::chrono::steady_clock::now());
      timeout = static_cast<int>(std::max<std::int64_t>(0, left.count()));
      if (child.exit_fd() < 0) timeout = std::min(timeout, 50);
    }
    ::poll(fds, 4, timeout);
    if (fds[1].revents && !process::pump(child.stdout_fd(), -1, tail)) child.close_stdout();
    if (fds[2].revents && !process::pump(child.stderr_fd(), -1, tail)) child.close_stderr();
    if (!kill_at && stop.stop_requested()) kill_at = std::chrono::steady_clock::now() + cmd.kill_after;
    if (kill_at && !killed && std::chrono::steady_clock::now() >= *kill_at) {
      (void)child.signal_group(SIGKILL);
      killed = true;
    }
  }
  // Whatever the child wrote before exiting is in the pipes now; a
  // grandchild that keeps them open is not waited for.
  if (child.stdout_fd() >= 0) process::pump(child.stdout_fd(), -1, tail);
  if (child.stderr_fd() >= 0) process::pump(child.stderr_fd(), -1, tail);
  if (hooks.exited) hooks.exited(child.pid());
  out.exit_code = exit_code_of(child.reap());
  out.end = std::chrono::system_clock::now();
  out.output = utf8_tail(tail.str(), cmd.output_cap);
  return out;
}

}  // namespace conch::detail
