// conch/logic/schedule/next.hpp — the next tick of a schedule in a time zone.
//
// The DST rules are stated in schedule.hpp. In short, a cron schedule picks
// wall-clock times; mapping them to instants needs a rule where the zone
// skips or repeats wall time:
//   - wall-time jobs (hour field not `*`-based) tick at g(c) for each matching
//     wall time c, where g(c) is the first instant the clock reads c or later:
//     a skipped c maps to the end of the gap, a repeated c to its first
//     occurrence. g never decreases, so the next tick after `after` comes from
//     the first matching c later than any wall time shown up to `after`.
//   - elapsed-time jobs tick at every instant whose wall time matches; they
//     are found stretch by stretch between the zone's offset changes.
#pragma once

#include "conch/logic/schedule/fields.hpp"
#include "conch/logic/schedule/text.hpp"
#include "conch/logic/time_zone.hpp"
#include "conch/result.hpp"

#include <absl/time/civil_time.h>
#include <absl/time/time.h>
#include <chrono>
#include <cstdint>
#include <optional>

namespace conch::detail {

/// The clock ticks are stated on: wall time, UTC-based, seconds resolution
/// for cron schedules and milliseconds for `@every`.
using tick_clock = std::chrono::system_clock;

/// The first wall time >= `from` and < `limit` that the cron fields allow.
inline std::optional<absl::CivilSecond> next_civil_match(const schedule& s, absl::CivilSecond from,
                                                         absl::CivilSecond limit) {
  absl::CivilSecond c = from;
  while (c < limit) {
    const int m = c.month();
    if (!s.months.has(m)) {
      const int later = s.months.next(m + 1);
      c = later > 0 ? absl::CivilSecond(c.year(), later, 1)
                    : absl::CivilSecond(c.year() + 1, s.months.next(1), 1);
      continue;
    }
    if (!day_matches(s, c.year(), m, c.day())) {
      c = absl::CivilSecond(absl::CivilDay(c) + 1);
      continue;
    }
    if (!s.hours.has(c.hour())) {
      const int h = s.hours.next(c.hour() + 1);
      c = h >= 0 ? absl::CivilSecond(c.year(), m, c.day(), h)
                 : absl::CivilSecond(absl::CivilDay(c) + 1);
      continue;
    }
    if (!s.minutes.has(c.minute())) {
      const int mi = s.minutes.next(c.minute() + 1);
      c = mi >= 0 ? absl::CivilSecond(c.year(), m, c.day(), c.hour(), mi)
                  : absl::CivilSecond(absl::CivilHour(c) + 1);
      continue;
    }
    if (!s.seconds.has(c.second())) {
      const int sec = s.seconds.next(c.second() + 1);
      c = sec >= 0 ? absl::CivilSecond(c.year(), m, c.day(), c.hour(), c.minute(), sec)
                   : absl::CivilSecond(absl::CivilMinute(c) + 1);
      continue;
    }
    return c;
  }
  return std::nullopt;
}

namespace schedule_math {

// Ticks further out than one Gregorian cycle cannot exist: the calendar repeats.
inline constexpr int horizon_years = 401;

inline absl::CivilSecond years_later(absl::CivilSecond c, int years) {
  return absl::CivilSecond(c.year() + years, c.month(), c.day(), c.hour(), c.minute(), c.second());
}

// Wall-time jobs: first tick strictly after `after` (whole seconds).
inline std::optional<absl::Time> next_wall_tick(const schedule& s, absl::Time after,
                                                const absl::TimeZone& tz) {
  // The latest wall time the clock has shown up to `after`: its own reading,
  // unless a fall-back in the last two days turned the clock back past it.
  absl::CivilSecond shown = tz.At(after).cs;
  absl::Time cursor = after + absl::Seconds(1);
  absl::TimeZone::CivilTransition tr;
  for (int i = 0; i < 8 && tz.PrevTransition(cursor, &tr); ++i) {
    const absl::Time at = tz.At(tr.to).trans;
    if (at < after - absl::Hours(48) || at >= cursor) break;
    if (tr.to < tr.from && tr.from - 1 > shown) shown = tr.from - 1;
    cursor = at;
  }
  const auto c = next_civil_match(s, shown + 1, years_later(shown, horizon_years));
  if (!c) return std::nullopt;
  const auto info = tz.At(*c);
  return info.kind == absl::TimeZone::TimeInfo::SKIPPED ? info.trans : info.pre;
}

// Elapsed-time jobs: the first instant strictly after `after` whose wall time matches.
inline std::optional<absl::Time> next_elapsed_tick(const schedule& s, absl::Time after,
                                                   const absl::TimeZone& tz) {
  absl::Time start = after + absl::Seconds(1);
  const absl::CivilSecond limit = years_later(tz.At(start).cs, horizon_years);
  for (int stretch = 0; stretch < 4 * horizon_years; ++stretch) {
    // Between offset changes, wall time runs with the instant: [start, end).
    const absl::CivilSecond wall = tz.At(start).cs;
    absl::TimeZone::CivilTransition tr;
    const bool changes = tz.NextTransition(start, &tr) && tr.from < limit && tr.from > wall;
    const absl::CivilSecond end = changes ? tr.from : limit;
    if (const auto c = next_civil_match(s, wall, end)) return start + absl::Seconds(*c - wall);
    if (!changes) return std::nullopt;
    start += absl::Seconds(tr.from - wall);
  }
  return std::nullopt;
}

}  // namespace schedule_math

/// The first tick of `s` strictly after `after`, with wall times read in `z`.
/// Fails only when no tick exists before the end of `tick_clock`'s range
/// (year 2262) or, for an elapsed-time job, when every matching wall time
/// falls into skipped DST gaps for 400 years.
inline result<tick_clock::time_point> next_tick(const schedule& s, tick_clock::time_point after,
                                                const zone& z = zone::utc()) {
  using namespace std::chrono;
  auto too_late = [&s] {
    return conch::error{errc::invalid_argument,
                        "schedule \"" + s.to_string() + "\": next tick is beyond the year 2262"};
  };
  if (s.form == schedule::form_t::every) {
    const std::int64_t p = s.period.count();
    if (p <= 0)
      return conch::error{errc::invalid_argument,
                          "schedule \"@every\": period must be greater than zero"};
    const std::int64_t a = floor<milliseconds>(after).time_since_epoch().count();
    const std::int64_t q = a / p - (a % p < 0 ? 1 : 0);  // floor(a / p)
    const std::int64_t max_ms = duration_cast<milliseconds>(tick_clock::duration::max()).count();
    if (q + 1 > max_ms / p) return too_late();
    return tick_clock::time_point(duration_cast<tick_clock::duration>(milliseconds((q + 1) * p)));
  }
  const absl::Time a = absl::FromUnixSeconds(floor<seconds>(after).time_since_epoch().count());
  const auto tick = s.follows_elapsed_time() ? schedule_math::next_elapsed_tick(s, a, z.rules())
                                             : schedule_math::next_wall_tick(s, a, z.rules());
  if (!tick) {
    return conch::error{errc::invalid_argument,
                        "schedule \"" + s.to_string() + "\": no tick within " +
                            std::to_string(schedule_math::horizon_years - 1) +
                            " years in time zone " + detail::quoted(z.name())};
  }
  const std::int64_t secs = absl::ToUnixSeconds(*tick);
  if (secs > duration_cast<seconds>(tick_clock::duration::max()).count()) return too_late();
  return tick_clock::time_point(duration_cast<tick_clock::duration>(seconds(secs)));
}

}  // namespace conch::detail
