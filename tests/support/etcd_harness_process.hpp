// tests/support/etcd_harness_process.hpp — the process plumbing under
// etcd_harness.hpp: free loopback ports, running a command with a time limit,
// and killing every etcd we started when the test binary dies (exit, abort,
// fatal signal), so no test run leaves an etcd behind.
#pragma once

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace conch::test {

namespace harness_detail {

// Every etcd pid we started, readable from a signal handler.
inline std::atomic<pid_t> live_pids[64];

inline void kill_all_live() noexcept {
  for (auto& p : live_pids) {
    pid_t pid = p.exchange(0);
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

inline void remember(pid_t pid) noexcept {
  for (auto& p : live_pids) {
    pid_t empty = 0;
    if (p.compare_exchange_strong(empty, pid)) return;
  }
}

inline void forget(pid_t pid) noexcept {
  for (auto& p : live_pids) {
    pid_t expected = pid;
    if (p.compare_exchange_strong(expected, 0)) return;
  }
}

constexpr int fatal_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                 SIGTERM, SIGINT,  SIGHUP, SIGQUIT};
inline struct sigaction previous_actions[sizeof(fatal_signals) / sizeof(int)];

inline void on_fatal_signal(int sig) {
  kill_all_live();
  // Hand the signal to whoever was there before us (or the default action).
  for (std::size_t i = 0; i < std::size(fatal_signals); ++i)
    if (fatal_signals[i] == sig) ::sigaction(sig, &previous_actions[i], nullptr);
  ::raise(sig);
}

// Installed before main, so the test framework's own fatal-signal handler
// (installed per test case) chains back to this one.
inline bool install_cleanup_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_ONSTACK;
  ::sigemptyset(&sa.sa_mask);
  for (std::size_t i = 0; i < std::size(fatal_signals); ++i) {
    ::sigaction(fatal_signals[i], nullptr, &previous_actions[i]);
    if (previous_actions[i].sa_handler == SIG_IGN) continue;  // e.g. SIGHUP under nohup
    ::sigaction(fatal_signals[i], &sa, nullptr);
  }
  std::atexit(kill_all_live);
  return true;
}
inline const bool cleanup_handlers_installed = install_cleanup_handlers();

inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("etcd harness: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("etcd harness: cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

inline std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    auto candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error("etcd harness: '" + name + "' not found in PATH");
}

/// Runs argv (PATH lookup, stdin from /dev/null) with extra environment
/// entries, collecting stdout+stderr into *out; killed after `timeout`.
/// Returns the exit code (128+n if killed by signal n).
inline int run(const std::vector<std::string>& argv, const std::vector<std::string>& env_extra,
               std::string* out, std::chrono::milliseconds timeout) {
  std::vector<std::string> env_strings(env_extra);
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy(argv);
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("etcd harness: pipe() failed");
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("etcd harness: cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  std::string collected;
  auto until = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    char buf[4096];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      break;
    }
    collected.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (out) *out = std::move(collected);
  if (timed_out) return 128 + SIGKILL;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// The first integer after `"field":` in etcdctl's JSON output.
inline std::int64_t json_int(const std::string& text, const std::string& field) {
  auto at = text.find("\"" + field + "\":");
  if (at == std::string::npos)
    throw std::runtime_error("etcd harness: no '" + field + "' in: " + text);
  return std::stoll(text.substr(at + field.size() + 3));
}

}  // namespace harness_detail

}  // namespace conch::test
