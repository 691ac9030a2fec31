// tests/invariant/world.hpp — everything the invariant harness started and
// what it saw them do: the contenders (wrapper processes), their children's
// intervals (read from the shared log, ends completed by pidfd when a child
// died without writing one), background etcdctl commands, and the reaping of
// every process that ends. One thread; pump() advances it. One world per
// phase: its destructor ends whatever is left of it, by pid.
#pragma once

#include "invariant/exit_verdict.hpp"
#include "invariant/fault_plan.hpp"
#include "invariant/log_record.hpp"
#include "invariant/overlap.hpp"
#include "invariant/processes.hpp"

#include <algorithm>
#include <csignal>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace conch::invariant {

inline constexpr nanos open_end = std::numeric_limits<nanos>::max();

/// Set by SIGINT/SIGTERM/SIGHUP: the harness stops, cleans up, exits 130.
inline volatile std::sig_atomic_t interrupted = 0;
struct interrupted_error : std::runtime_error {
  interrupted_error() : std::runtime_error("interrupted") {}
};

/// One `conch elect|sema` process.
struct contender {
  std::string id;  ///< also the holder name its child logs
  pid_t pid = 0;
  contender_shape shape{};
  bool final = false;  ///< of the convergence round: its child runs until stopped
  bool alive = true;
  bool frozen = false;
  nanos thaw_at = 0;
  nanos spawned_at = 0;
  nanos ended_at = 0;
  int interval = -1;  ///< its child's interval, once started
  wrapper_story story{};
  std::string err_path;
};

/// A child we watch without being its parent.
struct child_watch {
  int interval = -1;
  pid_t pid = 0;
  int pidfd = -1;
  bool dead = false;
  nanos seen_dead = 0;
};

class world {
 public:
  /// A world whose children log to `log_path` (created empty).
  world(std::string dir, std::string log_path, pid_t etcd_pid)
      : dir_(std::move(dir)), etcd_pid_(etcd_pid), log_path_(std::move(log_path)) {
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + log_path_);
    ::close(fd);
    log_fd_ = ::open(log_path_.c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~world() { kill_everything(); }
  world(const world&) = delete;
  world& operator=(const world&) = delete;

  const std::string& dir() const { return dir_; }

  const std::string& log_path() const { return log_path_; }
  std::vector<interval>& intervals() { return intervals_; }
  const std::vector<interval>& intervals() const { return intervals_; }
  const start_record& start_of(int i) const { return starts_.at(static_cast<std::size_t>(i)); }

  // ---- contenders
  std::deque<contender>& contenders() { return contenders_; }
  contender* find(const std::string& id) {
    for (auto& c : contenders_)
      if (c.id == id) return &c;
    return nullptr;
  }

  contender& spawn_contender(std::string id, std::vector<std::string> argv, contender_shape shape,
                             bool final) {
    contender& c = contenders_.emplace_back();
    c.id = std::move(id);
    c.shape = shape;
    c.final = final;
    c.story.has_timeout = shape.timeout > 0;
    c.story.child_ignores_sigterm = shape.ignores_sigterm;
    c.err_path = dir_ + "/" + c.id + ".err";
    c.spawned_at = now_ns();
    c.pid = spawn({.argv = std::move(argv),
                   .env = clean_environment(),
                   .out_path = dir_ + "/" + c.id + ".out",
                   .err_path = c.err_path});
    on_exit_[c.pid] = [&c](const reaped& r) {
      c.alive = false;
      c.frozen = false;
      c.ended_at = now_ns();
      c.story.signal = r.signal;
      c.story.exit_code = r.exit_code;
    };
    return c;
  }

  /// Holders: alive, not frozen, with a child that runs.
  std::vector<contender*> holders(bool finals) {
    std::vector<contender*> out;
    for (auto& c : contenders_)
      if (c.alive && !c.frozen && c.final == finals && c.interval >= 0 && child_running(c))
        out.push_back(&c);
    return out;
  }
  /// Waiters: alive, not frozen, no child yet, and old enough to have queued.
  std::vector<contender*> waiters(nanos min_age) {
    std::vector<contender*> out;
    const nanos t = now_ns();
    for (auto& c : contenders_)
      if (c.alive && !c.frozen && !c.final && c.interval < 0 && t - c.spawned_at >= min_age)
        out.push_back(&c);
    return out;
  }
  bool child_running(const contender& c) const {
    if (c.interval < 0) return false;
    return intervals_[static_cast<std::size_t>(c.interval)].end == open_end;
  }
  int running_children() const {
    return static_cast<int>(std::count_if(intervals_.begin(), intervals_.end(),
                                          [](const interval& x) { return x.end == open_end; }));
  }
  child_watch* child_of(const contender& c) {
    for (auto& w : children_)
      if (w.interval == c.interval && !w.dead) return &w;
    return nullptr;
  }

  void freeze(contender& c, nanos for_how_long) {
    ::kill(c.pid, SIGSTOP);
    c.frozen = true;
    c.thaw_at = now_ns() + for_how_long;
  }
  void thaw(contender& c) {
    if (c.alive) ::kill(c.pid, SIGCONT);
    c.frozen = false;
  }

  // ---- background commands (etcdctl): `done(exit code, output)` once they end
  void run_async(std::vector<std::string> argv, std::vector<std::string> extra_env,
                 std::function<void(int, const std::string&)> done) {
    const std::string out = log_path_ + ".cmd-" + std::to_string(++commands_) + ".out";
    pid_t pid = spawn({.argv = std::move(argv),
                       .env = clean_environment(std::move(extra_env)),
                       .out_path = out,
                       .err_path = out,
                       .search_path = true});
    ++pending_;
    async_pids_.push_back(pid);
    on_exit_[pid] = [this, out, pid, done = std::move(done)](const reaped& r) {
      --pending_;
      std::erase(async_pids_, pid);
      done(r.exit_code, slurp(out));
    };
  }
  int pending_commands() const { return pending_; }

  /// Waits up to `max_wait` for something to happen, then takes note of it:
  /// new log lines, children that died, processes that ended, thaws due.
  void pump(nanos max_wait = 5 * ms) {
    if (interrupted) throw interrupted_error();
    std::vector<pollfd> fds;
    std::vector<std::size_t> who;
    for (std::size_t i = 0; i < children_.size(); ++i)
      if (!children_[i].dead && children_[i].pidfd >= 0) {
        fds.push_back({children_[i].pidfd, POLLIN, 0});
        who.push_back(i);
      }
    const int timeout = static_cast<int>(std::clamp<nanos>(max_wait / ms, 0, 5));
    ::poll(fds.data(), fds.size(), timeout);
    const nanos t = now_ns();
    read_log();
    for (std::size_t k = 0; k < fds.size(); ++k)
      if (fds[k].revents) mark_dead(children_[who[k]], t);
    read_log();  // an end record written just before the death
    for (auto& w : children_) {
      if (!w.dead) continue;
      auto& x = intervals_[static_cast<std::size_t>(w.interval)];
      if (x.end == open_end) {
        x.end = w.seen_dead;
        x.observed_end = true;
      }
    }
    reaped r;
    while (reap_one(r)) {
      if (r.pid == etcd_pid_)
        throw std::runtime_error("etcd died (exit " + std::to_string(r.exit_code) + ")");
      auto it = on_exit_.find(r.pid);
      if (it == on_exit_.end()) continue;  // an orphan (a child or watchdog of a killed wrapper)
      auto f = std::move(it->second);
      on_exit_.erase(it);
      f(r);
    }
    for (auto& c : contenders_)
      if (c.frozen && c.alive && t >= c.thaw_at) thaw(c);
  }

  /// Pumps until `cond` holds or `limit` passes; returns whether it held.
  bool await(const std::function<bool()>& cond, nanos limit) {
    const nanos until = now_ns() + limit;
    for (;;) {
      if (cond()) return true;
      if (now_ns() >= until) return false;
      pump();
    }
  }

  /// Ends every process we started or inherited, by pid: contenders (thawed
  /// first), children still running, commands, and then whatever reparented
  /// to us (watchdogs, orphans) — bounded in time.
  void kill_everything() {
    for (auto& c : contenders_)
      if (c.alive) {
        ::kill(c.pid, SIGCONT);
        ::kill(c.pid, SIGKILL);
      }
    for (auto& w : children_)
      if (!w.dead && w.pidfd >= 0) {
        pollfd p{w.pidfd, POLLIN, 0};
        if (::poll(&p, 1, 0) == 0) {
          ::kill(-w.pid, SIGKILL);  // its own group: still led by it, so the id is not reused
          pidfd_send_signal(w.pidfd, SIGKILL);
        }
        ::close(w.pidfd);
        w.pidfd = -1;
        w.dead = true;
      }
    for (pid_t p : async_pids_) ::kill(p, SIGKILL);
    const nanos until = now_ns() + 5'000 * ms;
    for (;;) {
      reaped r;
      while (reap_one(r)) {
        if (auto it = on_exit_.find(r.pid); it != on_exit_.end()) {
          auto f = std::move(it->second);
          on_exit_.erase(it);
          f(r);
        }
      }
      auto left = our_children();
      std::erase(left, etcd_pid_);
      if (left.empty() || now_ns() >= until) break;
      for (pid_t p : left) ::kill(p, SIGKILL);
      ::usleep(20'000);
    }
    if (log_fd_ >= 0) ::close(log_fd_);
    log_fd_ = -1;
  }

 private:
  void mark_dead(child_watch& w, nanos t) {
    if (w.dead) return;
    w.dead = true;
    w.seen_dead = t;
    if (w.pidfd >= 0) ::close(w.pidfd);
    w.pidfd = -1;
  }

  void read_log() {
    if (log_fd_ < 0) return;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(log_fd_, buf, sizeof buf);
      if (n <= 0) break;
      partial_.append(buf, static_cast<std::size_t>(n));
    }
    for (auto nl = partial_.find('\n'); nl != std::string::npos; nl = partial_.find('\n')) {
      const std::string line = partial_.substr(0, nl);
      partial_.erase(0, nl + 1);
      apply(parse_line(line), line);
    }
  }

  void apply(const log_line& l, const std::string& text) {
    if (l.start) {
      const auto& s = *l.start;
      const int index = static_cast<int>(intervals_.size());
      intervals_.push_back(
          {.holder = s.holder, .token = s.token, .slot = s.slot, .start = s.at, .end = open_end});
      starts_.push_back(s);
      by_holder_[s.holder] = index;
      if (auto* c = find(s.holder)) {
        ++c->story.children;
        c->interval = index;
      }
      child_watch w{.interval = index, .pid = s.pid};
      w.pidfd = pidfd_open(s.pid);
      proc_stat st;
      // A start record read after its child died and its pid was reused must
      // not watch the newcomer: the start time of the process tells them apart.
      const bool same = w.pidfd >= 0 && read_proc_stat(s.pid, st) && st.start_ticks == s.proc_start;
      children_.push_back(w);
      if (!same) mark_dead(children_.back(), now_ns());
    } else if (l.end) {
      const auto& e = *l.end;
      auto it = by_holder_.find(e.holder);
      if (it == by_holder_.end()) {
        garbled_.push_back(text);
        return;
      }
      auto& x = intervals_[static_cast<std::size_t>(it->second)];
      x.end = e.at;
      x.observed_end = false;
      if (auto* c = find(e.holder); c && e.how == "exit") c->story.child_exited_cleanly = true;
    } else if (!text.empty()) {
      garbled_.push_back(text);
    }
  }

  std::string dir_;
  pid_t etcd_pid_;
  std::string log_path_;
  int log_fd_ = -1;
  std::string partial_;
  std::vector<interval> intervals_;
  std::vector<start_record> starts_;
  std::map<std::string, int> by_holder_;
  std::deque<contender> contenders_;
  std::vector<child_watch> children_;
  std::map<pid_t, std::function<void(const reaped&)>> on_exit_;
  std::vector<pid_t> async_pids_;
  int pending_ = 0;
  int commands_ = 0;

 public:
  std::vector<std::string> garbled_;  ///< log lines that made no sense (a failure)
};

}  // namespace conch::invariant
