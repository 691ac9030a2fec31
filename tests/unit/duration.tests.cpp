// Human durations: what flags and `@every` accept, and how they say no.
#include "conch/logic/duration.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <rapidcheck/catch.h>
#include <string>

using conch::errc;
using conch::detail::format_duration;
using conch::detail::parse_duration;
using namespace std::chrono_literals;

namespace {
std::string error_of(std::string_view text) {
  auto r = parse_duration(text);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::invalid_argument);
  CHECK(r.error().message.find('\n') == std::string::npos);
  return r.error().message;
}
}  // namespace

TEST_CASE("durations: units, compounds, fractions, bare seconds") {
  struct row {
    const char* text;
    std::chrono::milliseconds want;
  };
  const row rows[] = {
      {"500ms", 500ms},
      {"10s", 10s},
      {"2m", 2min},
      {"1h30m", 90min},
      {"1.5s", 1500ms},
      {"10", 10s},
      {"0", 0ms},
      {"0s", 0ms},
      {"1.5", 1500ms},
      {"0.25m", 15s},
      {"1h1m1s1ms", 3661001ms},
      {".5s", 500ms},
      {"2h", 2h},
      {"1.000s", 1s},
      {"3m5s", 185s},
      {"1s500ms", 1500ms},
      {"0.001s", 1ms},
      {"1.0000000000s", 1s},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto d = parse_duration(r.text);
    REQUIRE(d);
    CHECK(*d == r.want);
  }
}

TEST_CASE("durations: errors name the token and its position") {
  CHECK(error_of("") == "duration \"\": empty");
  CHECK(error_of("10x") == "duration \"10x\": unknown unit \"x\" at position 3 (use ms, s, m, h)");
  CHECK(error_of("1h30") ==
        "duration \"1h30\": number \"30\" at position 3 has no unit (ms, s, m, h)");
  CHECK(error_of("-5s") ==
        "duration \"-5s\": sign \"-\" at position 1 (durations cannot be negative)");
  CHECK(error_of("1.0005s") ==
        "duration \"1.0005s\": \"1.0005s\" at position 1 is finer than a millisecond");
  CHECK(error_of("10 s") == "duration \"10 s\": unexpected \" \" at position 3");
  CHECK(error_of("h") == "duration \"h\": expected a number before \"h\" at position 1");
  CHECK(error_of("1d") == "duration \"1d\": unknown unit \"d\" at position 2 (use ms, s, m, h)");
  CHECK(error_of("99999999999999999h").find("too large") != std::string::npos);
  CHECK(error_of("999999999999h").find("too large") != std::string::npos);
  CHECK(error_of("1.5ms").find("finer than a millisecond") != std::string::npos);
  CHECK(error_of("1s.") == "duration \"1s.\": expected a number at position 3");
  CHECK(error_of("\x01s") ==
        "duration \"\\x01s\": expected a number before \"\\x01\" at position 1");
}

TEST_CASE("durations: format is canonical and parses back") {
  CHECK(format_duration(0ms) == "0s");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(1500ms) == "1s500ms");
  CHECK(format_duration(48h) == "48h");
  CHECK(format_duration(-1500ms) == "-1s500ms");
  rc::prop("parse(format(d)) == d", [] {
    const auto ms = *rc::gen::inRange<std::int64_t>(0, std::int64_t{1} << 50);
    const auto d = std::chrono::milliseconds(ms);
    const auto back = parse_duration(format_duration(d));
    RC_ASSERT(back.ok());
    RC_ASSERT(*back == d);
  });
}
