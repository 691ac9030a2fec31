// conch/process/spawn.hpp — start a child by argv in its own process group.
//
// posix_spawnp (glibc: clone(CLONE_VM|CLONE_VFORK) + exec) has none of fork's
// hazards next to gRPC's threads: nothing of the parent runs in the child but
// the spawn code itself. The child gets its own process group (so a signal to
// the group reaches its grandchildren and the terminal's Ctrl-C reaches only
// the wrapper, which forwards it), an empty signal mask and default
// dispositions (the wrapper blocks and ignores signals the child must not
// inherit), and extra environment variables (CONCH_REV, CONCH_KEY, ...).
// conch's own etcd password (CONCH_PASSWORD) is never passed on: the
// supervised command is not trusted with conch's credentials (a child that
// needs etcd gets its own, see docs/supervision.md).
// A gated child (spawn_options::gated) waits before exec until its launch
// gate opens — child::release(), or whoever was handed the gate
// (child::take_gate(): the watchdog opens it once it watches the group) — and
// exits 127 without exec if the gate closes unopened. It is started by
// clone(CLONE_VM) on a stack of its own: like posix_spawn's vfork it shares
// our memory until exec (no page tables copied, however big this process),
// unlike it the caller runs on. Between its start and exec it makes raw
// system calls only, with every signal blocked until its dispositions are
// the defaults.
// No shell is involved: argv[0] is looked up in PATH, like execvp. (glibc's
// posix_spawn leaves its two internal real-time signals, 32 and 33, ignored;
// the child's own libc takes them back.)
//
//   auto c = conch::process::spawn({.argv = {"sleep", "10"}, .env = {{"CONCH_REV", "42"}}});
//   if (!c) die(c.error().message);
//   poll on c->exit_fd(); auto st = c->reap();   // detail::child_status
#pragma once

#include "conch/logic/supervision.hpp"
#include "conch/process/fd.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

extern char** environ;

namespace conch::process {

/// The fields of /proc/PID/stat after the command name (the state first),
/// read into `buf` with one open and read, no stdio (a group's liveness scan
/// reads every process); nullptr once `pid` is gone. The name may hold
/// spaces and parentheses, so the fields start after the last ')'.
template <std::size_t N>
const char* proc_stat_fields(pid_t pid, char (&buf)[N]) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  const ssize_t n = ::read(fd, buf, N - 1);
  ::close(fd);
  if (n <= 0) return nullptr;
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  return close ? close + 1 : nullptr;
}

struct spawn_options {
  std::vector<std::string> argv{};                         ///< argv[0] is looked up in PATH
  std::vector<std::pair<std::string, std::string>> env{};  ///< added to (or replacing) ours
  bool capture_output = false;  ///< stdout/stderr through pipes (see stdout_fd())
  /// With capture_output: stderr goes into stdout's pipe (stderr_fd() is -1),
  /// so one reader sees both streams in the order they were written.
  bool merge_output = false;
  /// Hold the child at a launch gate, before exec, until child::release():
  /// whoever must watch it (the watchdog) can take hold of it first.
  bool gated = false;
};

namespace detail_spawn {
inline int pidfd_open(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

/// The children this process started on purpose (spawn(), the watchdog): an
/// orphan reaper must leave their exit status to their owners. The lock is
/// held from posix_spawn until the pid is recorded, so a child that exits at
/// once is never taken for an orphan.
struct own_children {
  std::mutex mutex;
  std::vector<pid_t> pids;
  std::atomic<bool> subreaper{false};
  bool contains(pid_t pid) const { return std::ranges::count(pids, pid) > 0; }
};
inline own_children& own() {
  static own_children o;
  return o;
}
inline void disown(pid_t pid) {
  std::lock_guard lock{own().mutex};
  std::erase(own().pids, pid);
}

/// Parent and state of `pid` from /proc/PID/stat; false if it is gone.
inline bool parent_and_state(pid_t pid, pid_t& ppid, char& state) {
  char buf[512];
  const char* fields = proc_stat_fields(pid, buf);
  int pp = 0;
  if (!fields || std::sscanf(fields, " %c %d", &state, &pp) != 2) return false;
  ppid = pp;
  return true;
}

/// Where each command was last found in PATH, as a shell's command hash
/// keeps it, for a second at most: a daemon starting the same command many
/// times a second searches once a second, and an executable installed
/// earlier in PATH is found a second later.
class path_cache {
 public:
  static path_cache& instance() {
    static path_cache c;
    return c;
  }
  std::optional<std::string> find(const std::string& name, std::string_view path) {
    std::lock_guard lock{mutex_};
    auto it = found_.find(name);
    if (it == found_.end() || it->second.path_env != path ||
        std::chrono::steady_clock::now() - it->second.at > std::chrono::seconds(1))
      return std::nullopt;
    return it->second.file;
  }
  void keep(const std::string& name, std::string_view path, const std::string& file) {
    std::lock_guard lock{mutex_};
    if (found_.size() >= 1024) found_.clear();
    found_[name] = {std::string(path), file, std::chrono::steady_clock::now()};
  }

 private:
  struct entry {
    std::string path_env, file;
    std::chrono::steady_clock::time_point at;
  };
  std::mutex mutex_;
  std::map<std::string, entry> found_;
};

/// argv[0] looked up in PATH as execvp would, in the parent: a gated child
/// must not search (nothing but async-signal-safe calls between fork and exec).
inline result<std::string> find_in_path(const std::string& name) {
  // One call per candidate in the common cases (found; not there); only a
  // refusal asks whether the file exists at all.
  auto usable = [](const std::string& p) -> int {
    if (::access(p.c_str(), X_OK) == 0) return 0;
    if (errno == ENOENT || errno == ENOTDIR) return ENOENT;
    return ::access(p.c_str(), F_OK) == 0 ? EACCES : ENOENT;
  };
  auto fail = [&](int err) {
    return error{err == EACCES ? errc::permission_denied : errc::invalid_argument,
                 "cannot run \"" + name + "\": " + std::strerror(err)};
  };
  if (name.find('/') != std::string::npos) {
    if (int e = usable(name)) return fail(e);
    return name;
  }
  const char* env = std::getenv("PATH");
  std::string_view path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
  auto& cache = path_cache::instance();
  if (auto file = cache.find(name, path); file && ::access(file->c_str(), X_OK) == 0) return *file;
  int last = ENOENT;
  for (size_t at = 0; at <= path.size();) {
    size_t colon = std::min(path.find(':', at), path.size());
    std::string dir(path.substr(at, colon - at));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    int e = usable(candidate);
    if (e == 0) {
      cache.keep(name, path, candidate);
      return candidate;
    }
    if (e == EACCES) last = EACCES;
    at = colon + 1;
  }
  return fail(last);
}

/// Gated children's stacks, kept for the next child rather than unmapped:
/// a daemon starting runs all the time would otherwise map and unmap one
/// per run (and an unmap in a process with many threads costs every core a
/// TLB flush). A stack returns here once its child was reaped.
class stack_pool {
 public:
  static constexpr std::size_t size = 64 * 1024;
  static constexpr std::size_t kept = 64;
  static stack_pool& instance() {
    static auto* p = new stack_pool;  // never destroyed: a child may outlive static destruction
    return *p;
  }
  void* take() {
    {
      std::lock_guard lock{mutex_};
      if (!free_.empty()) {
        void* s = free_.back();
        free_.pop_back();
        return s;
      }
    }
    void* s = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                     -1, 0);
    return s == MAP_FAILED ? nullptr : s;
  }
  void give(void* s) {
    {
      std::lock_guard lock{mutex_};
      if (free_.size() < kept) {
        free_.push_back(s);
        return;
      }
    }
    ::munmap(s, size);
  }

 private:
  std::mutex mutex_;
  std::vector<void*> free_;
};

/// What a gated child reads between its start and its exec: kept by its
/// `child` until reaped, since the child shares our memory (see start_gated).
struct launch {
  std::string path;
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;
  int gate = -1, out = -1, err = -1;  ///< the child's copies (its own fd table)
  int gate_w = -1;  ///< the child's copy of the gate's write end: closed first, or no EOF
  int rtmin = 32;   ///< libc's first public real-time signal
  /// Set by the child when its gate closed unopened: it exits 127 without exec.
  std::atomic<bool> closed_at_gate{false};
  void* stack = nullptr;  ///< from stack_pool, stack_pool::size bytes
  launch() = default;
  launch(const launch&) = delete;
  launch& operator=(const launch&) = delete;
  ~launch() {
    if (stack) stack_pool::instance().give(stack);
  }
};

/// The gated child between its start and exec: raw system calls only, none
/// that can fail (errno is the starting thread's: the memory is shared), and
/// every signal blocked until the dispositions are the defaults. Every
/// signal is reset, not just the ones not at their default: finding those
/// (a read of /proc/self/status, here or in the parent) costs more than the
/// 62 sigaction calls, which run while the child waits for its gate anyway.
/// The gate's last write end closing unopened (its releaser is gone) ends it
/// with 127, never an exec.
inline int gated_child(void* arg) noexcept {
  auto& l = *static_cast<launch*>(arg);
  ::setpgid(0, 0);
  ::close(l.gate_w);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s)
    if (s != SIGKILL && s != SIGSTOP && (s < 32 || s >= l.rtmin)) ::sigaction(s, &dfl, nullptr);
  if (l.out >= 0) ::dup2(l.out, STDOUT_FILENO);
  if (l.err >= 0) ::dup2(l.err, STDERR_FILENO);
  char go = 0;
  // syscall(), not read(): libc's read is a cancellation point, which would
  // touch the starting thread's descriptor (the memory is shared).
  if (::syscall(SYS_read, l.gate, &go, 1) != 1) {  // released never: the releaser is gone
    l.closed_at_gate.store(true);
    ::_exit(127);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(l.path.c_str(), l.argv.data(), l.envp.data());
  ::_exit(errno == ENOENT ? 127 : 126);
}

/// Variables of ours that a child never inherits: conch's credentials.
inline constexpr std::string_view withheld_variables[] = {"CONCH_PASSWORD"};

inline bool names(std::string_view entry, std::string_view name) {
  return entry.size() > name.size() && entry.substr(0, name.size()) == name &&
         entry[name.size()] == '=';
}

/// Our environment less the withheld variables, with `extra` added (or
/// replacing ours): the envp of every child, gated or not.
inline std::vector<std::string> merged_environment(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (std::string_view name : withheld_variables) replaced = replaced || names(entry, name);
    for (const auto& [name, value] : extra) replaced = replaced || names(entry, name);
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

inline std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}
}  // namespace detail_spawn

inline void reap_orphans();

/// A running (or exited, not yet reaped) child and its process group.
/// Destroying an unreaped child SIGKILLs its group and reaps it: a child is
/// never left running unsupervised.
class child {
 public:
  child() = default;
  child(child&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)),
        exit_fd_(std::move(o.exit_fd_)),
        out_(std::move(o.out_)),
        err_(std::move(o.err_)),
        gate_(std::move(o.gate_)),
        launch_(std::move(o.launch_)),
        closed_at_gate_(o.closed_at_gate_) {}
  child& operator=(child&& o) noexcept {
    if (this != &o) {
      abandon();
      pid_ = std::exchange(o.pid_, -1);
      exit_fd_ = std::move(o.exit_fd_);
      out_ = std::move(o.out_);
      err_ = std::move(o.err_);
      gate_ = std::move(o.gate_);
      launch_ = std::move(o.launch_);
      closed_at_gate_ = o.closed_at_gate_;
    }
    return *this;
  }
  ~child() { abandon(); }

  pid_t pid() const noexcept { return pid_; }
  /// The child's process group id (the child leads its own group).
  pid_t group() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }

  /// A pidfd that polls readable once the child has exited; -1 on kernels
  /// without pidfd_open (< 5.3): then poll with a short timeout and exited().
  int exit_fd() const noexcept { return exit_fd_.get(); }
  /// Captured stdout / stderr read ends (non-blocking), -1 unless captured.
  int stdout_fd() const noexcept { return out_.get(); }
  int stderr_fd() const noexcept { return err_.get(); }
  void close_stdout() noexcept { out_.reset(); }
  void close_stderr() noexcept { err_.reset(); }

  /// Whether the child has exited, without reaping it: while it is an
  /// unreaped zombie its pid (and so its group id) cannot be reused, which
  /// keeps signals to the group and the watchdog's knowledge of it safe.
  bool exited() const noexcept {
    if (pid_ <= 0) return true;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
      return errno == ECHILD;
    return info.si_pid == pid_;
  }

  /// Waits for the child to exit and reaps it.
  conch::detail::child_status reap() noexcept {
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED) != 0 && errno == EINTR) {
    }
    detail_spawn::disown(pid_);
    pid_ = -1;
    reap_orphans();  // the ones its zombie hid
    exit_fd_.reset();
    if (launch_) closed_at_gate_ = launch_->closed_at_gate.load();
    launch_.reset();  // a gated child's stack and arguments: unused once it exited
    if (info.si_code == CLD_EXITED) return conch::detail::child_status::exited(info.si_status);
    return conch::detail::child_status::signalled(info.si_status);
  }

  /// Opens the launch gate of a child spawned with `gated`: it goes on to
  /// exec its command (a failed exec shows as exit 127/126). No-op otherwise.
  result<void> release() noexcept {
    if (!gate_) return {};
    const char go = 1;
    ssize_t n;
    while ((n = ::write(gate_.get(), &go, 1)) < 0 && errno == EINTR) {
    }
    gate_.reset();
    if (n != 1) return os_error("launch gate");
    return {};
  }
  bool gated() const noexcept { return static_cast<bool>(gate_); }

  /// Hands over the write end of the launch gate (-1 unless gated() and not
  /// released): whoever holds it opens the gate by writing one byte. Once
  /// every copy closes unwritten, the child exits 127 without exec and
  /// closed_at_gate() says so after reap().
  unique_fd take_gate() noexcept { return std::move(gate_); }
  /// After reap(): the child never ran its command, because its launch gate
  /// closed unopened (whoever held it — the watchdog — was gone first).
  bool closed_at_gate() const noexcept { return closed_at_gate_; }

  /// Sends `sig` to the child's whole process group (grandchildren included).
  /// Succeeds when the group is already gone.
  result<void> signal_group(int sig) const noexcept {
    if (pid_ <= 0) return {};
    if (::kill(-pid_, sig) != 0 && errno != ESRCH) return os_error("kill");
    return {};
  }

 private:
  friend result<child> spawn(const spawn_options&);

  void abandon() noexcept {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      reap();
    }
  }

  pid_t pid_ = -1;
  unique_fd exit_fd_;
  unique_fd out_, err_;
  unique_fd gate_;  ///< write end of the launch gate, while the child waits at it
  std::unique_ptr<detail_spawn::launch> launch_;  ///< what a gated child reads until its exec
  bool closed_at_gate_ = false;
};

/// Makes this process the reaper of its descendants' orphans
/// (PR_SET_CHILD_SUBREAPER): a grandchild whose parent died is re-parented
/// here instead of to init, so its zombie can be reaped at once (reap_orphans)
/// rather than count as a member of its group until init gets to it. Call it
/// before starting children; every child the process starts itself must come
/// from spawn() (or the watchdog), or reap_orphans() may take its exit status.
inline result<void> become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    return os_error("prctl(PR_SET_CHILD_SUBREAPER)");
  detail_spawn::own().subreaper = true;
  return {};
}

/// Reaps the zombies of orphans adopted by this subreaper, leaving the
/// children it started itself to their owners: one waitid when there is none.
/// An own child's zombie hides the ones behind it until its owner reaps it, so
/// owners call this again right after reaping. Does nothing unless
/// become_subreaper() was called.
inline void reap_orphans() {
  auto& o = detail_spawn::own();
  if (!o.subreaper) return;
  std::lock_guard lock{o.mutex};
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    if (o.contains(info.si_pid)) return;
    ::waitpid(info.si_pid, nullptr, WNOHANG);
  }
}

/// reap_orphans(), at most once per `every` in this process: for a loop that
/// calls it at each turn, of which a daemon runs many at once (each call
/// scans every child). Nothing waits on it: whoever needs the orphans gone
/// (live_members) calls reap_orphans() itself.
inline void reap_orphans_every(std::chrono::milliseconds every) {
  static std::atomic<std::int64_t> last{0};
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t before = last.load(std::memory_order_relaxed);
  if (now - before < every.count() || !last.compare_exchange_strong(before, now)) return;
  reap_orphans();
}

/// Sends `sig` to process group `pgid`; true if the group still had members.
inline bool signal_group(pid_t pgid, int sig) noexcept {
  return pgid > 0 && ::kill(-pgid, sig) == 0;
}

/// Whether any process (a zombie included) is still in group `pgid`.
inline bool group_alive(pid_t pgid) noexcept { return signal_group(pgid, 0); }

namespace detail_spawn {
struct pipes {
  unique_fd out_r, out_w, err_r, err_w;
};

/// posix_spawnp (clone(CLONE_VFORK) + exec): the child runs at once.
inline int start_now(pid_t& pid, const pipes& io, char* const* argv, char* const* envp) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (io.out_w) {  // dup2 onto 1 and 2 clears close-on-exec on the copies only
    posix_spawn_file_actions_adddup2(&actions, io.out_w.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, io.err_w ? io.err_w.get() : io.out_w.get(),
                                     STDERR_FILENO);
  }
  int rc = 0;
  {
    std::lock_guard lock{own().mutex};
    rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv, envp);
    if (rc == 0) own().pids.push_back(pid);
  }
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

/// Starts the child sharing our memory (clone(CLONE_VM), as posix_spawn's
/// vfork does, but without suspending us): no page tables copied, no
/// copy-on-write faults, however large this process. It waits at the gate
/// (the read end of `gate`) before exec, on its own stack, reading `l`.
inline int start_gated(pid_t& pid, launch& l, unique_fd& gate_w) {
  int g[2];
  if (::pipe2(g, O_CLOEXEC) != 0) return errno;
  unique_fd gate_r(g[0]);
  gate_w.reset(g[1]);
  l.gate = gate_r.get();
  l.gate_w = gate_w.get();
  l.rtmin = SIGRTMIN;
  l.stack = stack_pool::instance().take();
  if (!l.stack) return errno;
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of ours may run in the child
  int rc = 0;
  {
    std::lock_guard lock{own().mutex};
    pid = ::clone(gated_child, static_cast<char*>(l.stack) + stack_pool::size, CLONE_VM | SIGCHLD,
                  &l);
    if (pid < 0) {
      rc = errno;
    } else {
      ::setpgid(pid, pid);  // also here, so the group exists before we return
      own().pids.push_back(pid);
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return rc;
}
}  // namespace detail_spawn

/// Starts a child. Errors: `errc::invalid_argument` when argv is empty or
/// argv[0] is not found, `errc::permission_denied` when it is not executable,
/// `errc::internal` otherwise; the message names the command and the reason.
inline result<child> spawn(const spawn_options& opt) {
  if (opt.argv.empty()) return error{errc::invalid_argument, "no command to run"};
  detail_spawn::pipes io;
  if (opt.capture_output) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return os_error("pipe");
    io.out_r.reset(p[0]);
    io.out_w.reset(p[1]);
    if (!opt.merge_output) {
      if (::pipe2(p, O_CLOEXEC) != 0) return os_error("pipe");
      io.err_r.reset(p[0]);
      io.err_w.reset(p[1]);
    }
  }
  child c;
  pid_t pid = -1;
  int rc = 0;
  if (opt.gated) {
    auto path = detail_spawn::find_in_path(opt.argv[0]);
    if (!path) return std::move(path).error();
    auto l = std::make_unique<detail_spawn::launch>();
    l->path = std::move(*path);
    l->args = opt.argv;
    l->env = detail_spawn::merged_environment(opt.env);
    l->argv = detail_spawn::c_strings(l->args);
    l->envp = detail_spawn::c_strings(l->env);
    l->out = io.out_w ? io.out_w.get() : -1;
    l->err = io.err_w ? io.err_w.get() : l->out;
    rc = detail_spawn::start_gated(pid, *l, c.gate_);
    c.launch_ = std::move(l);
  } else {
    std::vector<std::string> args = opt.argv;
    std::vector<std::string> env = detail_spawn::merged_environment(opt.env);
    auto argv = detail_spawn::c_strings(args);
    auto envp = detail_spawn::c_strings(env);
    rc = detail_spawn::start_now(pid, io, argv.data(), envp.data());
  }
  if (rc != 0) {
    errc code = rc == ENOENT   ? errc::invalid_argument
                : rc == EACCES ? errc::permission_denied
                               : errc::internal;
    return error{code, "cannot run \"" + opt.argv[0] + "\": " + std::strerror(rc)};
  }
  c.pid_ = pid;
  c.exit_fd_.reset(detail_spawn::pidfd_open(pid));
  if (opt.capture_output) {  // a fresh pipe's only status flag is ours to set
    ::fcntl(io.out_r.get(), F_SETFL, O_NONBLOCK);
    if (io.err_r) ::fcntl(io.err_r.get(), F_SETFL, O_NONBLOCK);
    c.out_ = std::move(io.out_r);
    c.err_ = std::move(io.err_r);
  }
  return c;
}

}  // namespace conch::process
