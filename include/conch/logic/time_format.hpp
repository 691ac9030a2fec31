// conch/logic/time_format.hpp — the two ways conch writes an instant.
//
// - RFC 3339 UTC in records ("2026-11-23T10:30:00Z", ".123" when the
//   milliseconds are not zero): readable by people, `date -d` and every JSON tool.
// - Cron ticks in keys ("20261123T103000Z"): ISO 8601 basic format, always
//   16 characters, so the lexical order of keys is the time order of ticks.
// Both cover years 0000-9999 (anything a clock will say); parsing anything
// else is an error value naming the text, never an exception.
#pragma once

#include "conch/result.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace conch::detail {

/// Wall time as records carry it: UTC, millisecond grain.
using wall_time = std::chrono::sys_time<std::chrono::milliseconds>;
/// A cron tick: the scheduled instant, UTC, whole seconds.
using tick_time = std::chrono::sys_seconds;

namespace time_format_impl {

struct civil {
  int year, month, day, hour, minute, second, millis;
};

inline civil split(wall_time t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  return {int(ymd.year()),
          int(unsigned(ymd.month())),
          int(unsigned(ymd.day())),
          int(hms.hours().count()),
          int(hms.minutes().count()),
          int(hms.seconds().count()),
          int(hms.subseconds().count())};
}

/// Reads exactly `n` decimal digits at `at`, or -1.
inline int digits(std::string_view s, std::size_t at, std::size_t n) {
  if (at + n > s.size()) return -1;
  int v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/// The instant of a civil UTC date-time, if it exists.
inline result<wall_time> join(const civil& c, std::string_view text, const char* what) {
  using namespace std::chrono;
  const year_month_day ymd{year{c.year}, month{unsigned(c.month)}, day{unsigned(c.day)}};
  if (c.year < 0 || !ymd.ok() || c.hour > 23 || c.minute > 59 || c.second > 59)
    return error{errc::invalid_argument,
                 std::string(what) + " \"" + std::string(text) + "\": no such date or time"};
  return wall_time{sys_days{ymd} + hours{c.hour} + minutes{c.minute} + seconds{c.second} +
                   milliseconds{c.millis}};
}

inline error malformed(std::string_view text, const char* what, const char* expected) {
  return error{errc::invalid_argument,
               std::string(what) + " \"" + std::string(text) + "\": expected " + expected};
}

}  // namespace time_format_impl

inline std::string format_rfc3339(wall_time t) {
  const auto c = time_format_impl::split(t);
  char buf[48];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", c.year, c.month, c.day,
                        c.hour, c.minute, c.second);
  if (c.millis != 0) n += std::snprintf(buf + n, sizeof buf - n, ".%03d", c.millis);
  std::snprintf(buf + n, sizeof buf - n, "Z");
  return buf;
}

/// Accepts any RFC 3339 date-time: 'T' or 't', any number of fraction digits
/// (kept to the millisecond, truncated), and 'Z', 'z' or a ±hh:mm offset.
inline result<wall_time> parse_rfc3339(std::string_view s) {
  using time_format_impl::digits;
  constexpr const char* what = "time";
  constexpr const char* shape = "YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)";
  time_format_impl::civil c{digits(s, 0, 4),
                            digits(s, 5, 2),
                            digits(s, 8, 2),
                            digits(s, 11, 2),
                            digits(s, 14, 2),
                            digits(s, 17, 2),
                            0};
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':' || c.year < 0 || c.month < 0 || c.day < 0 || c.hour < 0 ||
      c.minute < 0 || c.second < 0)
    return time_format_impl::malformed(s, what, shape);
  std::size_t at = 19;
  if (s[at] == '.') {
    const std::size_t first = ++at;
    int scale = 100;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
      c.millis += (s[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == first) return time_format_impl::malformed(s, what, shape);
  }
  std::chrono::minutes offset{0};
  if (at + 1 == s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    // UTC
  } else if (at + 6 == s.size() && (s[at] == '+' || s[at] == '-') && s[at + 3] == ':') {
    const int oh = digits(s, at + 1, 2), om = digits(s, at + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return time_format_impl::malformed(s, what, shape);
    offset = std::chrono::minutes{oh * 60 + om} * (s[at] == '-' ? -1 : 1);
  } else {
    return time_format_impl::malformed(s, what, shape);
  }
  auto local = time_format_impl::join(c, s, what);
  if (!local) return std::move(local).error();
  return *local - offset;
}

inline std::string format_tick(tick_time t) {
  const auto c = time_format_impl::split(t);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02dZ", c.year, c.month, c.day, c.hour,
                c.minute, c.second);
  return buf;
}

/// Only the exact form format_tick writes: one tick, one spelling.
inline result<tick_time> parse_tick(std::string_view s) {
  using time_format_impl::digits;
  const time_format_impl::civil c{digits(s, 0, 4),
                                  digits(s, 4, 2),
                                  digits(s, 6, 2),
                                  digits(s, 9, 2),
                                  digits(s, 11, 2),
                                  digits(s, 13, 2),
                                  0};
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || c.year < 0 || c.month < 0 || c.day < 0 ||
      c.hour < 0 || c.minute < 0 || c.second < 0)
    return time_format_impl::malformed(s, "tick", "YYYYMMDDTHHMMSSZ");
  auto t = time_format_impl::join(c, s, "tick");
  if (!t) return std::move(t).error();
  return std::chrono::time_point_cast<std::chrono::seconds>(*t);
}

/// Whether `t` can be written in the fixed-width forms above.
inline bool formattable(wall_time t) {
  using namespace std::chrono;
  const year y = year_month_day{floor<days>(t)}.year();
  return y >= year{0} && y <= year{9999};
}

}  // namespace conch::detail
