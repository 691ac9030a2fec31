// conch/process/signals.hpp — stop signals as readable events, not handlers.
//
// A supervising process must forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to its child
// and then release what it holds; an async handler can do neither safely. So the
// stop signals are blocked in every thread — which only works if they are
// blocked before any thread exists, because new threads inherit the mask (gRPC
// starts its threads when the first channel is made) — and read from a
// signalfd in the main loop.
//
//   int main(int argc, char** argv) {
//     conch::process::block_stop_signals();   // first thing, before gRPC
//     conch::process::signal_inbox inbox;
//     ... poll(inbox.fd()) ...; if (auto sig = inbox.take()) forward(*sig);
//   }
#pragma once

#include "conch/process/fd.hpp"

#include <csignal>
#include <optional>
#include <sys/signalfd.h>
#include <unistd.h>

namespace conch::process {

/// SIGINT, SIGTERM, SIGHUP, SIGQUIT: each asks the wrapper to stop its child,
/// release, and exit.
inline sigset_t stop_signal_set() noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, s);
  return set;
}

inline bool is_stop_signal(int sig) noexcept {
  return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT;
}

/// Blocks the stop signals in the calling thread (and so in every thread it
/// starts later) and ignores SIGPIPE, so a closed stdout or a dead watchdog is
/// an error value, not a death. Call first thing in main. Children get every
/// disposition and the mask reset at spawn (see spawn.hpp).
inline void block_stop_signals() noexcept {
  sigset_t set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

/// The stop signals sent to this process, readable through a file descriptor
/// that fits in poll(). Requires block_stop_signals() first.
class signal_inbox {
 public:
  signal_inbox() {
    sigset_t set = stop_signal_set();
    fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  }

  bool valid() const noexcept { return static_cast<bool>(fd_); }
  /// Readable (POLLIN) when a stop signal is pending.
  int fd() const noexcept { return fd_.get(); }

  /// The next pending stop signal, if any; never blocks.
  std::optional<int> take() noexcept {
    signalfd_siginfo info;
    for (;;) {
      ssize_t n = ::read(fd_.get(), &info, sizeof info);
      if (n == static_cast<ssize_t>(sizeof info)) return static_cast<int>(info.ssi_signo);
      if (n < 0 && errno == EINTR) continue;
      return std::nullopt;
    }
  }

 private:
  unique_fd fd_;
};

}  // namespace conch::process
