// conchd's log lines: one per event, human or JSON.
#include "conch/logic/cron_event.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

using namespace std::chrono_literals;
using conch::cron_event;

namespace {
const conch::detail::wall_time when{std::chrono::sys_days{std::chrono::year{2026} / 1 / 1} + 250ms};
}

TEST_CASE("a human log line names the event and its fields", "[cron]") {
  cron_event e;
  e.what = cron_event::kind::claimed;
  e.job = "backup";
  e.tick = "2026-01-01T00:00:00Z";
  e.rev = 42;
  CHECK(conch::detail::human_log_line(e, when) ==
        "2026-01-01T00:00:00.250Z claim job=backup tick=2026-01-01T00:00:00Z rev=42");
  cron_event r;
  r.what = cron_event::kind::finished;
  r.job = "nightly backup";
  r.rev = 42;
  r.exit_code = 3;
  r.took = 1500ms;
  CHECK(conch::detail::human_log_line(r, when) ==
        "2026-01-01T00:00:00.250Z result job=\"nightly backup\" rev=42 exit=3 took=1500ms");
}

TEST_CASE("a JSON log line is one object with the same fields", "[cron]") {
  cron_event e;
  e.what = cron_event::kind::job_corrupt;
  e.job = "x";
  e.message = "line1\nline2";
  const auto line = conch::detail::json_log_line(e, when);
  CHECK(line.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  CHECK(j["event"] == "corrupt");
  CHECK(j["job"] == "x");
  CHECK(j["message"] == "line1\nline2");
  CHECK(j["time"] == "2026-01-01T00:00:00.250Z");
}
