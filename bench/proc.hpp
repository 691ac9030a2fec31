// bench/proc.hpp — the processes a benchmark starts (conch, conchd, etcdctl)
// and what /proc tells about them.
//
// Every process is started with posix_spawnp, remembered so that an abnormal
// end of the benchmark kills it (the etcd harness's registry), and ended by
// pid: a destructor that finds it still running sends SIGKILL and reaps it.
#pragma once

#include "support/etcd_harness_process.hpp"

#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

extern char** environ;

namespace conch::bench {

using steady = std::chrono::steady_clock;

struct spawn_spec {
  std::vector<std::string> argv{};  ///< argv[0] is looked up in PATH
  std::vector<std::string> env{};   ///< extra "NAME=value" entries
  std::string stdout_path{};        ///< empty: /dev/null (unless stdout_pipe)
  std::string stderr_path{};        ///< empty: /dev/null
  bool stdout_pipe = false;         ///< read it with read_line()
};

/// One child process, ended by pid at the latest on destruction.
class process {
 public:
  explicit process(const spawn_spec& spec) {
    std::vector<std::string> env(spec.env);
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    std::vector<std::string> args(spec.argv);
    std::vector<char*> envp, argv;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);

    int pipe_fds[2] = {-1, -1};
    if (spec.stdout_pipe && ::pipe2(pipe_fds, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (spec.stdout_pipe)
      ::posix_spawn_file_actions_adddup2(&fa, pipe_fds[1], 1);
    else
      ::posix_spawn_file_actions_addopen(
          &fa, 1, spec.stdout_path.empty() ? "/dev/null" : spec.stdout_path.c_str(),
          O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::posix_spawn_file_actions_addopen(
        &fa, 2, spec.stderr_path.empty() ? "/dev/null" : spec.stderr_path.c_str(),
        O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    sigset_t none;
    ::sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    const int rc = ::posix_spawnp(&pid_, argv[0], &fa, &attr, argv.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&fa);
    ::posix_spawnattr_destroy(&attr);
    if (spec.stdout_pipe) ::close(pipe_fds[1]);
    if (rc != 0) {
      if (spec.stdout_pipe) ::close(pipe_fds[0]);
      pid_ = 0;
      throw std::runtime_error("cannot start " + spec.argv.at(0) + ": " + std::strerror(rc));
    }
    out_ = pipe_fds[0];
    test::harness_detail::remember(pid_);
#ifdef SYS_pidfd_open
    exit_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
#endif
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  ~process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)wait(std::chrono::seconds(5));
    }
    if (out_ >= 0) ::close(out_);
    if (exit_fd_ >= 0) ::close(exit_fd_);
  }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  /// Waits for the exit up to `limit`: the exit code (128+n if killed by
  /// signal n), or nothing if it still runs. `usage`: its CPU and memory.
  std::optional<int> wait(std::chrono::milliseconds limit, rusage* usage = nullptr) {
    if (pid_ <= 0) return code_;
    const auto until = steady::now() + limit;
    for (;;) {
      int status = 0;
      rusage ru{};
      const pid_t r = ::wait4(pid_, &status, WNOHANG, &ru);
      if (r == pid_) {
        test::harness_detail::forget(pid_);
        pid_ = 0;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (usage) *usage = ru;
        return code_;
      }
      if (r < 0 && errno != EINTR) return code_;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
      if (left.count() <= 0) return std::nullopt;
      if (exit_fd_ >= 0) {
        pollfd p{exit_fd_, POLLIN, 0};
        (void)::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }

  /// `sig`, up to `grace` for the exit, then SIGKILL: the exit code.
  int stop(int sig = SIGTERM, std::chrono::milliseconds grace = std::chrono::seconds(5)) {
    if (pid_ <= 0) return code_.value_or(-1);
    signal(sig);
    if (auto c = wait(grace)) return *c;
    signal(SIGKILL);
    return wait(std::chrono::seconds(5)).value_or(-1);
  }

  /// The next line of its stdout (stdout_pipe), or nothing by `until` / at EOF.
  std::optional<std::string> read_line(steady::time_point until) {
    for (;;) {
      if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
        std::string line = buffered_.substr(0, nl);
        buffered_.erase(0, nl + 1);
        return line;
      }
      if (out_ < 0) return std::nullopt;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return std::nullopt;
      }
      buffered_.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  pid_t pid_ = 0;
  int out_ = -1;
  int exit_fd_ = -1;
  std::optional<int> code_;
  std::string buffered_;
};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Polls for a file to exist (and be non-empty) until `until`.
inline bool await_file(const std::string& path, steady::time_point until,
                       std::chrono::microseconds every = std::chrono::microseconds(500)) {
  for (;;) {
    std::error_code ec;
    if (std::filesystem::file_size(path, ec) > 0 && !ec) return true;
    if (steady::now() >= until) return false;
    std::this_thread::sleep_for(every);
  }
}

/// The user + system CPU of a getrusage() or wait4() answer, in ms.
inline double cpu_ms(const rusage& ru) {
  auto ms_of = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3;
  };
  return ms_of(ru.ru_utime) + ms_of(ru.ru_stime);
}

/// utime + stime of `pid` in seconds (its own, not its children's); -1 if unreadable.
inline double cpu_seconds(pid_t pid, bool reaped_children = false) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));  // from field 3 (state) on
  std::string f;
  double ticks = 0;
  // utime, stime (14, 15); cutime, cstime (16, 17): the reaped children's.
  for (int i = 3; i <= 17 && fields >> f; ++i)
    if (reaped_children ? i >= 16 : i == 14 || i == 15) ticks += std::stod(f);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// A "NAME:   123 kB" line of /proc/<pid>/status, in kB; -1 if absent.
inline long status_kb(pid_t pid, const std::string& name) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + ":", 0) == 0) return std::stol(line.substr(name.size() + 1));
  return -1;
}

/// The direct children of `pid` (every thread's).
inline std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    std::istringstream in(read_text(task.path().string() + "/children"));
    for (pid_t c; in >> c;) out.push_back(c);
  }
  return out;
}

/// A fresh directory under /tmp, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/conch-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace conch::bench
