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
//  - It never signals the wrong process: a group is known by a pidfd of its
//    leader (or the leader's start time), taken while the leader waits at its
//    launch gate, and checked before every signal.
//  - A gated child (spawn_options::gated) is released by the watchdog itself:
//    watch_and_release() sends it the group with the write end of the child's
//    launch gate (SCM_RIGHTS) and returns without waiting; the watchdog opens
//    the gate only once it watches the group, then closes it. If the watchdog
//    is gone (or refuses), the gate's last write end closes unopened and the
//    child exits 127 without exec; child::closed_at_gate() tells that apart
//    from a command's own 127 after reap().
//
// Hosting: a program that calls watchdog::prefork() first thing in main, while
// it is one thread, gets a forked watchdog from watchdog::start() at no exec
// cost (conch and conchd do). Otherwise start() falls back to spawn(), which
// re-executes a binary that serves watchdog_main() when
// is_watchdog_invocation(argc, argv) (/proc/self/exe).
//
//   int main(int argc, char** argv) {
//     if (conch::process::is_watchdog_invocation(argc, argv))
//       return conch::process::watchdog_main(argc, argv);
//     conch::process::watchdog::prefork();
//     ...
//     auto wd = conch::process::watchdog::start("/proc/self/exe", {.kill_after = 5s});
//     auto c = conch::process::spawn({.argv = argv, .gated = true});
//     wd->watch_and_release(*c, deadline); ... wd->renew(new_deadline); ...
//     wd->forget(c->group()); auto st = c->reap();
//     if (c->closed_at_gate()) ...  // the watchdog was gone: the command never ran
//   }
#pragma once

#include "conch/logic/supervision.hpp"
#include "conch/process/fd.hpp"
#include "conch/process/spawn.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
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

/// Wrapper → watchdog, one way. A watch may carry the write end of the
/// leader's launch gate (SCM_RIGHTS), which the watchdog opens once watching.
enum op : std::int32_t { renew = 1, watch = 2, forget = 3 };
struct message {
  std::int32_t kind = 0;
  std::int32_t pgid = 0;
  std::int64_t deadline_ns = 0;     ///< CLOCK_MONOTONIC
  std::int64_t kill_after_ms = -1;  ///< watch: this group's kill-after (-1: the watchdog's own)
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

/// Sends `m`, with descriptor `attach` (SCM_RIGHTS) unless it is -1. Waits
/// for room in the watchdog's queue up to `wait` (without one: for as long as
/// it takes). 0, ETIMEDOUT, or the error that says the watchdog is gone.
inline int send(int fd, const message& m, int attach = -1,
                std::optional<std::chrono::milliseconds> wait = std::nullopt) noexcept {
  iovec iov{const_cast<message*>(&m), sizeof m};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  if (attach >= 0) {
    h.msg_control = control;
    h.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &attach, sizeof(int));
  }
  const auto until = wait ? clock::now() + *wait : clock::time_point::max();
  for (;;) {
    ssize_t n = ::sendmsg(fd, &h, MSG_NOSIGNAL | (wait ? MSG_DONTWAIT : 0));
    if (n == static_cast<ssize_t>(sizeof m)) return 0;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && wait) {  // its queue is full: it is behind, or frozen
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()).count();
      if (left <= 0) return ETIMEDOUT;
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left));
      continue;
    }
    return n < 0 ? errno : EPIPE;
  }
}

/// Receives one message and the descriptor it carries, if any (any other
/// descriptor is closed). The size received, or -1 with errno.
inline ssize_t receive(int fd, message& m, unique_fd& attached) noexcept {
  iovec iov{&m, sizeof m};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = control;
  h.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int got = -1;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (!attached)
        attached.reset(got);
      else
        ::close(got);
    }
  }
  return n;
}

/// Opens a launch gate: the leader behind it goes on to exec.
inline void open_gate(unique_fd gate) noexcept {
  const char go = 1;
  while (::write(gate.get(), &go, 1) < 0 && errno == EINTR) {
  }
}

inline int pidfd_send_signal(int pidfd, int sig) noexcept {
#ifdef SYS_pidfd_send_signal
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
#else
  errno = ENOSYS;
  return -1;
#endif
}

/// Process group and start time (clock ticks after boot) of `pid` from /proc.
inline bool group_and_start(pid_t pid, pid_t& pgrp, unsigned long long& start) {
  char buf[1024];
  const char* fields = proc_stat_fields(pid, buf);
  int pg = 0;
  // Fields after the name: 3 state, 4 ppid, 5 pgrp, ..., 22 starttime.
  if (!fields ||
      std::sscanf(
          fields,
          " %*c %*d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &pg,
          &start) != 2)
    return false;
  pgrp = pg;
  return true;
}

/// A watched group, known by something a recycled id cannot match: a pidfd of
/// its leader (and the leader's start time where pidfds are missing). It is
/// opened while the leader waits at its launch gate, so it is ours for sure.
struct watched_group {
  pid_t pgid = 0;
  unique_fd leader{};                   ///< pidfd, -1 without kernel support
  unsigned long long leader_start = 0;  ///< /proc starttime, 0 if unknown
  std::chrono::milliseconds kill_after{};
  std::optional<clock::time_point> term_sent{};
};

/// Whether the leader of `g` is still the process we were told to watch (alive
/// or an unreaped zombie: either way its id cannot have been reused).
inline bool leader_is_ours(const watched_group& g) {
  if (g.leader) return pidfd_send_signal(g.leader.get(), 0) == 0;
  pid_t pgrp = 0;
  unsigned long long start = 0;
  return g.leader_start != 0 && group_and_start(g.pgid, pgrp, start) && start == g.leader_start;
}

/// Signals the members of `g` one by one once its leader is reaped (the wrapper
/// was killed and init took the leader): only processes still in the group and
/// started after the leader, each through a pidfd opened before checking it.
/// Nothing if a process bearing the group's id exists: the id was reused.
inline void signal_orphaned_members(const watched_group& g, int sig) {
  if (::kill(g.pgid, 0) == 0 || errno != ESRCH) return;
  DIR* d = ::opendir("/proc");
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    unique_fd fd{detail_spawn::pidfd_open(static_cast<pid_t>(pid))};
    pid_t pgrp = 0;
    unsigned long long start = 0;
    if (!fd || !group_and_start(static_cast<pid_t>(pid), pgrp, start)) continue;
    if (pgrp == g.pgid && start >= g.leader_start) pidfd_send_signal(fd.get(), sig);
  }
  ::closedir(d);
}

/// Sends `sig` to `g`'s group, checked first against the leader's identity.
inline void signal_group(const watched_group& g, int sig) {
  if (leader_is_ours(g))
    ::kill(-g.pgid, sig);
  else if (g.leader)
    signal_orphaned_members(g, sig);
}

/// Starts watching `pgid` (its leader is held at its launch gate).
inline watched_group open_group(pid_t pgid, std::chrono::milliseconds kill_after) {
  watched_group g{.pgid = pgid, .kill_after = kill_after};
  g.leader.reset(detail_spawn::pidfd_open(pgid));
  pid_t pgrp = 0;
  if (!group_and_start(pgid, pgrp, g.leader_start)) g.leader_start = 0;
  return g;
}

/// The watchdog's state: the last deadline it was given and the groups under it.
struct watch_state {
  std::chrono::milliseconds default_kill_after{};
  std::optional<clock::time_point> deadline{};
  std::vector<watched_group> groups{};
  bool wrapper_gone = false;

  /// SIGTERM and SIGKILL as due at `now`; when the next one is due.
  std::optional<clock::time_point> act(clock::time_point now) {
    std::optional<clock::time_point> wake;
    auto sooner = [&](clock::time_point t) { wake = wake ? std::min(*wake, t) : t; };
    for (auto& g : groups) {
      if (!g.term_sent && deadline && now >= *deadline) {
        signal_group(g, SIGTERM);
        g.term_sent = now;
      }
      if (g.term_sent && now >= *g.term_sent + g.kill_after) signal_group(g, SIGKILL);
      if (g.term_sent)
        sooner(*g.term_sent + g.kill_after);
      else if (deadline)
        sooner(*deadline);
    }
    std::erase_if(groups, [&](const watched_group& g) {
      return g.term_sent && now >= *g.term_sent + g.kill_after;
    });
    return wake;
  }

  /// Applies one message from the wrapper. A watch's launch gate is opened
  /// only once the group is watched; any other gate closes unopened (its
  /// leader exits without exec).
  void apply(const message& m, unique_fd gate = {}) {
    switch (m.kind) {
      case op::renew:
        deadline = from_ns(m.deadline_ns);
        break;
      case op::watch: {
        auto kill_after =
            m.kill_after_ms >= 0 ? std::chrono::milliseconds(m.kill_after_ms) : default_kill_after;
        std::erase_if(groups, [&](const watched_group& g) { return g.pgid == m.pgid; });
        deadline = from_ns(m.deadline_ns);
        if (m.pgid <= 0) break;
        groups.push_back(open_group(m.pgid, kill_after));
        if (gate) open_gate(std::move(gate));  // watched, deadline set: now it may run
        break;
      }
      case op::forget:
        std::erase_if(groups, [&](const watched_group& g) { return g.pgid == m.pgid; });
        break;
      default:
        break;
    }
  }
};
}  // namespace detail_watchdog

/// The watchdog's loop, serving one wrapper on socket `fd` (SOCK_SEQPACKET).
/// Returns when the wrapper has gone and nothing is left to kill.
inline int run_watchdog(int fd, std::chrono::milliseconds kill_after) {
  using namespace detail_watchdog;
  watch_state st{.default_kill_after = kill_after};
  for (;;) {
    const auto now = clock::now();
    const auto wake = st.act(now);
    if (st.wrapper_gone && st.groups.empty()) return 0;
    int timeout_ms = -1;
    if (wake) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*wake - now).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }
    pollfd p{st.wrapper_gone ? -1 : fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) continue;  // timeout or EINTR: re-evaluate
    message m;
    unique_fd gate;
    ssize_t n = receive(fd, m, gate);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n != static_cast<ssize_t>(sizeof m)) {  // EOF or error: the wrapper is gone
      st.wrapper_gone = true;
      continue;
    }
    st.apply(m, std::move(gate));
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

/// The wrapper's handle on its watchdog process. Nothing waits for an answer:
/// messages are taken in the order sent. renew() may be called from any
/// thread (the session's keepalive thread renews as the deadline moves);
/// watch(), watch_and_release() and forget() from one thread at a time.
class watchdog {
 public:
  using clock = std::chrono::steady_clock;
  struct options {
    std::chrono::milliseconds kill_after{std::chrono::seconds(5)};
    /// How long a watch waits for room in the watchdog's queue (a few hundred
    /// messages) before failing with errc::timed_out: better a child not
    /// started than one waiting on a frozen watchdog.
    std::chrono::milliseconds watch_wait{std::chrono::seconds(5)};
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
    return watchdog(pid, std::move(ours), opt);
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
      if (int null = ::open("/dev/null", O_RDWR); null >= 0) {  // hold no one's pipe but stderr
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
      }
      detail_watchdog::close_inherited_fds(theirs.get());
      ::setpgid(0, 0);
      detail_watchdog::ignore_signals();
      ::_exit(run_watchdog(theirs.get(), opt.kill_after));
    }
    detail_spawn::own().pids.push_back(pid);
    return watchdog(pid, std::move(ours), opt);
  }

  /// Forks a watchdog now, for start() to hand out later: the cheap way for a
  /// program that loads gRPC. Call it first thing in main, before any thread
  /// exists; a process that never supervises anything lets it go at exit.
  static void prefork() {
    if (auto w = fork({})) preforked().emplace(std::move(*w));
  }
  /// The watchdog forked by prefork() if there is one (once), else one
  /// executed from `exe` (see spawn()).
  static result<watchdog> start(const std::string& exe, options opt) {
    if (auto& p = preforked(); p) {
      watchdog w = std::move(*p);
      p.reset();
      w.kill_after_ = opt.kill_after;
      w.watch_wait_ = opt.watch_wait;
      return w;
    }
    return spawn(exe, opt);
  }

  watchdog(watchdog&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)),
        sock_(std::move(o.sock_)),
        kill_after_(o.kill_after_),
        watch_wait_(o.watch_wait_),
        shared_(std::move(o.shared_)) {}
  watchdog& operator=(watchdog&& o) noexcept {
    if (this != &o) {
      this->~watchdog();
      new (this) watchdog(std::move(o));
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

  /// Watch gated child `c`'s group and let the watchdog release it: `c`'s
  /// launch gate goes to the watchdog, which opens it once it watches the
  /// group (it kills the group if `deadline` passes unrenewed). Returns at
  /// once, not waiting for that (only, while the watchdog's queue is full,
  /// for room in it, up to options::watch_wait). An error — errc::unavailable:
  /// the watchdog is gone; errc::timed_out: it takes no messages — means the
  /// gate was closed unopened: the child exits 127 without exec. If the
  /// watchdog dies before it opens the gate, the same happens later: after
  /// reap(), c.closed_at_gate() is true. A child that is not gated (already
  /// running) is just watched from now on.
  result<void> watch_and_release(child& c, clock::time_point deadline) {
    unique_fd gate = c.take_gate();
    return send_watch(c.group(), deadline, gate.get());
  }
  /// Watch process group `pgid`, already running (its start was not held
  /// for the watchdog); kill it if `deadline` passes unrenewed.
  result<void> watch(pid_t pgid, clock::time_point deadline) {
    return send_watch(pgid, deadline, -1);
  }
  /// Move the deadline (for every watched group). Any thread.
  result<void> renew(clock::time_point deadline) {
    const auto ns = detail_watchdog::to_ns(deadline);
    const auto prev = shared_->last_sent.exchange(ns);
    if (prev != 0 && detail_watchdog::to_ns(clock::now()) >= prev) shared_->lapsed = true;
    return post({detail_watchdog::op::renew, 0, ns});
  }
  /// Whether the watchdog may have started killing: a deadline it was given
  /// passed before the next one reached it (the kill sequence, once started,
  /// always finishes). Reset by watch().
  bool fired(clock::time_point now = clock::now()) const noexcept {
    const auto last = shared_->last_sent.load();
    return shared_->lapsed || (last != 0 && detail_watchdog::to_ns(now) >= last);
  }
  /// Stop watching `pgid`. Not waited for: the watchdog checks the leader's
  /// identity before any signal, so a reaped leader's reused id is never hit.
  result<void> forget(pid_t pgid) { return post({detail_watchdog::op::forget, pgid, 0}); }

 private:
  struct shared_state {
    std::atomic<std::int64_t> last_sent{0};
    std::atomic<bool> lapsed{false};
  };
  watchdog(pid_t pid, unique_fd sock, options opt)
      : pid_(pid),
        sock_(std::move(sock)),
        kill_after_(opt.kill_after),
        watch_wait_(opt.watch_wait),
        shared_(std::make_unique<shared_state>()) {}

  static std::optional<watchdog>& preforked() {
    static std::optional<watchdog> w;
    return w;
  }

  result<void> post(const detail_watchdog::message& m, int attach = -1,
                    std::optional<std::chrono::milliseconds> wait = std::nullopt) {
    const int err = detail_watchdog::send(sock_.get(), m, attach, wait);
    if (err == ETIMEDOUT) return error{errc::timed_out, "watchdog: not taking messages"};
    if (err != 0) return error{errc::unavailable, "watchdog: gone"};
    return {};
  }

  result<void> send_watch(pid_t pgid, clock::time_point deadline, int gate) {
    shared_->lapsed = false;
    shared_->last_sent = detail_watchdog::to_ns(deadline);
    return post(
        {detail_watchdog::op::watch, pgid, detail_watchdog::to_ns(deadline), kill_after_.count()},
        gate, watch_wait_);
  }

  pid_t pid_ = -1;
  unique_fd sock_;
  std::chrono::milliseconds kill_after_{};
  std::chrono::milliseconds watch_wait_{};
  std::unique_ptr<shared_state> shared_;
};

}  // namespace conch::process
