// Cron job controls, pure: the record fields read compatibly, policies and
// run ids parsed strictly, the table's pause and `cron run` bookkeeping.
#include "conch/detail/cron_table.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_policy.hpp"
#include "conch/logic/cron_view.hpp"
#include "conch/logic/records.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using conch::errc;
using conch::detail::cron_concurrency;
using conch::detail::job_record;
using conch::detail::read_cron_job;
using conch::detail::run_record;
using sys_ms = std::chrono::sys_time<std::chrono::milliseconds>;

namespace {
/// A job record as the version before the controls wrote it.
const std::string old_job = R"({"name":"backup","schedule":"@every 10s","tz":"","argv":["true"],)"
                            R"("created":"2026-01-01T00:00:00.000Z","version":"0.9"})";

std::string with(const std::string& field, nlohmann::json value) {
  auto j = nlohmann::json::parse(old_job);
  j[field] = std::move(value);
  return j.dump();
}

sys_ms at_ms(std::int64_t unix_ms) { return sys_ms{std::chrono::milliseconds{unix_ms}}; }
}  // namespace

TEST_CASE("a job record from before the controls reads with their defaults", "[cron]") {
  auto job = read_cron_job("conch/", "conch/cron/jobs/backup", old_job);
  REQUIRE(job);
  CHECK(job->concurrency == cron_concurrency::forbid);
  CHECK(job->timeout == 0ms);
  CHECK_FALSE(job->paused());
  CHECK(job->record.run_request.empty());
  CHECK(job->running_key == "conch/cron/running/backup");
}

TEST_CASE("the controls round-trip through the job record", "[cron]") {
  auto job = read_cron_job("conch/", "conch/cron/jobs/backup", old_job);
  REQUIRE(job);
  job_record r = job->record;
  r.concurrency = "replace";
  r.timeout_ms = 90'000;
  r.paused = true;
  r.run_request = "20260101T000000Z-run250";
  auto back = read_cron_job("conch/", "conch/cron/jobs/backup", conch::detail::encode_record(r));
  REQUIRE(back);
  CHECK(back->record == r);
  CHECK(back->concurrency == cron_concurrency::replace);
  CHECK(back->timeout == 90s);
  CHECK(back->paused());
}

TEST_CASE("unknown or corrupt control values make the job corrupt, naming the field", "[cron]") {
  struct bad {
    std::string field;
    nlohmann::json value;
    std::string says;
  };
  const std::vector<bad> cases{
      {"concurrency", "sometimes", "sometimes"},
      {"concurrency", 3, "concurrency"},
      {"timeout_ms", -5, "negative"},
      {"timeout_ms", "5s", "timeout_ms"},
      {"paused", "yes", "paused"},
      {"run_request", "20260101T000000Z", "run id"},
      {"run_request", "tomorrow", "run request"},
      {"run_request", "20260101T000000Z-runabc", "run"},
  };
  for (const auto& c : cases) {
    INFO(c.field << " = " << c.value.dump());
    auto job = read_cron_job("conch/", "conch/cron/jobs/backup", with(c.field, c.value));
    REQUIRE_FALSE(job);
    CHECK(job.error().code == errc::corrupt);
    CHECK(job.error().message.find(c.says) != std::string::npos);
  }
}

TEST_CASE("a result from before the controls reads as run, not timed out", "[cron]") {
  auto r = conch::detail::decode_record<run_record>(
      R"({"name":"backup","tick":"2026-01-01T00:00:00Z","exit_code":0,"output":"ok"})");
  REQUIRE(r);
  CHECK(r->skipped.empty());
  CHECK_FALSE(r->timed_out);
}

TEST_CASE("concurrency policies parse strictly; empty is forbid", "[cron]") {
  CHECK(*conch::detail::parse_concurrency("") == cron_concurrency::forbid);
  CHECK(*conch::detail::parse_concurrency("forbid") == cron_concurrency::forbid);
  CHECK(*conch::detail::parse_concurrency("allow") == cron_concurrency::allow);
  CHECK(*conch::detail::parse_concurrency("replace") == cron_concurrency::replace);
  for (const char* bad : {"Forbid", "skip", " allow", "replace\n"}) {
    auto c = conch::detail::parse_concurrency(bad);
    REQUIRE_FALSE(c);
    CHECK(c.error().code == errc::invalid_argument);
  }
}

TEST_CASE("run ids sort between their second's tick and the next, and read back", "[cron]") {
  const auto asked = at_ms(1'767'225'600'250);  // 2026-01-01T00:00:00.250Z
  const std::string id = conch::detail::run_request_id(asked);
  CHECK(id == "20260101T000000Z-run250");
  const std::string tick =
      conch::detail::format_tick(std::chrono::floor<std::chrono::seconds>(asked));
  const std::string next =
      conch::detail::format_tick(std::chrono::floor<std::chrono::seconds>(asked) + 1s);
  CHECK(tick < id);
  CHECK(id < next);
  auto back = conch::detail::parse_run_id(id);
  REQUIRE(back);
  CHECK(back->manual);
  CHECK(conch::detail::run_request_time(*back) == asked);
  auto plain = conch::detail::parse_run_id(tick);
  REQUIRE(plain);
  CHECK_FALSE(plain->manual);
  CHECK_FALSE(conch::detail::parse_run_id(tick + "-run25"));
  CHECK_FALSE(conch::detail::parse_run_id(tick + "x"));
}

TEST_CASE("a paused job has no next tick in the table; resumed, it has", "[cron]") {
  std::vector<conch::cron_event> said;
  conch::detail::cron_table<std::chrono::system_clock::time_point> table{
      "conch/", [&](conch::cron_event e) { said.push_back(std::move(e)); }};
  const auto now = std::chrono::system_clock::time_point{at_ms(1'767'225'600'000)};
  conch::key_value kv{.key = "conch/cron/jobs/backup", .value = with("paused", true)};
  kv.mod_revision = 2;
  table.put(kv, now);
  CHECK_FALSE(table.earliest());
  kv.value = with("paused", false);
  kv.mod_revision = 3;
  table.put(kv, now);
  CHECK(table.earliest());
}

TEST_CASE("the table fires a `cron run` once, and only a recent one", "[cron]") {
  conch::detail::cron_table<std::chrono::system_clock::time_point> table{"conch/",
                                                                         [](conch::cron_event) {}};
  const auto asked = at_ms(1'767'225'600'250);
  const std::string id = conch::detail::run_request_id(asked);
  conch::key_value kv{.key = "conch/cron/jobs/backup", .value = with("run_request", id)};
  kv.mod_revision = 2;
  std::vector<std::string> fired;
  auto fire = [&](auto, conch::revision rev, conch::detail::tick_time, const std::string& run) {
    CHECK(rev == 2);
    fired.push_back(run);
  };
  table.put(kv, std::chrono::system_clock::time_point{asked} + 1s);
  table.fire_requested(fire);
  table.fire_requested(fire);
  CHECK(fired == std::vector<std::string>{id});
  // The same request seen again (another change of the job): not again.
  kv.mod_revision = 3;
  kv.value = with("paused", true);
  auto j = nlohmann::json::parse(kv.value);
  j["run_request"] = id;
  kv.value = j.dump();
  table.put(kv, std::chrono::system_clock::time_point{asked} + 2s);
  table.fire_requested(fire);
  CHECK(fired.size() == 1);

  // Seen first more than a minute late (a daemon that was down): left alone.
  conch::detail::cron_table<std::chrono::system_clock::time_point> late{"conch/",
                                                                        [](conch::cron_event) {}};
  late.put(kv, std::chrono::system_clock::time_point{asked} + 61s);
  late.fire_requested(fire);
  CHECK(fired.size() == 1);
}
