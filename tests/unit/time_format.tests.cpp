#include "conch/logic/time_format.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

using namespace conch::detail;
using namespace std::chrono;

TEST_CASE("RFC 3339 UTC: written plainly, milliseconds only when present", "[time]") {
  const wall_time t = sys_days{2026y / 11 / 23} + 10h + 30min;
  CHECK(format_rfc3339(t) == "2026-11-23T10:30:00Z");
  CHECK(format_rfc3339(t + 7ms) == "2026-11-23T10:30:00.007Z");
  CHECK(format_rfc3339(wall_time{}) == "1970-01-01T00:00:00Z");
  CHECK(format_rfc3339(sys_days{1969y / 12 / 31} + 23h + 59min + 59s + 999ms) ==
        "1969-12-31T23:59:59.999Z");
}

TEST_CASE("RFC 3339 parsing takes any offset and fraction", "[time]") {
  const wall_time t = sys_days{2026y / 11 / 23} + 10h + 30min;
  CHECK(*parse_rfc3339("2026-11-23T10:30:00Z") == t);
  CHECK(*parse_rfc3339("2026-11-23t10:30:00z") == t);
  CHECK(*parse_rfc3339("2026-11-23T12:30:00+02:00") == t);
  CHECK(*parse_rfc3339("2026-11-23T05:00:00-05:30") == t);
  CHECK(*parse_rfc3339("2026-11-23T10:30:00.1239999Z") == t + 123ms);
  CHECK(*parse_rfc3339("2024-02-29T00:00:00Z") == wall_time{sys_days{2024y / 2 / 29}});
}

TEST_CASE("malformed times are errors naming the text", "[time]") {
  CHECK(parse_rfc3339("yesterday").error().message ==
        "time \"yesterday\": expected YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)");
  CHECK(parse_rfc3339("2025-02-29T00:00:00Z").error().message ==
        "time \"2025-02-29T00:00:00Z\": no such date or time");
  for (auto bad : {"", "2026-11-23", "2026-11-23T10:30:00", "2026-11-23T10:30:00.Z",
                   "2026-13-01T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:60:00Z",
                   "2026-11-23T10:30:60Z", "2026-11-23T10:30:00+2:00", "2026-11-23T10:30:00+24:00",
                   "2026-11-23T10:30:00Zjunk", "-026-11-23T10:30:00Z", "2026-11-23 10:30:00Z"}) {
    INFO(bad);
    CHECK_FALSE(parse_rfc3339(bad).ok());
  }
}

TEST_CASE("ticks are fixed-width basic ISO 8601", "[time]") {
  const tick_time t = sys_days{2026y / 11 / 23} + 10h + 30min;
  CHECK(format_tick(t) == "20261123T103000Z");
  CHECK(*parse_tick("20261123T103000Z") == t);
  CHECK(format_tick(tick_time{}) == "19700101T000000Z");
  CHECK(parse_tick("2026-11-23T10:30:00Z").error().message ==
        "tick \"2026-11-23T10:30:00Z\": expected YYYYMMDDTHHMMSSZ");
  CHECK_FALSE(parse_tick("20260229T000000Z").ok());
  CHECK(formattable(wall_time{sys_days{year{9999} / 12 / 31}}));
  CHECK_FALSE(formattable(wall_time{sys_days{year{10000} / 1 / 1}}));
  CHECK_FALSE(formattable(wall_time{sys_days{year{-1} / 12 / 31}}));
}

TEST_CASE("time formats round-trip over years 0000-9999", "[time][property]") {
  const auto lo = duration_cast<milliseconds>(sys_days{year{0} / 1 / 1}.time_since_epoch()).count();
  const auto hi =
      duration_cast<milliseconds>(sys_days{year{10000} / 1 / 1}.time_since_epoch()).count();
  rc::prop("rfc3339", [=] {
    const wall_time t{milliseconds{*rc::gen::inRange<long long>(lo, hi)}};
    RC_ASSERT(*parse_rfc3339(format_rfc3339(t)) == t);
  });
  rc::prop("tick", [=] {
    const tick_time t{seconds{*rc::gen::inRange<long long>(lo / 1000, hi / 1000)}};
    RC_ASSERT(*parse_tick(format_tick(t)) == t);
  });
  rc::prop("parsers are total", [](const std::string& junk) {
    auto t = parse_rfc3339(junk);
    auto k = parse_tick(junk);
    if (k) RC_ASSERT(format_tick(*k) == junk);
  });
}
