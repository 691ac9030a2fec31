// The supervision core with real processes (no etcd needed): spawn by argv into
// its own process group with our environment additions, killing the whole group
// (grandchildren too), SIGTERM → SIGKILL escalation, the stop-signal inbox, the
// watchdog killing a group while its wrapper is frozen or dead, and the holding
// tools' supervision loop.
#include "conch/logic/supervision.hpp"
#include "conch/policies/backoff.hpp"
#include "conch/process/group.hpp"
#include "conch/process/output.hpp"
#include "conch/process/signals.hpp"
#include "conch/process/spawn.hpp"
#include "conch/process/supervise.hpp"
#include "conch/process/watchdog.hpp"

#include "support/conch_process.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <poll.h>
#include <sstream>
#include <stop_token>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
namespace proc = conch::process;
using conch::detail::child_status;
using clk = std::chrono::steady_clock;
using conch::test::slurp;

namespace {

// This binary hosts the watchdog as the tools do: watchdog::spawn("/proc/self/exe")
// re-executes it with "__watchdog" first, which must be served before Catch2's main
// looks at the arguments.
const bool hosted_watchdog = [] {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string a; std::getline(f, a, '\0');) args.push_back(a);
  if (args.size() < 2 || args[1] != proc::watchdog_argument) return false;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::_exit(proc::watchdog_main(static_cast<int>(args.size()), argv.data()));
}();

/// A temp dir removed at scope end.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string t = (std::filesystem::temp_directory_path() / "conch-process-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

/// Waits (bounded) for `cond`; true if it held in time.
bool await(const std::function<bool()>& cond, std::chrono::milliseconds limit = 10s) {
  return conch::test::await(cond, limit);
}

/// Reads a pid the child wrote to `path` (waits for it to appear).
pid_t pid_from(const std::string& path) {
  pid_t pid = 0;
  REQUIRE(await([&] {
    std::string s = slurp(path);
    if (s.empty() || s.back() != '\n') return false;
    pid = static_cast<pid_t>(std::stol(s));
    return true;
  }));
  return pid;
}

/// Runs a captured child to the end: its stdout and how it ended.
std::pair<std::string, child_status> run_captured(proc::spawn_options opt) {
  opt.capture_output = true;
  auto c = proc::spawn(opt);
  REQUIRE(c);
  REQUIRE(c->release());  // a gated child's gate (a no-op otherwise)
  proc::output_tail out{1 << 20}, err{1 << 20};
  auto until = clk::now() + 10s;
  while ((c->stdout_fd() >= 0 || c->stderr_fd() >= 0) && clk::now() < until) {
    pollfd p[2] = {{c->stdout_fd(), POLLIN, 0}, {c->stderr_fd(), POLLIN, 0}};
    ::poll(p, 2, 100);
    if (p[0].revents && !proc::pump(c->stdout_fd(), -1, out)) c->close_stdout();
    if (p[1].revents && !proc::pump(c->stderr_fd(), -1, err)) c->close_stderr();
  }
  auto st = c->reap();
  return {out.str(), st};
}

/// Kills and reaps a process this test started (cleanup, also on failure).
struct reap_on_exit {
  pid_t pid;
  ~reap_on_exit() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};
/// Kills a process group/pid we do not parent (cleanup only).
struct kill_on_exit {
  pid_t pid;
  bool group = false;
  ~kill_on_exit() {
    if (pid > 0) ::kill(group ? -pid : pid, SIGKILL);
  }
};

/// A watchdog for one test (it must start), killed when the test ends.
struct test_watchdog {
  conch::result<proc::watchdog> wd;
  kill_on_exit cleanup;
  explicit test_watchdog(proc::watchdog::options opt)
      : wd(proc::watchdog::spawn("/proc/self/exe", opt)), cleanup{wd ? wd->pid() : 0} {
    REQUIRE(wd);
  }
  proc::watchdog* operator->() { return &*wd; }
  proc::watchdog& operator*() { return *wd; }
};

/// A claim's local deadline, moved by the test the way renewals move a
/// session's: attach() makes it the claim's; move_to() moves it and tells the
/// supervisor, if it registered for moves.
class movable_deadline {
 public:
  explicit movable_deadline(clk::time_point d) : deadline_(d) {}
  void attach(conch::process::held_claim& claim) {
    claim.local_deadline = [this] {
      std::lock_guard lock{m_};
      return deadline_;
    };
    claim.on_deadline_moved = [this](std::function<void()> f) {
      std::lock_guard lock{m_};
      told_ = std::move(f);
    };
  }
  void move_to(clk::time_point d) {
    std::lock_guard lock{m_};
    deadline_ = d;
    if (told_) told_();
  }
  /// Whether the supervisor is registered for moves.
  bool registered() {
    std::lock_guard lock{m_};
    return static_cast<bool>(told_);
  }

 private:
  std::mutex m_;
  clk::time_point deadline_;
  std::function<void()> told_;
};

}  // namespace

TEST_CASE("spawn runs argv without a shell", "[process]") {
  auto [out, st] = run_captured({.argv = {"printf", "%s|", "a b", "$HOME", "*", "`id`"}});
  CHECK(out == "a b|$HOME|*|`id`|");
  CHECK(st == child_status::exited(0));
}

TEST_CASE("spawn adds and overrides environment variables", "[process]") {
  ::setenv("CONCH_NAME", "stale", 1);
  ::setenv("CONCH_TEST_KEPT", "kept", 1);
  auto [out, st] = run_captured(
      {.argv = {"sh", "-c", "echo \"$CONCH_REV|$CONCH_KEY|$CONCH_NAME|$CONCH_TEST_KEPT\""},
       .env = {{"CONCH_REV", "42"}, {"CONCH_KEY", "conch/elect/x/1f"}, {"CONCH_NAME", "x"}}});
  CHECK(out == "42|conch/elect/x/1f|x|kept\n");
  CHECK(st == child_status::exited(0));
  ::unsetenv("CONCH_NAME");
  ::unsetenv("CONCH_TEST_KEPT");
}

TEST_CASE("spawn resets the signal mask and dispositions the wrapper changed", "[process]") {
  proc::block_stop_signals();  // blocks INT/TERM/HUP/QUIT, ignores PIPE — as the tools do
  auto [out, st] = run_captured({.argv = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}});
  REQUIRE(st == child_status::exited(0));
  unsigned long long blocked = 0, ignored = 0;
  REQUIRE(std::sscanf(out.c_str(), "SigBlk: %llx SigIgn: %llx", &blocked, &ignored) == 2);
  CHECK(blocked == 0);
  // Signals 1..31; glibc's posix_spawn leaves its own two internal real-time
  // signals (32, 33) ignored, and the child's libc reclaims them.
  CHECK((ignored & 0x7fffffffULL) == 0);
}

TEST_CASE("a gated child resets the dispositions the wrapper changed, real-time ones too",
          "[process][gate]") {
  proc::block_stop_signals();  // blocks INT/TERM/HUP/QUIT, ignores PIPE — as the tools do
  std::signal(SIGUSR2, SIG_IGN);
  std::signal(SIGRTMIN + 3, SIG_IGN);
  auto [out, st] =
      run_captured({.argv = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}, .gated = true});
  std::signal(SIGUSR2, SIG_DFL);
  std::signal(SIGRTMIN + 3, SIG_DFL);
  REQUIRE(st == child_status::exited(0));
  unsigned long long blocked = 0, ignored = 0;
  REQUIRE(std::sscanf(out.c_str(), "SigBlk: %llx SigIgn: %llx", &blocked, &ignored) == 2);
  CHECK(blocked == 0);
  CHECK(ignored == 0);
}

TEST_CASE("spawn puts the child in its own process group", "[process]") {
  auto c = proc::spawn({.argv = {"sleep", "30"}});
  REQUIRE(c);
  CHECK(c->group() == c->pid());
  CHECK(::getpgid(c->pid()) == c->pid());
  CHECK(::getpgid(c->pid()) != ::getpgrp());
  CHECK(proc::live_members(c->group()) == 1);
  CHECK(proc::terminate(*c, 5s) == child_status::signalled(SIGTERM));
}

TEST_CASE("spawn failures name the command; exit codes map like a shell", "[process]") {
  auto missing = proc::spawn({.argv = {"/nonexistent/conch-no-such-command"}});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == conch::errc::invalid_argument);
  CHECK(missing.error().message.find("/nonexistent/conch-no-such-command") != std::string::npos);
  CHECK_FALSE(proc::spawn({.argv = {}}));

  auto [o1, exited] = run_captured({.argv = {"sh", "-c", "exit 7"}});
  CHECK(exit_code_of(exited) == 7);
  auto [o2, killed] = run_captured({.argv = {"sh", "-c", "kill -TERM $$"}});
  CHECK(killed == child_status::signalled(SIGTERM));
  CHECK(exit_code_of(killed) == 143);
}

TEST_CASE("captured output passes through and keeps only the tail", "[process]") {
  auto c = proc::spawn(
      {.argv = {"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"},
       .capture_output = true});
  REQUIRE(c);
  proc::output_tail tail{64};
  int sink = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  while (c->stdout_fd() >= 0) {
    pollfd p{c->stdout_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10'000) > 0);
    if (!proc::pump(c->stdout_fd(), sink, tail)) c->close_stdout();
  }
  ::close(sink);
  CHECK(c->reap() == child_status::exited(0));
  std::string t = tail.str();
  CHECK(t.size() == 64);
  CHECK(t.ends_with("line1998\nline1999\n"));
}

TEST_CASE("the exit fd polls readable when the child exits, and exited() does not reap",
          "[process]") {
  auto c = proc::spawn({.argv = {"sh", "-c", "exit 3"}});
  REQUIRE(c);
  REQUIRE(c->exit_fd() >= 0);  // Linux >= 5.3
  pollfd p{c->exit_fd(), POLLIN, 0};
  REQUIRE(::poll(&p, 1, 10'000) == 1);
  CHECK(c->exited());
  CHECK(c->exited());  // still there: not reaped
  CHECK(c->reap() == child_status::exited(3));
}

TEST_CASE("a stop signal to the group reaches a grandchild", "[process]") {
  temp_dir dir;
  auto c = proc::spawn(
      {.argv = {"sh", "-c", "sleep 300 & echo $! > \"$1\"; wait", "sh", dir.file("grandchild")}});
  REQUIRE(c);
  pid_t grandchild = pid_from(dir.file("grandchild"));
  kill_on_exit cleanup{grandchild};
  CHECK(proc::process_alive(grandchild));
  CHECK(proc::live_members(c->group()) == 2);

  auto st = proc::terminate(*c, 5s);
  CHECK(st == child_status::signalled(SIGTERM));
  CHECK(await([&] { return !proc::process_alive(grandchild); }));
  CHECK(proc::live_members(c->group()) == 0);
}

TEST_CASE("a child ignoring SIGTERM gets SIGKILL after kill-after, grandchild too", "[process]") {
  temp_dir dir;
  auto c = proc::spawn({.argv = {"sh", "-c",
                                 "trap '' TERM; sleep 300 & echo $! > \"$1\"; "
                                 "while :; do sleep 0.05; done",
                                 "sh", dir.file("grandchild")}});
  REQUIRE(c);
  pid_t grandchild = pid_from(dir.file("grandchild"));
  kill_on_exit cleanup{grandchild};

  const auto kill_after = 700ms;
  auto t0 = clk::now();
  auto st = proc::terminate(*c, kill_after);
  auto took = clk::now() - t0;
  CHECK(st == child_status::signalled(SIGKILL));
  CHECK(took >= kill_after);  // SIGTERM alone did not end it: only the SIGKILL did
  CHECK(await([&] { return !proc::process_alive(grandchild); }));
}

TEST_CASE("stop signals are blocked and read from the inbox", "[process]") {
  proc::block_stop_signals();
  proc::signal_inbox inbox;
  REQUIRE(inbox.valid());
  CHECK_FALSE(inbox.take());
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    ::kill(::getpid(), sig);  // blocked: pending, not fatal
    pollfd p{inbox.fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    CHECK(inbox.take() == sig);
  }
  CHECK(proc::is_stop_signal(SIGQUIT));
  CHECK_FALSE(proc::is_stop_signal(SIGUSR1));
}

namespace {
/// What a forked wrapper reports to the test over a pipe.
struct wrapper_report {
  pid_t child = 0;
  pid_t watchdog = 0;
  int stage = 0;  // 1: watching, 2: stopped renewing
};

bool read_report(int fd, wrapper_report& r) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 15'000) != 1) return false;
  return ::read(fd, &r, sizeof r) == static_cast<ssize_t>(sizeof r);
}
}  // namespace

TEST_CASE("watchdog: renewals keep the group; a frozen wrapper's group is killed at the deadline",
          "[process][watchdog]") {
  temp_dir dir;
  const std::string gc_file = dir.file("grandchild");
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);

  pid_t wrapper = ::fork();
  REQUIRE(wrapper >= 0);
  if (wrapper == 0) {  // a stand-in wrapper: single-threaded, never returns into Catch2
    ::close(report[0]);
    [[maybe_unused]] int inherited =
        ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: a careless caller's fd
    auto wd = proc::watchdog::spawn("/proc/self/exe", {.kill_after = 500ms});
    if (!wd) ::_exit(1);
    auto c = proc::spawn(
        {.argv = {"sh", "-c", "sleep 300 & echo $! > \"$1\"; wait", "sh", gc_file}, .gated = true});
    if (!c) ::_exit(2);
    wrapper_report r{c->pid(), wd->pid(), 1};
    if (!wd->watch_and_release(*c, clk::now() + 400ms)) ::_exit(3);
    (void)!::write(report[1], &r, sizeof r);
    for (auto until = clk::now() + 1500ms; clk::now() < until;) {
      (void)wd->renew(clk::now() + 400ms);
      std::this_thread::sleep_for(50ms);
    }
    r.stage = 2;
    (void)!::write(report[1], &r, sizeof r);
    ::raise(SIGSTOP);  // frozen with a deadline 400 ms away
    ::_exit(0);
  }
  ::close(report[1]);
  reap_on_exit wrapper_cleanup{wrapper};

  wrapper_report r;
  REQUIRE(read_report(report[0], r));
  REQUIRE(r.stage == 1);
  kill_on_exit child_cleanup{r.child, true}, watchdog_cleanup{r.watchdog};
  // The watchdog keeps only stdin/stdout (/dev/null), stderr, its socket and
  // the pidfds of the group leaders it watches: the launch gate it opened is closed.
  auto watchdog_fds = [&] {
    std::vector<int> fds;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(r.watchdog) + "/fd", ec))
      if (std::filesystem::read_symlink(e.path(), ec).string() != "anon_inode:[pidfd]")
        fds.push_back(std::stoi(e.path().filename().string()));
    std::sort(fds.begin(), fds.end());
    return fds;
  };
  CHECK(await([&] { return watchdog_fds() == std::vector<int>{0, 1, 2, 3}; }, 5s));
  pid_t grandchild = pid_from(gc_file);
  kill_on_exit gc_cleanup{grandchild};

  REQUIRE(read_report(report[0], r));
  REQUIRE(r.stage == 2);
  // 1.5 s past the first deadline, renewed all along: still running.
  CHECK(proc::process_alive(r.child));
  CHECK(proc::process_alive(grandchild));

  int status = 0;
  REQUIRE(await([&] { return ::waitpid(wrapper, &status, WNOHANG | WUNTRACED) == wrapper; }));
  REQUIRE(WIFSTOPPED(status));
  // The wrapper stays frozen; the watchdog alone kills the group.
  CHECK(await([&] { return !proc::process_alive(r.child) && !proc::process_alive(grandchild); }));
  CHECK(proc::process_alive(r.watchdog));  // it keeps serving the (frozen) wrapper
  ::close(report[0]);
}

TEST_CASE("watchdog: a wrapper killed by -9 leaves its group running until the last deadline",
          "[process][watchdog]") {
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  pid_t wrapper = ::fork();
  REQUIRE(wrapper >= 0);
  if (wrapper == 0) {
    ::close(report[0]);
    auto wd = proc::watchdog::fork({.kill_after = 300ms});  // single-threaded: fork is fine
    if (!wd) ::_exit(1);
    auto c = proc::spawn({.argv = {"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"}});
    if (!c) ::_exit(2);
    (void)wd->watch(c->group(), clk::now() + 3s);
    wrapper_report r{c->pid(), wd->pid(), 1};
    (void)!::write(report[1], &r, sizeof r);
    for (;;) ::pause();
  }
  ::close(report[1]);
  reap_on_exit wrapper_cleanup{wrapper};
  wrapper_report r;
  REQUIRE(read_report(report[0], r));
  ::close(report[0]);
  kill_on_exit child_cleanup{r.child, true}, watchdog_cleanup{r.watchdog};

  auto killed_at = clk::now();
  ::kill(wrapper, SIGKILL);
  ::waitpid(wrapper, nullptr, 0);
  wrapper_cleanup.pid = 0;
  // The lease of a dead wrapper lives on until its TTL: so does the child, until the deadline.
  CHECK(proc::process_alive(r.child));
  // Then SIGTERM (ignored) and SIGKILL 300 ms later; the watchdog exits after.
  CHECK(await([&] { return !proc::process_alive(r.child); }));
  CHECK(clk::now() - killed_at >= 300ms);
  CHECK(await([&] { return !proc::process_alive(r.watchdog); }));
}

namespace {
/// A child of ours leading its own group, other than `besides`, if one exists.
pid_t own_group_leader(pid_t besides) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    char* end = nullptr;
    long pid = std::strtol(e.path().filename().c_str(), &end, 10);
    pid_t ppid = 0, pgrp = 0;
    char state = 0;
    if (pid <= 0 || *end != '\0' || pid == besides) continue;
    if (conch::process::detail_spawn::parent_and_state(static_cast<pid_t>(pid), ppid, state) &&
        ppid == ::getpid() && proc::proc_state(static_cast<pid_t>(pid), state, pgrp) && pgrp == pid)
      return static_cast<pid_t>(pid);
  }
  return 0;
}

/// Makes the next process created get `pid` (root only: ns_last_pid). The machine
/// may create a process between the write and our spawn: then try again.
std::optional<proc::child> spawn_with_pid(pid_t pid, const proc::spawn_options& opt) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    {
      std::ofstream last("/proc/sys/kernel/ns_last_pid");
      if (!(last << pid - 1 << std::flush)) return std::nullopt;
    }
    auto c = proc::spawn(opt);
    if (c && c->pid() == pid) return std::move(*c);
  }
  return std::nullopt;
}
}  // namespace

TEST_CASE("watchdog: the child runs only once the watchdog watches it",
          "[process][watchdog][gate]") {
  temp_dir dir;
  test_watchdog wd{{.kill_after = 500ms}};
  ::kill(wd->pid(), SIGSTOP);  // it can open no gate now
  conch::process::held_claim claim;
  claim.local_deadline = [] { return clk::now() + 10s; };
  const std::string ran = dir.file("ran");
  std::jthread wrapper([&] {
    proc::signal_inbox inbox;
    (void)proc::supervise(
        claim, {.argv = {"sh", "-c", "echo ran > \"$1\"", "sh", ran}, .program = "gate-test"},
        inbox, &*wd, conch::constant_backoff{50ms});
  });
  pid_t gated = 0;
  REQUIRE(await([&] { return (gated = own_group_leader(wd->pid())) != 0; }));
  // Created, but held before exec while the watchdog cannot open its gate.
  CHECK(std::filesystem::read_symlink("/proc/" + std::to_string(gated) + "/exe") ==
        std::filesystem::read_symlink("/proc/self/exe"));
  CHECK_FALSE(std::filesystem::exists(ran));
  ::kill(wd->pid(), SIGCONT);
  wrapper.join();
  CHECK(slurp(ran) == "ran\n");
}

TEST_CASE("watchdog: a child whose watchdog dies before it opens the launch gate never runs",
          "[process][watchdog][gate]") {
  temp_dir dir;
  test_watchdog wd{{.kill_after = 500ms}};
  const std::string ran = dir.file("ran");
  auto c = proc::spawn({.argv = {"sh", "-c", "echo ran > \"$1\"", "sh", ran}, .gated = true});
  REQUIRE(c);
  REQUIRE(::kill(wd->pid(), SIGSTOP) == 0);
  REQUIRE(wd->watch_and_release(*c, clk::now() + 10s));  // sent; the frozen watchdog holds the gate
  CHECK_FALSE(c->gated());                               // we keep no copy of it
  CHECK_FALSE(c->exited());
  REQUIRE(::kill(wd->pid(), SIGKILL) == 0);
  // Its queued message, the gate with it, died with it: the child leaves at its gate.
  REQUIRE(await([&] { return c->exited(); }));
  CHECK(c->reap() == child_status::exited(127));
  CHECK(c->closed_at_gate());
  CHECK_FALSE(std::filesystem::exists(ran));

  // Later children find it gone at once, and never run either.
  REQUIRE(::waitpid(wd->pid(), nullptr, 0) == wd->pid());
  wd.cleanup.pid = 0;
  auto later = proc::spawn({.argv = {"sh", "-c", "echo ran > \"$1\"", "sh", ran}, .gated = true});
  REQUIRE(later);
  auto w = wd->watch_and_release(*later, clk::now() + 10s);
  REQUIRE_FALSE(w);
  CHECK(w.error().code == conch::errc::unavailable);
  REQUIRE(await([&] { return later->exited(); }));
  CHECK(later->reap() == child_status::exited(127));
  CHECK(later->closed_at_gate());
  CHECK_FALSE(std::filesystem::exists(ran));

  // A command's own 127 is not taken for a closed gate.
  auto own = proc::spawn({.argv = {"sh", "-c", "exit 127"}, .gated = true});
  REQUIRE(own);
  REQUIRE(own->release());
  CHECK(own->reap() == child_status::exited(127));
  CHECK_FALSE(own->closed_at_gate());
}

TEST_CASE("watchdog: with a frozen watchdog's queue full, a start fails after watch_wait, unrun",
          "[process][watchdog][gate]") {
  temp_dir dir;
  test_watchdog wd{{.kill_after = 500ms, .watch_wait = 200ms}};
  auto sleeper = proc::spawn({.argv = {"sleep", "60"}});
  REQUIRE(sleeper);
  REQUIRE(::kill(wd->pid(), SIGSTOP) == 0);
  // Watches of a running group fill its queue (a few hundred), then one waits and fails.
  std::optional<conch::errc> refused;
  for (int i = 0; i < 100'000 && !refused; ++i)
    if (auto w = wd->watch(sleeper->group(), clk::now() + 60s); !w) refused = w.error().code;
  REQUIRE(refused);
  CHECK(*refused == conch::errc::timed_out);
  const std::string ran = dir.file("ran");
  auto c = proc::spawn({.argv = {"sh", "-c", "echo ran > \"$1\"", "sh", ran}, .gated = true});
  REQUIRE(c);
  auto w = wd->watch_and_release(*c, clk::now() + 60s);
  REQUIRE_FALSE(w);
  CHECK(w.error().code == conch::errc::timed_out);
  REQUIRE(await([&] { return c->exited(); }));  // its gate closed unopened
  CHECK(c->reap() == child_status::exited(127));
  CHECK(c->closed_at_gate());
  CHECK_FALSE(std::filesystem::exists(ran));
}

TEST_CASE("supervise: a watchdog killed before it releases the child: nothing runs, exit 69",
          "[supervise][watchdog][gate]") {
  temp_dir dir;
  test_watchdog wd{{.kill_after = 500ms}};
  REQUIRE(::kill(wd->pid(), SIGSTOP) == 0);
  conch::process::held_claim claim;
  claim.local_deadline = [] { return clk::now() + 10s; };
  const std::string ran = dir.file("ran");
  std::stop_source stop;
  std::atomic<bool> done{false}, handed{false};
  conch::process::supervise_outcome out;
  std::jthread wrapper([&] {
    proc::signal_inbox inbox;
    out = proc::supervise(claim,
                          {.argv = {"sh", "-c", "echo ran > \"$1\"", "sh", ran},
                           .restart = {.enabled = true},
                           .program = "gate-test",
                           .on_start = [&](long) { handed = true; }},
                          inbox, &*wd, conch::constant_backoff{50ms}, stop.get_token());
    done = true;
  });
  // Told once the watch (the gate with it) went to the frozen watchdog.
  REQUIRE(await([&] { return handed.load(); }));
  REQUIRE(::kill(wd->pid(), SIGKILL) == 0);
  const bool ended = await([&] { return done.load(); });
  if (!ended) stop.request_stop();  // a gate that never closes: end the test, failing it
  wrapper.join();
  CHECK(ended);
  CHECK(out.how == conch::process::supervise_outcome::ending::not_started);
  CHECK(out.exit_code == 69);
  CHECK(out.not_started_reason.find("watchdog: gone before it released the child") !=
        std::string::npos);
  CHECK(out.starts == 0);  // no restart either
  CHECK_FALSE(std::filesystem::exists(ran));
}

TEST_CASE("watchdog: a group id reused after its leader was reaped is never signalled",
          "[process][watchdog][identity]") {
  if (::access("/proc/sys/kernel/ns_last_pid", W_OK) != 0) {
    WARN("needs root (ns_last_pid) to recycle a process id: skipped");
    return;
  }
  auto wd = proc::watchdog::spawn("/proc/self/exe", {.kill_after = 100ms});
  REQUIRE(wd);
  const pid_t watchdog_pid = wd->pid();
  // A watched child that exits and is reaped without forget(): its group id is free.
  auto c = proc::spawn({.argv = {"true"}, .gated = true});
  REQUIRE(c);
  const pid_t old_group = c->group();
  REQUIRE(wd->watch_and_release(*c, clk::now() + 1500ms));
  (void)c->reap();
  // Another process now bears that id and leads a group of that id.
  auto impostor = spawn_with_pid(old_group, {.argv = {"sleep", "60"}});
  if (!impostor) {
    WARN("could not recycle process id " << old_group << ": skipped");
    return;
  }
  // Closing our end: the watchdog acts on its last deadline, then exits.
  { auto gone = std::move(*wd); }
  int status = 0;
  REQUIRE(await([&] { return ::waitpid(watchdog_pid, &status, WNOHANG) == watchdog_pid; }, 15s));
  CHECK(proc::process_alive(impostor->pid()));  // the recycled group was left alone
}

// The holding tools' supervision loop (tool/supervise.hpp), driven without etcd:
// the claim's loss is a plain stop_source here.

namespace {
using conch::process::supervise_outcome;

supervise_outcome supervise_now(const conch::process::held_claim& claim,
                                conch::process::supervise_options opt, std::stop_token stop = {}) {
  proc::block_stop_signals();
  proc::signal_inbox inbox;
  opt.program = "supervise-test";
  return conch::process::supervise(claim, opt, inbox, nullptr, conch::constant_backoff{50ms}, stop);
}
}  // namespace

TEST_CASE("supervise: the child's own exit code; what it left in its group is stopped",
          "[supervise]") {
  temp_dir dir;
  auto out =
      supervise_now({.env = {{"CONCH_REV", "17"}}},
                    {.argv = {"sh", "-c", "sleep 300 & echo $! > \"$1\"; exit \"$CONCH_REV\"", "sh",
                              dir.file("gc")}});
  CHECK(out.how == supervise_outcome::ending::exited);
  CHECK(out.exit_code == 17);
  CHECK(out.starts == 1);
  pid_t grandchild = pid_from(dir.file("gc"));
  kill_on_exit cleanup{grandchild};
  CHECK(await([&] { return !proc::process_alive(grandchild); }));
}

TEST_CASE("supervise: a command that cannot start exits 127 / 126", "[supervise]") {
  auto missing = supervise_now({}, {.argv = {"/nonexistent/conch-no-such-command"}});
  CHECK(missing.how == supervise_outcome::ending::not_started);
  CHECK(missing.exit_code == 127);
  temp_dir dir;
  std::ofstream(dir.file("not-executable")) << "#!/bin/sh\n";
  auto denied = supervise_now({}, {.argv = {dir.file("not-executable")}});
  CHECK(denied.exit_code == 126);
}

TEST_CASE("supervise: loss -> SIGTERM to the group, SIGKILL after kill-after, exit 70",
          "[supervise]") {
  temp_dir dir;
  std::stop_source lost;
  std::jthread loser([&] {
    if (await([&] { return std::filesystem::exists(dir.file("gc")); })) lost.request_stop();
  });
  auto t0 = clk::now();
  auto out = supervise_now(
      {.lost = lost.get_token()},
      {.argv = {"sh", "-c",
                "trap '' TERM; sleep 300 & echo $! > \"$1.tmp\"; mv \"$1.tmp\" \"$1\"; "
                "while :; do sleep 0.02; done",
                "sh", dir.file("gc")},
       .kill_after = 400ms});
  CHECK(out.how == supervise_outcome::ending::lost);
  CHECK(out.exit_code == 70);
  CHECK(clk::now() - t0 >= 400ms);  // TERM was ignored: only SIGKILL ended it
  pid_t grandchild = pid_from(dir.file("gc"));
  kill_on_exit cleanup{grandchild};
  CHECK(await([&] { return !proc::process_alive(grandchild); }));
}

TEST_CASE("supervise: each move of the local deadline renews the watchdog at once",
          "[supervise][watchdog]") {
  temp_dir dir;
  test_watchdog wd{{.kill_after = 100ms}};
  const auto first_deadline = clk::now() + 1500ms;
  movable_deadline deadline{first_deadline};
  conch::process::held_claim claim;
  deadline.attach(claim);
  std::stop_source stop;
  const std::string started = dir.file("started");
  supervise_outcome out;
  std::jthread wrapper([&] {
    proc::signal_inbox inbox;
    // The loop never looks at the deadline on its own here: only the move can wake it.
    out = proc::supervise(
        claim,
        {.argv = {"sh", "-c", "echo $$ > \"$1.tmp\"; mv \"$1.tmp\" \"$1\"; exec sleep 60", "sh",
                  started},
         .program = "renew-test",
         .recheck = 1h},
        inbox, &*wd, conch::constant_backoff{50ms}, stop.get_token());
  });
  REQUIRE(await([&] { return std::filesystem::exists(started); }));
  const pid_t child = pid_from(started);
  kill_on_exit child_cleanup{child};
  REQUIRE(deadline.registered());
  deadline.move_to(clk::now() + 60s);  // a keepalive was acknowledged
  // Past the first deadline and its kill-after, the watchdog has left the child alone.
  std::this_thread::sleep_until(first_deadline + 100ms + 1s);
  CHECK(proc::process_alive(child));
  stop.request_stop();
  wrapper.join();
  CHECK(out.how == supervise_outcome::ending::stopped);
  CHECK(out.starts == 1);
  CHECK_FALSE(deadline.registered());  // unregistered when the run ended
}

TEST_CASE(
    "supervise: riding through, the group stops at the deadline and the child starts again "
    "once a renewal moves it ahead",
    "[supervise]") {
  temp_dir dir;
  movable_deadline deadline{clk::now() + 60s};
  std::stop_source lost;
  conch::process::held_claim claim{.lost = lost.get_token()};
  deadline.attach(claim);
  const std::string starts = dir.file("starts");
  supervise_outcome out;
  std::jthread wrapper([&] {
    out = supervise_now(claim,
                        {.argv = {"sh", "-c", "echo $$ >> \"$1\"; sleep 300 & wait", "sh", starts},
                         .kill_after = 300ms,
                         .restart = {.enabled = true},
                         .resume_after_deadline = true});
  });
  auto started = [&] {
    std::ifstream in(starts);
    return static_cast<int>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
  };
  REQUIRE(await([&] { return started() == 1; }));
  const pid_t first = pid_from(starts);
  deadline.move_to(clk::now());  // passed, with no answer yet
  // The whole group stops, and nothing starts while the deadline is behind us.
  REQUIRE(await([&] { return proc::live_members(first) == 0; }));
  CHECK(started() == 1);
  deadline.move_to(clk::now() + 60s);  // a renewal was acknowledged
  REQUIRE(await([&] { return started() == 2; }));
  lost.request_stop();  // and now the claim is lost for good
  wrapper.join();
  CHECK(out.how == supervise_outcome::ending::lost);
  CHECK(out.exit_code == 70);
  CHECK(out.starts == 2);
}

TEST_CASE("supervise: no child ever starts once the claim is lost or a stop was asked",
          "[supervise]") {
  temp_dir dir;
  std::stop_source lost, stop;
  lost.request_stop();
  auto a = supervise_now({.lost = lost.get_token()}, {.argv = {"touch", dir.file("ran")}});
  CHECK(a.how == supervise_outcome::ending::lost);
  CHECK(a.exit_code == 70);
  CHECK(a.starts == 0);
  stop.request_stop();
  auto b = supervise_now({}, {.argv = {"touch", dir.file("ran")}}, stop.get_token());
  CHECK(b.how == supervise_outcome::ending::stopped);
  CHECK(b.exit_code == 128 + SIGTERM);
  CHECK(b.starts == 0);
  CHECK_FALSE(std::filesystem::exists(dir.file("ran")));
}

TEST_CASE("supervise: --restart starts the child again with backoff until stopped", "[supervise]") {
  temp_dir dir;
  std::stop_source stop;
  std::jthread stopper([&] {
    if (await([&] {
          std::ifstream f(dir.file("starts"));
          return std::count(std::istreambuf_iterator<char>(f), {}, '\n') >= 3;
        }))
      stop.request_stop();
  });
  auto out = supervise_now(
      {.env = {{"CONCH_REV", "5"}}},
      {.argv = {"sh", "-c", "echo \"$CONCH_REV\" >> \"$1\"; exit 1", "sh", dir.file("starts")},
       .restart = {.enabled = true}},
      stop.get_token());
  CHECK(out.how == supervise_outcome::ending::stopped);
  CHECK(out.starts >= 3);
  CHECK(slurp(dir.file("starts")).starts_with("5\n5\n5\n"));
}
