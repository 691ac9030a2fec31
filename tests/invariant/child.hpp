// tests/invariant/child.hpp — the command each contender runs while it holds:
// `invariant __child LOG HOLDER RUN_MS IGNORE_TERM`.
//
// It appends a start record (with CONCH_SLOT, CONCH_REV, CONCH_LEASE) to the
// interval log before anything else, then "works" for RUN_MS (0: until told
// to stop) and appends an end record just before it exits. SIGTERM ends it at
// once with an end record (exit 143) — unless IGNORE_TERM is 1: then only the
// wrapper's SIGKILL after --kill-after ends it, and it writes nothing; the
// harness records the instant it saw the process die instead.
#pragma once

#include "invariant/log_record.hpp"
#include "invariant/processes.hpp"

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <string>
#include <time.h>
#include <unistd.h>

namespace conch::invariant {

inline constexpr std::string_view child_argument = "__child";

namespace detail_child {
inline int log_fd = -1;
inline char end_prefix[256];  // "E <holder> <pid> "
inline std::size_t end_prefix_len = 0;

// Async-signal-safe: the end line is assembled by hand.
inline void write_end(const char* how) {
  char line[320];
  std::size_t n = end_prefix_len;
  std::memcpy(line, end_prefix, n);
  char digits[24];
  int d = 0;
  for (nanos t = now_ns(); t > 0 || d == 0; t /= 10) digits[d++] = static_cast<char>('0' + t % 10);
  while (d > 0) line[n++] = digits[--d];
  line[n++] = ' ';
  for (const char* c = how; *c; ++c) line[n++] = *c;
  line[n++] = '\n';
  [[maybe_unused]] auto w = ::write(log_fd, line, n);
}

inline void on_term(int) {
  write_end("term");
  ::_exit(128 + SIGTERM);
}

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
}  // namespace detail_child

inline int child_main(int argc, char** argv) {
  using namespace detail_child;
  if (argc != 6) return 64;
  const std::string holder = argv[3];
  const nanos run_for = std::atoll(argv[4]) * ms;
  const bool ignore_term = std::string_view(argv[5]) == "1";

  log_fd = ::open(argv[2], O_WRONLY | O_APPEND | O_CLOEXEC);
  if (log_fd < 0) return 66;
  end_prefix_len = static_cast<std::size_t>(std::snprintf(
      end_prefix, sizeof end_prefix, "E %s %d ", holder.c_str(), static_cast<int>(::getpid())));

  // SIGTERM waits until the start record is out, so an end never precedes its start.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &term, nullptr);
  struct sigaction sa {};
  sa.sa_handler = ignore_term ? SIG_IGN : on_term;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);

  start_record s;
  s.holder = holder;
  s.pid = static_cast<int>(::getpid());
  proc_stat st;
  if (read_proc_stat(::getpid(), st)) s.proc_start = st.start_ticks;
  s.slot = std::atoi(env_or("CONCH_SLOT", "0").c_str());
  s.token = std::atoll(env_or("CONCH_REV", "0").c_str());
  s.lease = env_or("CONCH_LEASE", "");
  s.at = now_ns();
  const std::string line = format_start(s);
  if (::write(log_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 66;
  ::sigprocmask(SIG_UNBLOCK, &term, nullptr);

  if (run_for <= 0) {
    for (;;) ::pause();
  }
  const nanos until = s.at + run_for;
  timespec ts{static_cast<time_t>(until / 1'000'000'000), static_cast<long>(until % 1'000'000'000)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
  ::sigprocmask(SIG_BLOCK, &term, nullptr);  // the end record is written once
  write_end("exit");
  return 0;
}

}  // namespace conch::invariant
