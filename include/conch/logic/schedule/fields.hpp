// conch/logic/schedule/fields.hpp — what a parsed schedule is, and which
// days it matches. See schedule.hpp for the whole story.
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <string>

namespace conch::detail {

/// A set of small non-negative integers (< 64): the values one cron field allows.
struct value_set {
  std::uint64_t bits = 0;

  constexpr bool has(int v) const noexcept { return v >= 0 && v < 64 && ((bits >> v) & 1U); }
  constexpr void add(int v) noexcept { bits |= std::uint64_t{1} << v; }
  constexpr bool empty() const noexcept { return bits == 0; }
  /// The smallest member >= v, or -1.
  constexpr int next(int v) const noexcept {
    if (v >= 64) return -1;
    const std::uint64_t rest = v <= 0 ? bits : bits & (~std::uint64_t{0} << v);
    return rest ? std::countr_zero(rest) : -1;
  }
  friend constexpr bool operator==(value_set, value_set) = default;
};

/// The six cron fields, in the order a 6-field schedule writes them.
enum class cron_field : std::uint8_t { second, minute, hour, day_of_month, month, day_of_week };

struct cron_field_info {
  int min;
  int max;           ///< largest value accepted in the text (7 for day of week: Sunday again)
  int step_end;      ///< where `a/n` and `*/n` stop
  const char* name;  ///< as error messages say it
};

inline constexpr cron_field_info field_info(cron_field f) noexcept {
  switch (f) {
    case cron_field::second:
      return {0, 59, 59, "second"};
    case cron_field::minute:
      return {0, 59, 59, "minute"};
    case cron_field::hour:
      return {0, 23, 23, "hour"};
    case cron_field::day_of_month:
      return {1, 31, 31, "day of month"};
    case cron_field::month:
      return {1, 12, 12, "month"};
    case cron_field::day_of_week:
      return {0, 7, 6, "day of week"};
  }
  return {0, 0, 0, "?"};
}

/// A parsed schedule: either a cron expression (the sets of seconds, minutes,
/// hours, days, months and weekdays it allows) or a fixed period anchored at
/// the Unix epoch (`@every`). Equality is semantic: `0 * * * *`,
/// `0 0 * * * *` and `@hourly` are equal. Build one with `parse_schedule`.
struct schedule {
  enum class form_t : std::uint8_t { cron, every };
  form_t form = form_t::cron;
  std::chrono::milliseconds period{0};  ///< `@every`: ticks at multiples of this since the epoch

  value_set seconds, minutes, hours;  ///< 0-59, 0-59, 0-23
  value_set days_of_month;            ///< 1-31
  value_set months;                   ///< 1-12
  value_set days_of_week;             ///< 0-6, Sunday = 0

  // Fields written starting with `*` (or `?`). Vixie cron gives that spelling
  // meaning: a `*` day field makes the day rule "both match" instead of
  // "either matches", and a `*` hour makes the job follow elapsed time
  // across DST changes instead of wall-clock time.
  bool hour_star = false;
  bool dom_star = false;
  bool dow_star = false;

  // Quartz-style day extensions.
  bool last_day = false;                   ///< dom `L`: the month's last day
  bool last_weekday = false;               ///< dom `LW`: the month's last Monday-Friday
  value_set nearest_weekday;               ///< dom `nW`: the weekday nearest the nth, same month
  value_set last_of_weekday;               ///< dow `dL`: the month's last weekday d
  std::array<value_set, 7> nth_weekday{};  ///< dow `d#k`: bit k of entry d, k in 1-5

  /// True when ticks follow real elapsed time across DST changes (`@every`,
  /// and cron jobs whose hour field is `*`-based) rather than wall time.
  bool follows_elapsed_time() const noexcept { return form == form_t::every || hour_star; }

  /// Canonical text: `parse_schedule(s.to_string()) == s`. Defined in schedule_text.hpp.
  std::string to_string() const;

  friend bool operator==(const schedule&, const schedule&) = default;
};

// ---- the proleptic Gregorian calendar, just what day matching needs ----

inline constexpr bool is_leap_year(std::int64_t y) noexcept {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

inline constexpr int days_in_month(std::int64_t y, int m) noexcept {
  constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

/// 0 = Sunday ... 6 = Saturday.
inline constexpr int weekday(std::int64_t y, int m, int d) noexcept {
  // Days since 1970-01-01 (H. Hinnant's days_from_civil), then 1970-01-01 was a Thursday.
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = era * 146097 + doe - 719468;
  return static_cast<int>(((days + 4) % 7 + 7) % 7);
}

/// The day `nW` means: the Monday-Friday nearest day n, never leaving the month;
/// 0 when the month has no day n.
inline constexpr int nearest_weekday_to(std::int64_t y, int m, int n) noexcept {
  const int last = days_in_month(y, m);
  if (n > last) return 0;
  switch (weekday(y, m, n)) {
    case 6:
      return n == 1 ? 3 : n - 1;  // Saturday: Friday before, or Monday the 3rd
    case 0:
      return n == last ? n - 2 : n + 1;  // Sunday: Monday after, or Friday before
    default:
      return n;
  }
}

/// Whether the schedule's day fields (day of month, month aside, day of week)
/// allow the date y-m-d. Vixie cron's rule: when either day field is written
/// starting with `*`, both must match; otherwise either may.
inline bool day_matches(const schedule& s, std::int64_t y, int m, int d) noexcept {
  const int last = days_in_month(y, m);
  const int wd = weekday(y, m, d);

  bool dom = s.days_of_month.has(d) || (s.last_day && d == last);
  if (!dom && s.last_weekday) dom = d == nearest_weekday_to(y, m, last);
  if (!dom && !s.nearest_weekday.empty()) {
    for (int n = s.nearest_weekday.next(1); n > 0 && !dom; n = s.nearest_weekday.next(n + 1)) {
      dom = nearest_weekday_to(y, m, n) == d;
    }
  }

  const bool dow = s.days_of_week.has(wd) || (s.last_of_weekday.has(wd) && d + 7 > last) ||
                   s.nth_weekday[static_cast<std::size_t>(wd)].has((d - 1) / 7 + 1);

  return s.dom_star || s.dow_star ? dom && dow : dom || dow;
}

}  // namespace conch::detail
