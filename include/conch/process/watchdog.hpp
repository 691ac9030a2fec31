// conch/process/watchdog.hpp — enforce the local deadline even while the wrapper is frozen.
//
// A wrapper stopped by SIGSTOP, swapped out or stuck in a thread cannot kill its
// child when its lease runs out. The watchdog is a tiny separate process that the
// wrapper renews with each new local deadline (CLOCK_MONOTONIC, the clock of
// std::chrono::steady_clock on Linux). When a deadline passes unrenewed it sends
// SIGTERM to every watched process group and SIGKILL `kill_after` later, so the
// overlap after a lease loss is bounded by kill-after, not by the freeze.
//
// Rules:
//  - A deadline that has passed means the lease is presumed lost: the kill
//    sequence, once started, always finishes, even if a renewal arrives late.
//  - If the wrapper goes away (its end of the socket closes: killed by -9,
//    crashed) while groups are watched, its lease stays in etcd until its TTL,
//    so the watchdog kills those groups at the last deadline it was given and
//    then exits. With nothing watched it exits at once.
//  - The watchdog ignores the stop signals and the terminal's job-control
//    signals, and lives in its own process group: Ctrl-C or Ctrl-Z on the
//    wrapper must not take the watchdog with it.
//
// Hosting: any binary can host the watchdog by calling watchdog_main() first
// thing in main when is_watchdog_invocation(argc, argv); watchdog::spawn()
// then re-executes that binary (/proc/self/exe). A single-threaded program can
// instead use watchdog::fork() before it starts threads.
//
//   int main(int argc, char** argv) {
//     if (conch::process::is_watchdog_invocation(argc, argv))
//       return conch::process::watchdog_main(argc, argv);
//     auto wd = conch::process::watchdog::spawn("/proc/self/exe", {.kill_after = 5s});
//     wd->watch(child.group(), deadline); ... wd->renew(new_deadline); ...
//     wd->forget(child.group());
//   }
#pragma once

#include "conch/logic/supervision.hpp"
#include "conch/process/fd.hpp"
#include "conch/process/spawn.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <mutex>
#include <optional>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace conch::process {

/// The hidden first argument that turns a hosting binary into a watchdog.
inline constexpr std::string_view watchdog_argument = "__watchdog";

namespace detail_watchdog {
using clock = std::chrono::steady_clock;

enum op : std::int32_t { renew = 1, watch = 2, forget = 3, ack = 4 };
struct message {
  std::int32_t kind = 0;
  std::int32_t pgid = 0;
  std::int64_t deadline_ns = 0;  ///< CLOCK_MONOTONIC
};

inline std::int64_t to_ns(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline clock::time_point from_ns(std::int64_t ns) {
  return clock::time_point(
      std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(ns)));
}

inline void ignore_signals() noexcept {
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE})
    std::signal(s, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
}

/// Closes every descriptor above stderr but `keep`: the watchdog may outlive
/// its wrapper, and must not hold a pipe someone waits to see closed.
inline void close_inherited_fds(int keep) noexcept {
#ifdef SYS_close_range
  if (keep >= 3) {
    const auto k = static_cast<unsigned>(keep);
    bool closed = k == 3 || ::syscall(SYS_close_range, 3u, k - 1u, 0u) == 0;
    if (closed && ::syscall(SYS_close_range, k + 1u, ~0u, 0u) == 0) return;
  }
#endif
  for (int fd = 3; fd < 4096; ++fd)
    if (fd != keep) ::close(fd);
}

inline bool send(int fd, const message& m) noexcept {
  for (;;) {
    ssize_t n = ::send(fd, &m, sizeof m, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof m)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}
}  // namespace detail_watchdog

/// The watchdog's loop, serving one wrapper on socket `fd` (SOCK_SEQPACKET).
/// Returns when the wrapper has gone and nothing is left to kill.
inline int run_watchdog(int fd, std::chrono::milliseconds kill_after) {
  using namespace detail_watchdog;
  using kill_seq = conch::detail::kill_sequence<clock::time_point>;

  std::optional<clock::time_point> deadline;
  std::vector<pid_t> watched, killing;
  kill_seq seq{std::chrono::duration_cast<clock::duration>(kill_after)};
  bool wrapper_gone = false;

  for (;;) {
    auto now = clock::now();
    if (!seq.started() && !watched.empty() && deadline && now >= *deadline) {
      killing = watched;
      for (pid_t g : killing) ::kill(-g, SIGTERM);
      seq.start(now);
    }
    if (seq.kill_due(now)) {
      for (pid_t g : killing) ::kill(-g, SIGKILL);
      std::erase_if(watched, [&](pid_t g) { return std::ranges::count(killing, g) > 0; });
      killing.clear();
      seq = kill_seq{seq.kill_after()};
    }
    if (wrapper_gone && watched.empty()) return 0;

    std::optional<clock::time_point> wake;
    if (seq.started())
      wake = seq.kill_at();
    else if (!watched.empty() && deadline)
      wake = deadline;
    int timeout_ms = -1;
    if (wake) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*wake - now).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }

    pollfd p{wrapper_gone ? -1 : fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r <= 0) continue;  // timeout or EINTR: re-evaluate
    message m;
    ssize_t n = ::recv(fd, &m, sizeof m, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n != static_cast<ssize_t>(sizeof m)) {  // EOF or error: the wrapper is gone
      wrapper_gone = true;
      continue;
    }
    switch (m.kind) {
      case op::renew:
        deadline = from_ns(m.deadline_ns);
        break;
      case op::watch:
        if (m.pgid > 0 && std::ranges::count(watched, m.pgid) == 0) watched.push_back(m.pgid);
        deadline = from_ns(m.deadline_ns);
        break;
      case op::forget:
        std::erase(watched, m.pgid);
        std::erase(killing, m.pgid);
        send(fd, {op::ack, m.pgid, 0});
        break;
      default:
        break;
    }
  }
}

inline bool is_watchdog_invocation(int argc, char** argv) noexcept {
  return argc >= 2 && argv[1] == watchdog_argument;
}

/// Main of a watchdog process: `<exe> __watchdog <fd> <kill-after-ms>`.
inline int watchdog_main(int argc, char** argv) {
  if (argc != 4) return 64;
  detail_watchdog::ignore_signals();
  int fd = std::atoi(argv[2]);
  detail_watchdog::close_inherited_fds(fd);
  auto kill_after = std::chrono::milliseconds(std::atoll(argv[3]));
  return run_watchdog(fd, kill_after);
}

/// The wrapper's handle on its watchdog process.
class watchdog {
 public:
  using clock = std::chrono::steady_clock;
  struct options {
    std::chrono::milliseconds kill_after{std::chrono::seconds(5)};
  };

  /// Starts a watchdog by executing `exe __watchdog ...` (posix_spawn: safe
  /// next to other threads). `exe` must host watchdog_main().
  static result<watchdog> spawn(const std::string& exe, options opt) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      return os_error("watchdog: socketpair");
    unique_fd ours(sv[0]), theirs(sv[1]);
    // The child's end goes to fd 3; dup2 onto a different number clears close-on-exec.
    if (theirs.get() == 3) theirs.reset(::fcntl(3, F_DUPFD_CLOEXEC, 10));

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, theirs.get(), 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);

    std::string ms = std::to_string(opt.kill_after.count());
    std::string arg0 = "conch-watchdog", arg1(watchdog_argument), fd = "3";
    char* argv[] = {arg0.data(), arg1.data(), fd.data(), ms.data(), nullptr};
    char* envp[] = {nullptr};
    pid_t pid = -1;
    int rc = 0;
    {
      std::lock_guard lock{detail_spawn::own().mutex};
      rc = ::posix_spawn(&pid, exe.c_str(), &actions, &attr, argv, envp);
      if (rc == 0) detail_spawn::own().pids.push_back(pid);
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return os_error("watchdog: cannot start " + exe, rc);
    return watchdog(pid, std::move(ours));
  }

  /// Forks the watchdog from the calling process. Only for programs that have
  /// no other thread yet (fork copies one thread; a lock held by another
  /// would stay held forever in the copy).
  static result<watchdog> fork(options opt) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      return os_error("watchdog: socketpair");
    unique_fd ours(sv[0]), theirs(sv[1]);
    std::unique_lock lock{detail_spawn::own().mutex};
    pid_t pid = ::fork();
    if (pid < 0) return os_error("watchdog: fork");
    if (pid == 0) {
      ours.reset();
      detail_watchdog::close_inherited_fds(theirs.get());
      ::setpgid(0, 0);
      detail_watchdog::ignore_signals();
      ::_exit(run_watchdog(theirs.get(), opt.kill_after));
    }
    detail_spawn::own().pids.push_back(pid);
    return watchdog(pid, std::move(ours));
  }

  watchdog(watchdog&& o) noexcept : pid_(std::exchange(o.pid_, -1)), sock_(std::move(o.sock_)) {}
  watchdog& operator=(watchdog&& o) noexcept {
    if (this != &o) {
      sock_ = std::move(o.sock_);
      pid_ = std::exchange(o.pid_, -1);
    }
    return *this;
  }
  /// Closes the connection. The watchdog exits by itself: at once when
  /// nothing is watched, else after killing what is (see the rules above).
  ~watchdog() {
    sock_.reset();
    if (pid_ > 0) {
      ::waitpid(pid_, nullptr, WNOHANG);
      detail_spawn::disown(pid_);  // a subreaper's reap_orphans() takes it when it ends
    }
  }

  pid_t pid() const noexcept { return pid_; }

  /// Watch process group `pgid`; kill it if `deadline` passes unrenewed.
  result<void> watch(pid_t pgid, clock::time_point deadline) {
    return post({detail_watchdog::op::watch, pgid, detail_watchdog::to_ns(deadline)});
  }
  /// Move the deadline (for every watched group).
  result<void> renew(clock::time_point deadline) {
    return post({detail_watchdog::op::renew, 0, detail_watchdog::to_ns(deadline)});
  }
  /// Stop watching `pgid`, and wait (up to `wait`) until the watchdog has
  /// taken note — so a group id reused after we reap the child is never hit.
  result<void> forget(pid_t pgid, std::chrono::milliseconds wait = std::chrono::seconds(1)) {
    if (auto r = post({detail_watchdog::op::forget, pgid, 0}); !r) return r;
    auto until = clock::now() + wait;
    for (;;) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()).count();
      if (left <= 0) return error{errc::timed_out, "watchdog: no answer"};
      pollfd p{sock_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      detail_watchdog::message m;
      ssize_t n = ::recv(sock_.get(), &m, sizeof m, MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(sizeof m)) {
        if (m.kind == detail_watchdog::op::ack && m.pgid == pgid) return {};
        continue;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return error{errc::unavailable, "watchdog: gone"};
    }
  }

 private:
  watchdog(pid_t pid, unique_fd sock) : pid_(pid), sock_(std::move(sock)) {}

  result<void> post(const detail_watchdog::message& m) {
    if (!detail_watchdog::send(sock_.get(), m)) return os_error("watchdog: gone");
    return {};
  }

  pid_t pid_ = -1;
  unique_fd sock_;
};

}  // namespace conch::process
