// Cron schedules: the language, its errors, and next-tick math across DST.
#include "conch/detail/schedule.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include <absl/time/civil_time.h>
#include <absl/time/time.h>

using conch::errc;
using conch::detail::load_zone;
using conch::detail::next_tick;
using conch::detail::parse_schedule;
using conch::detail::schedule;
using conch::detail::tick_clock;
using conch::detail::zone;

namespace {

schedule parsed(std::string_view text) {
  auto s = parse_schedule(text);
  INFO(text);
  if (!s) FAIL(s.error().message);
  return *s;
}

std::string error_of(std::string_view text) {
  auto s = parse_schedule(text);
  INFO(text);
  REQUIRE_FALSE(s);
  CHECK(s.error().code == errc::invalid_argument);
  CHECK(s.error().message.find('\n') == std::string::npos);
  return s.error().message;
}

zone zone_named(const char* name) {
  auto z = load_zone(name);
  REQUIRE(z);
  return *z;
}

// "2024-03-10 02:30:00" read in zone z (first occurrence if repeated), or in UTC.
tick_clock::time_point at(const char* text, const zone& z = zone::utc()) {
  std::string iso(text);
  iso[10] = 'T';
  absl::CivilSecond c;
  REQUIRE(absl::ParseCivilTime(iso, &c));
  return absl::ToChronoTime(absl::FromCivil(c, z.rules()));
}

// A tick as "YYYY-MM-DD HH:MM:SS +hh:mm" in zone z, so tables read like clocks.
std::string show(tick_clock::time_point t, const zone& z) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Ez", absl::FromChrono(t), z.rules());
}

std::string next_shown(std::string_view spec, tick_clock::time_point after, const zone& z = zone::utc()) {
  auto t = next_tick(parsed(spec), after, z);
  if (!t) FAIL(t.error().message);
  return show(*t, z);
}

}  // namespace

TEST_CASE("schedule: canonical text") {
  struct row { const char* in; const char* out; };
  const row rows[] = {
      {"* * * * *", "* * * * *"},
      {"0 * * * * *", "* * * * *"},
      {"*/15 * * * *", "*/15 * * * *"},
      {"0,15,30,45 * * * *", "*/15 * * * *"},
      {"0-30/5 * * * *", "0-30/5 * * * *"},
      {"5/15 * * * *", "5-50/15 * * * *"},
      {"*/10 * * * * *", "*/10 * * * * *"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
      {"@weekly", "0 0 * * 0"},
      {"@monthly", "0 0 1 * *"},
      {"@yearly", "0 0 1 1 *"},
      {"@ANNUALLY", "0 0 1 1 *"},
      {"@every 90m", "@every 1h30m"},
      {"@every 1.5s", "@every 1s500ms"},
      {"0 9-17 * jan-MAR Mon-Fri", "0 9-17 * 1-3 1-5"},
      {"0 0 * * 7", "0 0 * * 0"},
      {"0 0 * * 5-7", "0 0 * * 0,5,6"},
      {"0 0 * * FRI-SUN", "0 0 * * 0,5,6"},
      {"0 0 ? * MON", "0 0 * * 1"},
      {"0 0-23 * * *", "0 0-23 * * *"},
      {"0 */2 * * *", "0 */2 * * *"},
      {"0 */4,2 * * *", "0 */4,2 * * *"},
      {"0 0 */2 * 1", "0 0 */2 * 1"},
      {"0 0 1-31/2 * 1", "0 0 1-31/2 * 1"},
      {"0 0 L * *", "0 0 L * *"},
      {"0 0 LW,15W * *", "0 0 LW,15W * *"},
      {"0 0 * * 5L", "0 0 * * 5L"},
      {"0 0 * * FRIL", "0 0 * * 5L"},
      {"0 0 * * fri#3,1#1", "0 0 * * 1#1,5#3"},
      {"  1  2\t3 4 5 ", "1 2 3 4 5"},
      {"1,2,3,5 * * * *", "1-3,5 * * * *"},
  };
  for (const auto& r : rows) {
    INFO(r.in);
    const schedule s = parsed(r.in);
    CHECK(s.to_string() == r.out);
    CHECK(parsed(s.to_string()) == s);
  }
  CHECK(parsed("@hourly") == parsed("0 * * * *"));
  CHECK(parsed("0 0 * * * *") == parsed("0 * * * *"));
  CHECK_FALSE(parsed("0 0-23 * * *") == parsed("0 * * * *"));  // DST behaviour differs
}

TEST_CASE("schedule: errors name the token and the field") {
  CHECK(error_of("*/0 * * * *") == "schedule \"*/0 * * * *\": step 0 at field 1 (minute)");
  CHECK(error_of("") == "schedule \"\": empty");
  CHECK(error_of("   ") == "schedule \"   \": empty");
  CHECK(error_of("* * * *") ==
        "schedule \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with seconds "
        "first), got 4");
  CHECK(error_of("0 0 32 * *") == "schedule \"0 0 32 * *\": \"32\" out of range 1-31 at field 3 (day of month)");
  CHECK(error_of("60 * * * * *") == "schedule \"60 * * * * *\": \"60\" out of range 0-59 at field 1 (second)");
  CHECK(error_of("0 24 * * *") == "schedule \"0 24 * * *\": \"24\" out of range 0-23 at field 2 (hour)");
  CHECK(error_of("0 0 * FOO *") == "schedule \"0 0 * FOO *\": unknown name \"FOO\" at field 4 (month)");
  CHECK(error_of("0 0 * * 8") == "schedule \"0 0 * * 8\": \"8\" out of range 0-7 at field 5 (day of week)");
  CHECK(error_of("x * * * *") == "schedule \"x * * * *\": \"x\" is not a number at field 1 (minute)");
  CHECK(error_of("5-2 * * * *") == "schedule \"5-2 * * * *\": range \"5-2\" runs backwards at field 1 (minute)");
  CHECK(error_of("1,,2 * * * *") == "schedule \"1,,2 * * * *\": empty list element in \"1,,2\" at field 1 (minute)");
  CHECK(error_of("*/x * * * *") == "schedule \"*/x * * * *\": step \"x\" is not a number at field 1 (minute)");
  CHECK(error_of("*/61 * * * *") ==
        "schedule \"*/61 * * * *\": step 61 larger than the field's range 0-59 at field 1 (minute)");
  CHECK(error_of("0 0 30 2 *") ==
        "schedule \"0 0 30 2 *\": never fires: no date matches its day-of-month, month and day-of-week fields");
  CHECK(error_of("0 0 31 4,6,9,11 *").find("never fires") != std::string::npos);
  CHECK(error_of("@reboot").find("unknown macro \"@reboot\"") != std::string::npos);
  CHECK(error_of("@every") == "schedule \"@every\": @every needs a duration, e.g. \"@every 10m\"");
  CHECK(error_of("@every 0s") == "schedule \"@every 0s\": @every duration \"0s\" must be greater than zero");
  CHECK(error_of("@every 5x") ==
        "schedule \"@every 5x\": @every duration \"5x\": unknown unit \"x\" at position 2 (use ms, s, m, h)");
  CHECK(error_of("@daily 5") == "schedule \"@daily 5\": unexpected \"5\" after \"@daily\"");
  CHECK(error_of("0 0 15W * MONW").find("at field 5 (day of week)") != std::string::npos);
  CHECK(error_of("0 0 * * 5#6") ==
        "schedule \"0 0 * * 5#6\": occurrence \"6\" out of range 1-5 in \"5#6\" at field 5 (day of week)");
  CHECK(error_of("0 0 * 5#2 *").find("\"#\" is only allowed in the day-of-week field") != std::string::npos);
  CHECK(error_of("0 0 5L * *").find("at field 3 (day of month)") != std::string::npos);
  CHECK(error_of("0 ? * * *").find("at field 2 (hour)") != std::string::npos);
  CHECK(error_of("0 0 1 * * * *").find("got 7") != std::string::npos);
}

TEST_CASE("schedule: next tick in UTC") {
  const auto noon = at("2024-01-15 12:00:00");  // a Monday
  CHECK(next_shown("*/15 * * * *", noon) == "2024-01-15 12:15:00 +00:00");
  CHECK(next_shown("*/15 * * * *", noon - std::chrono::seconds(1)) == "2024-01-15 12:00:00 +00:00");
  CHECK(next_shown("* * * * * *", noon) == "2024-01-15 12:00:01 +00:00");
  CHECK(next_shown("@daily", noon) == "2024-01-16 00:00:00 +00:00");
  CHECK(next_shown("@yearly", noon) == "2025-01-01 00:00:00 +00:00");
  CHECK(next_shown("0 0 * * FRI", noon) == "2024-01-19 00:00:00 +00:00");
  CHECK(next_shown("30 4 1 * *", noon) == "2024-02-01 04:30:00 +00:00");
}
