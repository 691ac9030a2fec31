// conch/logic/schedule.hpp — cron schedules and their ticks. Pure logic: the
// only I/O is abseil reading a time zone's rules on first load.
//
//   auto s = parse_schedule("*/15 9-17 * * mon-fri");        // result<schedule>
//   auto z = load_zone("Europe/Berlin");                    // result<zone>
//   auto t = next_tick(*s, std::chrono::system_clock::now(), *z);  // result<time_point>
//   s->to_string();                                        // "*/15 9-17 * * 1-5"
//
// Language
//   - Five fields `minute hour day-of-month month day-of-week`, or six with a
//     leading `second` field (five fields mean second 0).
//   - Each field is a comma list of `*`, `n`, `a-b`, `*/n`, `a-b/n` and `a/n`
//     (from a to the field's end). Months and weekdays take names (JAN-DEC,
//     SUN-SAT, any case); day of week 7 is Sunday again, so `5-7` and `FRI-SUN`
//     both mean Friday to Sunday. `?` is `*` in the two day fields.
//   - Days, as Vixie cron: when both day fields are written without a leading
//     `*`, a day matches if either matches (`0 0 1 * MON` = the 1st and every
//     Monday); otherwise both must (`0 0 * * MON` = Mondays; `0 0 */2 * MON` =
//     odd-numbered Mondays).
//   - Quartz extensions: day of month `L` (last day), `LW` (last Monday-Friday),
//     `15W` (the Monday-Friday nearest the 15th, same month); day of week `5L`
//     (last Friday), `5#3` (third Friday).
//   - Macros: `@yearly` = `@annually` = `0 0 1 1 *`, `@monthly` = `0 0 1 * *`,
//     `@weekly` = `0 0 * * 0`, `@daily` = `@midnight` = `0 0 * * *`,
//     `@hourly` = `0 * * * *`; `@every DURATION` (see duration.hpp, > 0)
//     ticks at every multiple of DURATION since the Unix epoch, so every
//     daemon computes the same ticks whenever it started.
//   - A schedule that can never fire (`0 0 30 2 *`, `0 0 31 4 *`) is an error
//     at parse time ("never fires"): the parser checks every date of one full
//     400-year Gregorian cycle, after which the calendar repeats exactly.
//   - Errors are errc::invalid_argument, one line naming the token and field:
//     `schedule "*/0 * * * *": step 0 at field 1 (minute)`.
//
// Time zones and DST (`next_tick`)
//   Wall times are read in the job's IANA zone. Where the zone skips or
//   repeats wall time, two kinds of job behave differently:
//   - Wall-time jobs — cron schedules whose hour field does not start with `*`
//     (`30 2 * * *`, `0 9-17 * * *`, `@daily`): a tick whose wall time falls in
//     a skipped stretch (spring forward) runs once, at the first instant after
//     the gap (several ticks in one gap collapse into that one); a tick whose
//     wall time is repeated (fall back) runs once, at its first occurrence.
//   - Elapsed-time jobs — `@every`, and cron schedules whose hour field starts
//     with `*` (`*/15 * * * *`, `0 * * * *`, `@hourly`, `0 */2 * * *`): they
//     tick at every instant whose wall time matches. Skipped wall times simply
//     do not exist (no catch-up run), and in a repeated hour they run in both
//     occurrences. `@every` ignores the zone altogether.
//   next_tick(s, after, zone) returns the first such tick strictly after
//   `after`; cron ticks are whole seconds (a fractional `after` is fine).
#pragma once

#include "conch/logic/schedule/fields.hpp"
#include "conch/logic/schedule/next.hpp"
#include "conch/logic/schedule/parse.hpp"
#include "conch/logic/schedule/text.hpp"
#include "conch/logic/time_zone.hpp"
