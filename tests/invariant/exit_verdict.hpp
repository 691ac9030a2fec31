// tests/invariant/exit_verdict.hpp — is a wrapper's exit explained by what was
// done to it? Pure. The tool's exit table (child's code, 70 lost, 75 busy)
// applied to one contender's story in the invariant harness. An exit 69 (etcd
// unreachable) before holding anything is explained too: it is the tool's
// answer to a stalled etcd, and it cannot break the invariants; the harness
// counts and prints those.
//
//   wrapper_story s{.exit_code = 70, .lease_touched = true, .children = 1};
//   if (auto why = judge_exit(s)) report(*why);
#pragma once

#include <csignal>
#include <optional>
#include <string>

namespace conch::invariant {

struct wrapper_story {
  int signal = 0;              ///< the signal that ended the wrapper itself (0: it exited)
  int exit_code = 0;           ///< when it exited
  bool killed = false;         ///< the schedule sent it SIGKILL
  bool lease_touched = false;  ///< its lease was revoked or it was frozen: a loss is allowed
  bool frozen = false;  ///< it was frozen (a loss is allowed: that is 70, never the child's code)
  bool child_killed = false;  ///< the schedule SIGKILLed its child
  bool terminated = false;    ///< it was sent SIGTERM (forwarded to its child)
  bool has_timeout = false;   ///< it ran with --timeout
  bool child_ignores_sigterm = false;
  int children = 0;                   ///< intervals it ran (start records)
  bool child_exited_cleanly = false;  ///< its child wrote an "exit" end record
};

/// Why the exit is not explained by the story, or nothing when it is.
inline std::optional<std::string> judge_exit(const wrapper_story& s) {
  if (s.children > 1) return "ran " + std::to_string(s.children) + " children (one expected)";
  if (s.signal != 0) {
    if (s.signal == SIGKILL && s.killed) return std::nullopt;
    return "ended by signal " + std::to_string(s.signal) + (s.killed ? "" : " nobody sent");
  }
  switch (s.exit_code) {
    case 0:
      if (s.children == 1 && s.child_exited_cleanly) return std::nullopt;
      return "exit 0 without a child that exited by itself";
    case 70:
      if (s.lease_touched) return std::nullopt;
      return "exit 70 (lost) though its lease was neither revoked nor frozen";
    case 75:
      if (!s.has_timeout) return "exit 75 without --timeout";
      if (s.children != 0) return "exit 75 after running a child";
      return std::nullopt;
    case 69:  // etcd unreachable (a loaded machine): it never held, so it can have broken nothing
      if (s.children == 0) return std::nullopt;
      return "exit 69 after running a child";
    // A frozen wrapper whose watchdog stopped its child must say so with 70,
    // even if on waking a keepalive answer moved its deadline: not 143/137.
    case 128 + SIGTERM:
      if (s.terminated) return std::nullopt;
      return std::string("exit 143 though nobody sent SIGTERM") +
             (s.frozen ? " (frozen: its watchdog stopped the child, so 70 is due)" : "");
    case 128 + SIGKILL:
      if (s.children == 1 && (s.child_killed || (s.terminated && s.child_ignores_sigterm)))
        return std::nullopt;
      return std::string("exit 137 though its child was not killed") +
             (s.frozen ? " (frozen: its watchdog stopped the child, so 70 is due)" : "");
    default:
      return "unexpected exit " + std::to_string(s.exit_code);
  }
}

}  // namespace conch::invariant
