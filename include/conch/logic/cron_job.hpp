// conch/logic/cron_job.hpp — a stored cron job as a daemon schedules it.
//
// A job record names its schedule and time zone as text; a daemon needs them
// parsed, and the job's keys spelled out, so `cron_job` holds all of it. A
// value that is not a readable job (written by hand, by a newer version,
// truncated) is `errc::corrupt` with the reason: reported and skipped, never
// a crash.
#pragma once

#include "conch/logic/cron_policy.hpp"
#include "conch/logic/duration.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/schedule.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/result.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace conch::detail {

/// A job ready to schedule: its record, the parsed schedule and zone, and
/// where its keys live.
struct cron_job {
  job_record record;
  schedule when;
  zone tz;
  std::string key;        ///< <prefix>cron/jobs/<name>
  std::string fire_dir;   ///< <prefix>cron/fire/<name>/ — one claim per tick below
  std::string runs_dir;   ///< <prefix>cron/runs/<name>/ — one result per tick below
  std::string floor_dir;  ///< <prefix>cron/floor/<name>/ — the highest marker is the floor
  std::string
      running_key;  ///< <prefix>cron/running/<name> — the run holding the job (forbid, replace)
  std::string stop_key;  ///< <prefix>cron/stop/<name> — asks the holder's daemon to stop it
  cron_concurrency concurrency = cron_concurrency::forbid;
  std::chrono::milliseconds timeout{0};  ///< 0: none

  bool paused() const noexcept { return record.paused; }

  const std::string& name() const noexcept { return record.name; }

  /// The first tick strictly after `t`; nothing when there is none within
  /// the calendar's reach.
  std::optional<tick_time> next_after(std::chrono::system_clock::time_point t) const {
    auto next = next_tick(when, t, tz);
    if (!next) return std::nullopt;
    return std::chrono::floor<std::chrono::seconds>(*next);
  }
};

/// Checks a job as a user gives it (`conch cron add`) and places it under
/// `prefix`: an empty or unencodable name, an empty command, an invalid
/// schedule, an unknown zone, concurrency policy or run id, or a negative
/// timeout is `errc::invalid_argument` with a one-line reason.
inline result<cron_job> make_cron_job(std::string_view prefix, job_record record) {
  auto key = encode_key(prefix, cron_job_key{record.name});
  if (!key)
    return error{errc::invalid_argument,
                 "job name " + detail::quoted(record.name) + ": " + key.error().message};
  if (record.argv.empty() || record.argv.front().empty())
    return error{errc::invalid_argument, "job " + detail::quoted(record.name) + " has no command"};
  auto when = parse_schedule(record.schedule);
  if (!when) return std::move(when).error();
  // Ticks are named by the second: a finer period would give two ticks one key.
  if (when->form == schedule::form_t::every && when->period.count() % 1000 != 0)
    return error{errc::invalid_argument,
                 "schedule " + detail::quoted(record.schedule) +
                     ": cron ticks are whole seconds; use a period of whole seconds"};
  auto tz = load_zone(record.tz);
  if (!tz) return std::move(tz).error();
  auto fire_dir = cron_fire_dir(prefix, record.name);
  auto runs_dir = cron_runs_dir(prefix, record.name);
  if (!fire_dir) return std::move(fire_dir).error();
  if (!runs_dir) return std::move(runs_dir).error();
  auto floor_dir = cron_floor_dir(prefix, record.name);
  if (!floor_dir) return std::move(floor_dir).error();
  auto concurrency = parse_concurrency(record.concurrency);
  if (!concurrency) return std::move(concurrency).error();
  auto timeout = parse_timeout_ms(record.timeout_ms);
  if (!timeout) return std::move(timeout).error();
  if (!record.run_request.empty())
    if (auto id = parse_run_id(record.run_request); !id || !id->manual)
      return error{errc::invalid_argument, "run request " + detail::quoted(record.run_request) +
                                               ": not a run id (YYYYMMDDTHHMMSSZ-runNNN)"};
  auto running_key = cron_running_key(prefix, record.name);
  if (!running_key) return std::move(running_key).error();
  std::string stop_key = cron_stop_dir(prefix) + running_key->substr(running_key->rfind('/') + 1);
  cron_job job{std::move(record),     std::move(*when),        std::move(*tz),
               std::move(*key),       std::move(*fire_dir),    std::move(*runs_dir),
               std::move(*floor_dir), std::move(*running_key), std::move(stop_key)};
  job.concurrency = *concurrency;
  job.timeout = *timeout;
  return job;
}

/// Reads the job stored at `key` under `prefix`. Anything unreadable — a
/// foreign key, a value that is not a job record, a record naming another
/// job, a schedule or zone this version does not know — is `errc::corrupt`.
inline result<cron_job> read_cron_job(std::string_view prefix, std::string_view key,
                                      std::string_view value) {
  auto where = decode_key<cron_job_key>(prefix, key);
  if (!where) return error{errc::corrupt, where.error().message};
  const std::string shown = detail::quoted(where->name);
  auto record = decode_record<job_record>(value);
  if (!record) return error{errc::corrupt, "job " + shown + ": " + record.error().message};
  if (record->name != where->name)
    return error{errc::corrupt,
                 "job " + shown + ": its record names " + detail::quoted(record->name)};
  auto job = make_cron_job(prefix, std::move(*record));
  if (!job) return error{errc::corrupt, "job " + shown + ": " + job.error().message};
  return job;
}

}  // namespace conch::detail
