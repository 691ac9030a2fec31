// Stored cron jobs: checking what users add, reading what etcd holds, the
// txns of a tick and the runs a listing shows. Pure: no etcd.
#include "conch/logic/cron_job.hpp"

#include "conch/cron_jobs.hpp"
#include "conch/logic/cron_agenda.hpp"
#include "conch/logic/cron_txn.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using conch::errc;
using conch::key_value;
using conch::detail::job_record;
using conch::detail::make_cron_job;
using conch::detail::read_cron_job;
using conch::detail::run_state;
using sys = std::chrono::system_clock;

namespace {
job_record rec(std::string name, std::string schedule, std::string tz = "",
               std::vector<std::string> argv = {"true"}) {
  job_record r{};
  r.name = std::move(name);
  r.schedule = std::move(schedule);
  r.tz = std::move(tz);
  r.argv = std::move(argv);
  return r;
}
sys::time_point at(std::int64_t unix_seconds) {
  return sys::time_point{std::chrono::seconds{unix_seconds}};
}
}  // namespace

TEST_CASE("a valid job gets its keys under the prefix", "[cron]") {
  auto j = make_cron_job("conch/", rec("nightly backup", "0 3 * * *", "Europe/Berlin"));
  REQUIRE(j);
  CHECK(j->key == "conch/cron/jobs/nightly backup");
  CHECK(j->fire_dir == "conch/cron/fire/nightly backup/");
  CHECK(j->runs_dir == "conch/cron/runs/nightly backup/");
  auto slash = make_cron_job("p/", rec("a/b", "@hourly"));
  REQUIRE(slash);
  CHECK(slash->fire_dir == "p/cron/fire/a%2Fb/");
}

TEST_CASE("bad jobs are refused with the reason", "[cron]") {
  auto bad_schedule = make_cron_job("conch/", rec("x", "61 * * * *"));
  REQUIRE_FALSE(bad_schedule);
  CHECK(bad_schedule.error().code == errc::invalid_argument);
  CHECK(bad_schedule.error().message.find("61") != std::string::npos);

  auto bad_zone = make_cron_job("conch/", rec("x", "@daily", "Mars/Olympus"));
  REQUIRE_FALSE(bad_zone);
  CHECK(bad_zone.error().message.find("Mars/Olympus") != std::string::npos);

  CHECK_FALSE(make_cron_job("conch/", rec("x", "@daily", "", {})));
  CHECK_FALSE(make_cron_job("conch/", rec("", "@daily")));
  auto fine = make_cron_job("conch/", rec("x", "@every 1500ms"));
  REQUIRE_FALSE(fine);
  CHECK(fine.error().message.find("whole seconds") != std::string::npos);
  CHECK(make_cron_job("conch/", rec("x", "@every 2s")));
}

TEST_CASE("a stored job that cannot be read is corrupt, never a crash", "[cron]") {
  const std::string key = "conch/cron/jobs/x";
  auto good = read_cron_job("conch/", key, conch::detail::encode_record(rec("x", "@every 1s")));
  REQUIRE(good);
  CHECK(good->name() == "x");
  for (std::string value : {"", "not json", "{}", "[1,2]", R"({"name":"x"})",
                            R"({"name":"x","schedule":"@bogus","argv":["true"]})",
                            R"({"name":"x","schedule":"@daily","tz":"No/Where","argv":["true"]})",
                            R"({"name":"y","schedule":"@daily","argv":["true"]})",
                            R"({"name":"x","schedule":"@daily","argv":[]})",
                            R"({"name":"x","schedule":"@daily","argv":"true"})"}) {
    auto r = read_cron_job("conch/", key, value);
    INFO(value);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::corrupt);
    CHECK_FALSE(r.error().message.empty());
  }
  CHECK_FALSE(read_cron_job("conch/", "conch/cron/jobs/a/b",
                            conch::detail::encode_record(rec("a/b", "@daily"))));
}

TEST_CASE("@every ticks are epoch multiples, the same for every daemon", "[cron]") {
  auto j = make_cron_job("conch/", rec("x", "@every 10s"));
  REQUIRE(j);
  CHECK(j->next_after(at(1000)) == conch::detail::tick_time{1010s});
  CHECK(j->next_after(at(1003) + 400ms) == conch::detail::tick_time{1010s});
  CHECK(j->next_after(at(1009) + 999ms) == conch::detail::tick_time{1010s});
}

TEST_CASE("iterating a job's ticks through the agenda skips nothing and repeats nothing",
          "[cron]") {
  // 02:30 daily in New York across the 2026 spring-forward night: the
  // skipped 02:30 runs once at 03:00 (the first instant after the gap).
  auto j = make_cron_job("conch/", rec("x", "30 2 * * *", "America/New_York"));
  REQUIRE(j);
  conch::detail::cron_agenda<sys::time_point> agenda;
  auto now = at(1773014400 - 2 * 86400);  // 2026-03-07T00:00:00Z
  agenda.plan("x", *j->next_after(now));
  std::vector<std::string> fired;
  for (int i = 0; i < 3; ++i) {
    now = *agenda.earliest();
    for (auto& due : agenda.take_due(now)) {
      fired.push_back(
          conch::detail::format_rfc3339(std::chrono::floor<std::chrono::seconds>(due.tick)));
      agenda.plan(due.job, *j->next_after(conch::detail::resume_point(due.tick, now)));
    }
  }
  CHECK(fired == std::vector<std::string>{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z",
                                          "2026-03-09T06:30:00Z"});
}

TEST_CASE("a claim is create-if-absent, void once the job changed, and never below the floor",
          "[cron]") {
  auto t = conch::detail::claim_txn("p/cron/fire/x/", "p/cron/floor/x/", "20260101T000000Z", "{}",
                                    "p/cron/jobs/x", 41);
  REQUIRE(t.compares.size() == 3);
  CHECK(t.compares[0].key == "p/cron/fire/x/20260101T000000Z");
  CHECK(t.compares[0].what == conch::compare::target::create);
  CHECK(t.compares[0].number == 0);
  CHECK(t.compares[1].what == conch::compare::target::mod);
  CHECK(t.compares[1].number == 41);
  CHECK(t.compares[2].key == std::string("p/cron/floor/x/20260101T000000Z") + '\0');
  CHECK(t.compares[2].range_end == "p/cron/floor/x0");
  REQUIRE(t.success.size() == 1);
  const auto& put = std::get<conch::put_request>(t.success[0]);
  CHECK(put.lease == 0);  // a dead claimer must not free the tick
}

TEST_CASE("pruning raises the floor and deletes below it, fenced by the read", "[cron]") {
  auto t = conch::detail::prune_txn("p/cron/fire/x/", "p/cron/runs/x/", "p/cron/floor/x/",
                                    "20260101T000100Z", 7);
  REQUIRE(t.compares.size() == 1);
  CHECK(t.compares[0].range_end == "p/cron/fire/x/20260101T000100Z");
  CHECK(t.compares[0].number == 8);
  REQUIRE(t.success.size() == 4);
  const auto& fire = std::get<conch::delete_request>(t.success[0]);
  CHECK(fire.key == "p/cron/fire/x/");
  CHECK(fire.range_end == "p/cron/fire/x/20260101T000100Z");
  CHECK(std::get<conch::delete_request>(t.success[1]).range_end ==
        "p/cron/runs/x/20260101T000100Z");
  CHECK(std::get<conch::put_request>(t.success[3]).key == "p/cron/floor/x/20260101T000100Z");
}

TEST_CASE("a listing tells done, running and zombie runs apart", "[cron]") {
  const std::string fire = "p/cron/fire/x/", runs = "p/cron/runs/x/";
  auto claim = [&](std::string tick, std::string lease, conch::revision rev) {
    conch::detail::claim_record c{};
    c.host = "h1";
    c.pid = 7;
    c.lease = std::move(lease);
    c.tick = *conch::detail::parse_tick(tick);
    return key_value{fire + tick, conch::detail::encode_record(c), rev, rev, 1, 0};
  };
  conch::detail::run_record done{};
  done.tick = *conch::detail::parse_tick("20260101T000003Z");
  done.exit_code = 3;
  const std::vector<key_value> claims{
      claim("20260101T000004Z", "a", 14), claim("20260101T000003Z", "b", 13),
      claim("20260101T000002Z", "c", 12),
      key_value{fire + "20260101T000001Z", "garbage", 11, 11, 1, 0}};
  const std::vector<key_value> results{
      key_value{runs + "20260101T000003Z", conch::detail::encode_record(done), 15, 15, 1, 0}};
  auto views = conch::detail::cron_runs_from(claims, fire, results, runs,
                                             [](conch::lease_id id) { return id == 0xa; });
  REQUIRE(views.size() == 4);
  CHECK(views[0].state == run_state::running);
  CHECK(views[0].tick == "2026-01-01T00:00:04Z");
  CHECK(views[1].state == run_state::done);
  CHECK(views[1].exit_code == 3);
  CHECK(views[1].rev == 13);
  CHECK(views[2].state == run_state::zombie);
  CHECK(views[2].host == "h1");
  CHECK(views[3].state == run_state::zombie);  // unreadable claim: no live claimer to name
  CHECK_FALSE(views[3].problem.empty());
}
