// conch/logic/cron_event.hpp — what a cron daemon has to say, and how it
// says it: one line per claim, run and result, and per job change, human by
// default or one JSON object per line. Pure: formatting only, no I/O.
#pragma once

#include "conch/logic/time_format.hpp"
#include "conch/policies/transport.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace conch {

/// One thing that happened in a cron daemon.
struct cron_event {
  enum class kind {
    daemon,       ///< the daemon started or is stopping: `message` says which
    job_loaded,   ///< a job was added or changed: `message` is its schedule and next tick
    job_removed,  ///< a job was deleted: no further ticks
    job_corrupt,  ///< a job value is unreadable: skipped, `message` says why
    skipped,      ///< `tick` not run: `reason` late (not claimed), overlap or replace (recorded)
    claimed,      ///< this daemon won `tick` (claim revision `rev`)
    started,      ///< the command runs as `pid`
    finished,     ///< the command ended with `exit_code`; the result is recorded
    replaced,     ///< a run of this daemon is stopped: a newer tick of its job replaces it
    error,        ///< something went wrong; `message` says what
    conflict,     ///< another daemon claimed `tick` first (metrics only: not logged)
    zombies,      ///< `count` claims of `job` have no result and a gone lease (metrics only)
  };
  kind what = kind::error;
  std::string job{};
  std::string tick{};  ///< RFC 3339 UTC; empty when not about a tick
  revision rev = 0;
  long pid = 0;
  int exit_code = 0;
  std::chrono::milliseconds took{0};
  std::string message{};
  /// skipped: late, overlap (forbid) or replace (the previous run could not
  /// be stopped); finished: "timeout" when the job's timeout stopped the run.
  std::string reason{};
  /// zombies: how many the job's history holds.
  long count = 0;
};

/// Events that feed metrics but make no log line: one per lost claim race or
/// history look would drown the rest.
inline bool quiet(const cron_event& e) noexcept {
  return e.what == cron_event::kind::conflict || e.what == cron_event::kind::zombies;
}

inline const char* to_string(cron_event::kind k) noexcept {
  switch (k) {
    case cron_event::kind::daemon:
      return "conchd";
    case cron_event::kind::job_loaded:
      return "job";
    case cron_event::kind::job_removed:
      return "removed";
    case cron_event::kind::job_corrupt:
      return "corrupt";
    case cron_event::kind::skipped:
      return "skip";
    case cron_event::kind::claimed:
      return "claim";
    case cron_event::kind::started:
      return "run";
    case cron_event::kind::finished:
      return "result";
    case cron_event::kind::replaced:
      return "replace";
    case cron_event::kind::error:
      return "error";
    case cron_event::kind::conflict:
      return "conflict";
    case cron_event::kind::zombies:
      return "zombies";
  }
  return "event";
}

namespace detail {

/// `2026-01-01T00:00:00.250Z claim job=backup tick=2026-01-01T00:00:00Z rev=42`
inline std::string human_log_line(const cron_event& e, wall_time at) {
  std::string line = format_rfc3339(at) + " " + to_string(e.what);
  auto field = [&](const char* name, const std::string& value) {
    line += ' ';
    line += name;
    line += '=';
    const bool plain = !value.empty() && value.find_first_of(" \"=\n\t") == std::string::npos;
    line += plain ? value
                  : nlohmann::json(value).dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
  };
  if (!e.job.empty()) field("job", e.job);
  if (!e.tick.empty()) field("tick", e.tick);
  if (e.rev) field("rev", std::to_string(e.rev));
  if (e.pid) field("pid", std::to_string(e.pid));
  if (e.what == cron_event::kind::finished) {
    field("exit", std::to_string(e.exit_code));
    field("took", std::to_string(e.took.count()) + "ms");
  }
  if (!e.reason.empty()) field("reason", e.reason);
  if (!e.message.empty()) field("msg", e.message);
  return line;
}

/// The same event as one JSON object (no newline inside).
inline std::string json_log_line(const cron_event& e, wall_time at) {
  nlohmann::json j{{"time", format_rfc3339(at)}, {"event", to_string(e.what)}};
  if (!e.job.empty()) j["job"] = e.job;
  if (!e.tick.empty()) j["tick"] = e.tick;
  if (e.rev) j["rev"] = e.rev;
  if (e.pid) j["pid"] = e.pid;
  if (e.what == cron_event::kind::finished) {
    j["exit_code"] = e.exit_code;
    j["took_ms"] = e.took.count();
  }
  if (!e.reason.empty()) j["reason"] = e.reason;
  if (!e.message.empty()) j["message"] = e.message;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace detail
}  // namespace conch
