// conch/logic/cron_policy.hpp — a cron job's controls as a daemon reads
// them: what a tick does when the job's previous run is still going
// (concurrency), how long a run may take (timeout), and the ids of runs
// asked for by hand (`conch cron run`). Pure: parsing and naming only.
//
// Job records written before these controls existed carry none of the
// fields and read as: concurrency forbid, no timeout, not paused, no run
// asked for. A value this version does not know is an error, which the
// daemons report as a corrupt job (and skip) rather than guess at.
#pragma once

#include "conch/logic/duration.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/result.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace conch::detail {

/// What a tick does while the job's previous run is still running (on any daemon).
enum class cron_concurrency {
  forbid,   ///< the tick is skipped, and its result says so
  allow,    ///< the runs overlap
  replace,  ///< the previous run's group is stopped (SIGTERM, SIGKILL after kill-after) first
};

inline const char* to_string(cron_concurrency c) noexcept {
  switch (c) {
    case cron_concurrency::forbid:
      return "forbid";
    case cron_concurrency::allow:
      return "allow";
    case cron_concurrency::replace:
      return "replace";
  }
  return "forbid";
}

/// "forbid", "allow" or "replace"; empty (a record from before the field) is forbid.
inline result<cron_concurrency> parse_concurrency(std::string_view text) {
  if (text.empty() || text == "forbid") return cron_concurrency::forbid;
  if (text == "allow") return cron_concurrency::allow;
  if (text == "replace") return cron_concurrency::replace;
  return error{errc::invalid_argument,
               "concurrency " + detail::quoted(text) + ": not one of forbid, allow, replace"};
}

/// A job's timeout as stored (milliseconds; 0 is none): negative is an error.
inline result<std::chrono::milliseconds> parse_timeout_ms(std::int64_t ms) {
  if (ms < 0)
    return error{errc::invalid_argument, "timeout " + std::to_string(ms) + "ms: negative"};
  return std::chrono::milliseconds{ms};
}

/// The id of a run asked for at `at` (`conch cron run`): the second's tick
/// text, then "-run" and the milliseconds. It sorts after that second's
/// scheduled tick and before the next one, so key order stays time order
/// (pruning relies on it), and never equals a scheduled tick's key.
///   run_request_id(2026-01-01T00:00:00.250Z) == "20260101T000000Z-run250"
inline std::string run_request_id(wall_time at) {
  const auto second = std::chrono::floor<std::chrono::seconds>(at);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - second).count();
  char tail[16];
  std::snprintf(tail, sizeof tail, "-run%03d", static_cast<int>(ms));
  return format_tick(second) + tail;
}

/// A claim or result key's last segment read back: the tick (the second a
/// hand-asked run was asked in) and whether it was asked for by hand.
struct run_id {
  tick_time tick{};
  bool manual = false;
  std::string text;
};

inline result<run_id> parse_run_id(std::string_view text) {
  auto tick = parse_tick(text.substr(0, 16));
  if (!tick) return std::move(tick).error();
  if (text.size() == 16) return run_id{*tick, false, std::string(text)};
  const std::string_view rest = text.substr(16);
  const bool digits = rest.size() == 7 && rest.starts_with("-run") &&
                      rest.find_first_not_of("0123456789", 4) == std::string_view::npos;
  if (!digits)
    return error{errc::invalid_argument, "run id " + detail::quoted(text) + ": malformed"};
  return run_id{*tick, true, std::string(text)};
}

/// The instant a hand-asked run was asked at, back from its id.
inline wall_time run_request_time(const run_id& id) {
  if (!id.manual) return id.tick;
  return id.tick + std::chrono::milliseconds{std::stoi(id.text.substr(20))};
}

}  // namespace conch::detail
