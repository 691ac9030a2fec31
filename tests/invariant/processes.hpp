// tests/invariant/processes.hpp — the process plumbing of the invariant
// harness: the shared clock, spawning with cleanup by pid, watching a process
// we are not the parent of (pidfd), and reaping what we are.
//
// The harness makes itself a child subreaper, so whatever its wrappers leave
// behind when they are killed (their children, their watchdogs) becomes its
// child: it can then reap it and, at the end, kill every straggler by pid.
#pragma once

#include "invariant/overlap.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace conch::invariant {

/// CLOCK_MONOTONIC in ns: the one clock of the interval log (same machine).
inline nanos now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
inline int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

/// Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, and
/// the start time in clock ticks (field 22), which tells a reused pid apart.
struct proc_stat {
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
  std::uint64_t start_ticks = 0;
};

inline bool read_proc_stat(pid_t pid, proc_stat& out) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(s.substr(close + 2));
  // state(3) ppid(4) pgrp(5) session(6) tty(7) tpgid(8) flags(9) minflt..cstime(10-17)
  // priority(18) nice(19) threads(20) itrealvalue(21) starttime(22)
  std::string skip;
  rest >> out.state >> out.ppid >> out.pgrp;
  for (int field = 6; field <= 21; ++field) rest >> skip;
  rest >> out.start_ticks;
  return static_cast<bool>(rest);
}

/// The processes whose parent is us (after reparenting to the subreaper too).
inline std::vector<pid_t> our_children() {
  std::vector<pid_t> out;
  const pid_t self = ::getpid();
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end) continue;
    proc_stat st;
    if (read_proc_stat(static_cast<pid_t>(pid), st) && st.ppid == self)
      out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

/// How to start a process: argv[0] is a path (no PATH lookup unless `search`).
struct spawn_request {
  std::vector<std::string> argv;
  std::vector<std::string> env;  ///< the whole environment
  std::string out_path = "/dev/null";
  std::string err_path = "/dev/null";
  bool search_path = false;
};

/// fork + exec from the harness's single thread. The process gets its own
/// process group (terminal signals reach only the harness, which cleans up by
/// pid) and dies with the harness (PR_SET_PDEATHSIG).
inline pid_t spawn(const spawn_request& r) {
  std::vector<std::string> argv = r.argv, env = r.env;
  std::vector<char*> a, e;
  for (auto& s : argv) a.push_back(s.data());
  a.push_back(nullptr);
  for (auto& s : env) e.push_back(s.data());
  e.push_back(nullptr);
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out = ::open(r.out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int err = ::open(r.err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (in < 0 || out < 0 || err < 0)
    throw std::runtime_error("spawn: cannot open " + r.out_path + " / " + r.err_path);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(s, SIG_DFL);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (r.search_path)
      ::execvpe(a[0], a.data(), e.data());
    else
      ::execve(a[0], a.data(), e.data());
    ::_exit(127);
  }
  ::close(in);
  ::close(out);
  ::close(err);
  if (pid < 0) throw std::runtime_error(std::string("spawn: fork: ") + std::strerror(errno));
  return pid;
}

/// Our environment without CONCH_* (each wrapper gets its flags explicitly).
inline std::vector<std::string> clean_environment(std::vector<std::string> extra = {}) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (!std::string_view(*e).starts_with("CONCH_")) env.emplace_back(*e);
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

/// One reaped child: its pid and how it ended.
struct reaped {
  pid_t pid = 0;
  int signal = 0;     ///< the signal that ended it (0: it exited)
  int exit_code = 0;  ///< its exit code (128 + signal when signalled)
};

/// Reaps one child of ours that has ended, if any (never blocks).
inline bool reap_one(reaped& out) {
  siginfo_t info{};
  if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) return false;
  out.pid = info.si_pid;
  if (info.si_code == CLD_EXITED) {
    out.signal = 0;
    out.exit_code = info.si_status;
  } else {
    out.signal = info.si_status;
    out.exit_code = 128 + info.si_status;
  }
  return true;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// The last `n` lines of `text`.
inline std::string tail_lines(const std::string& text, int n) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string out;
  for (std::size_t i = lines.size() > static_cast<std::size_t>(n) ? lines.size() - n : 0;
       i < lines.size(); ++i)
    out += lines[i] + "\n";
  return out;
}

}  // namespace conch::invariant
