// conch/process/group.hpp — who is still alive in a process group, and stopping it.
//
// A child's exit does not end its work: a grandchild it started (`cmd &`) stays
// in the group and would keep running after the wrapper released the office.
// So the supervision core looks at the whole group, and only counts processes
// that still run: zombies (exited, not yet reaped by whoever their parent is)
// cannot do anything, yet kill(-pgid, 0) still finds them.
//
//   auto st = conch::process::terminate(child, 5s);  // SIGTERM, SIGKILL after 5 s, reaped
#pragma once

#include "conch/logic/supervision.hpp"
#include "conch/process/spawn.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <string>
#include <unistd.h>

namespace conch::process {

/// Reads state and process group of `pid` from /proc; false if it is gone.
inline bool proc_state(pid_t pid, char& state, pid_t& pgrp) {
  char buf[512];
  const char* fields = proc_stat_fields(pid, buf);
  int ppid = 0, pg = 0;
  if (!fields || std::sscanf(fields, " %c %d %d", &state, &ppid, &pg) != 3) return false;
  pgrp = pg;
  return true;
}

/// Whether process `pid` is still running (exists and is not a zombie).
inline bool process_alive(pid_t pid) {
  char state = 0;
  pid_t pgrp = 0;
  return proc_state(pid, state, pgrp) && state != 'Z' && state != 'X';
}

/// Whether this process has adopted any orphan (a child it did not start):
/// true when it cannot tell (not a subreaper, no /proc children list).
/// Orphans are adopted by a subreaper's main thread (the first live thread
/// of the group, which outlives the others here), so its children list is the
/// one to read; the children this process started itself are left out.
inline bool adopted_orphans() {
  auto& o = detail_spawn::own();
  if (!o.subreaper) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/children", static_cast<int>(::getpid()));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (n < 0) return true;
  std::lock_guard lock{o.mutex};
  for (const char* p = text.c_str(); *p;) {
    char* end = nullptr;
    const long pid = std::strtol(p, &end, 10);
    if (end == p) break;
    if (!o.contains(static_cast<pid_t>(pid))) return true;
    p = end;
  }
  return false;
}

/// How many processes of group `pgid` still run (zombies not counted). In a
/// subreaper the zombies of adopted orphans are reaped first, so a group whose
/// members have all exited is usually gone outright (the cheap answer).
inline int live_members(pid_t pgid) {
  reap_orphans();
  if (pgid <= 0 || !group_alive(pgid)) return 0;  // cheap answer for the common case
  int count = 0;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (pid <= 0 || *end != '\0') continue;
      char state = 0;
      pid_t pgrp = 0;
      if (proc_state(static_cast<pid_t>(pid), state, pgrp) && pgrp == pgid && state != 'Z' &&
          state != 'X')
        ++count;
    }
    ::closedir(d);
  }
  return count;
}

/// Whether group `pgid`, whose leader is our exited (unreaped) child, may
/// still have live members. Its live descendants were re-parented to this
/// subreaper when it exited (or descend from one that was), so when no
/// orphan is adopted, the answer is no without reading every /proc entry.
/// (A process outside the leader's descent that joined the group with
/// setpgid is not seen then.)
inline bool leader_left_members(pid_t pgid) { return adopted_orphans() && live_members(pgid) > 0; }

/// Stops `c`'s whole group and reaps `c`: `first` (SIGTERM) now, SIGKILL to the
/// group once `kill_after` has passed while any member still runs. Blocks at
/// most about `kill_after`. Returns how the child ended.
inline conch::detail::child_status terminate(child& c, std::chrono::milliseconds kill_after,
                                             int first = SIGTERM) {
  using clock = std::chrono::steady_clock;
  const pid_t pgid = c.group();
  conch::detail::kill_sequence<clock::time_point> seq{kill_after};
  (void)c.signal_group(first);
  seq.start(clock::now());
  // The unreaped leader keeps the group id from being reused while we signal it.
  while (!c.exited() || live_members(pgid) > 0) {
    if (seq.kill_due(clock::now())) {
      (void)c.signal_group(SIGKILL);
      break;
    }
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*seq.kill_at() - clock::now());
    pollfd p{c.exit_fd(), POLLIN, 0};
    ::poll(&p, c.exit_fd() >= 0 && !c.exited() ? 1 : 0,
           static_cast<int>(std::min<long long>(std::max<long long>(left.count(), 0), 20)));
  }
  return c.reap();
}

}  // namespace conch::process
