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

// absl::ParseDuration says only yes or no, so a malformed text gets one
// message (quoting the text) instead of naming the bad token and its position.
TEST_CASE("durations: errors quote the text and say why") {
  const std::string malformed =
      "not a number with a unit (ms, s, m, h, as in 1h30m), nor a bare number of seconds";
  CHECK(error_of("") == "duration \"\": empty");
  for (const char* text : {"10x", "1h30", "10 s", "h", "1d", "1s.", "inf", "1.5.5", "5s5"}) {
    INFO(text);
    CHECK(error_of(text) == "duration \"" + std::string(text) + "\": " + malformed);
  }
  CHECK(error_of("\x01s") == "duration \"\\x01s\": " + malformed);
  CHECK(error_of("-5s") ==
        "duration \"-5s\": sign \"-\" at position 1 (durations cannot be negative)");
  CHECK(error_of("+5s") == "duration \"+5s\": sign \"+\" at position 1");
  CHECK(error_of("1.0005s") == "duration \"1.0005s\": finer than a millisecond");
  CHECK(error_of("99999999999999999h").find("too large") != std::string::npos);
  CHECK(error_of("999999999999h").find("too large") != std::string::npos);
  CHECK(error_of("1.5ms").find("finer than a millisecond") != std::string::npos);
  CHECK(error_of("1us").find("finer than a millisecond") != std::string::npos);
}

TEST_CASE("durations: absl's finer units count when they make whole milliseconds") {
  CHECK(parse_duration("1000us").value() == 1ms);
  CHECK(parse_duration("2000000ns").value() == 2ms);
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
