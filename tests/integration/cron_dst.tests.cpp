// basic_cron on a fake system clock against a real etcd: the documented DST
// behaviour end to end, measured by the fire keys the daemon creates; and
// several daemons stepping through many ticks together, one claim per tick;
// and a daemon on a steady fake clock, whose lease lives on that same clock.
//
// America/New_York, 2026: clocks spring forward on March 8 at 02:00 EST
// (07:00Z) and fall back on November 1 at 02:00 EDT (06:00Z).
//  - A wall-time job (`30 2 * * *`) whose 02:30 is skipped runs once, at the
//    first instant after the gap (03:00 EDT = 07:00Z).
//  - A wall-time job (`30 1 * * *`) whose 01:30 is repeated runs once, at the
//    first occurrence (01:30 EDT = 05:30Z).
//  - An elapsed-time job (`0 * * * *`) follows real time: no 02:00 in spring,
//    and both 01:00s in autumn.
#include "conch/cron.hpp"
#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/fake_clock.hpp"

#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using sys = std::chrono::system_clock;

namespace {

struct fake_wall_policies : conch::default_policies {
  using clock = conch::fake_clock<sys>;  // wall time: drives the ticks
};
using fake_cron = conch::basic_cron<fake_wall_policies>;

struct fake_steady_policies : conch::default_policies {
  using clock = conch::fake_clock<>;  // steady: drives the lease's deadlines, not the ticks
};

sys::time_point utc(int y, unsigned mo, unsigned d, int h, int mi) {
  using namespace std::chrono;
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi};
}

std::string tick_key(const std::string& dir, sys::time_point t) {
  return dir + conch::detail::format_tick(std::chrono::floor<std::chrono::seconds>(t));
}

std::set<std::string> keys_under(conch::etcd_transport& t, const std::string& dir) {
  auto r = t.range(conch::range_request::prefix(dir), t.default_deadline());
  REQUIRE(r);
  std::set<std::string> keys;
  for (const auto& kv : r->kvs) keys.insert(kv.key);
  return keys;
}

bool await_key(conch::etcd_transport& t, const std::string& key,
               std::chrono::milliseconds within = 10s) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    conch::range_request r;
    r.key = key;
    auto got = t.range(r, t.default_deadline());
    if (got && !got->kvs.empty()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

/// Runs a daemon on `clock` over the jobs, steps the clock through
/// `instants`, and returns every fire and runs key it created per job.
struct scenario {
  std::string prefix = conch::test::unique_prefix();
  conch::etcd_transport transport{conch::test::etcd_server::shared().client_options()};
  conch::fake_clock<sys> clock;

  explicit scenario(sys::time_point start) : clock(start) {}

  void add(const std::string& name, const std::string& schedule) {
    auto r = conch::add_cron_job(transport, prefix,
                                 {.name = name,
                                  .schedule = schedule,
                                  .tz = "America/New_York",
                                  .argv = {"sh", "-c", "printf %s \"$CONCH_TICK\""}},
                                 clock.now());
    REQUIRE(r);
  }

  /// Steps to each instant; at each, waits for the claims expected there.
  void drive(const std::vector<std::pair<sys::time_point, std::vector<std::string>>>& steps) {
    fake_cron daemon{transport, {.prefix = prefix, .ttl = 5s}, clock};
    REQUIRE(daemon.start());
    std::stop_source stop;
    std::jthread runner([&] { (void)daemon.run(stop.get_token()); });
    REQUIRE(clock.await_sleepers(1));
    for (const auto& [at, jobs] : steps) {
      clock.set(at);
      for (const auto& job : jobs) {
        INFO(job << " at "
                 << conch::detail::format_rfc3339(
                        std::chrono::floor<std::chrono::milliseconds>(at)));
        CHECK(await_key(transport, tick_key(prefix + "cron/runs/" + job + "/", at)));
      }
      // The scheduler sleeps again only after planning the next ticks.
      REQUIRE(clock.await_sleepers(1));
    }
    stop.request_stop();
    runner.join();
  }

  std::set<std::string> fired(const std::string& job) {
    return keys_under(transport, prefix + "cron/fire/" + job + "/");
  }
};

}  // namespace

TEST_CASE("spring forward: a skipped wall time runs once after the gap; hourly follows real time",
          "[cron][dst]") {
  scenario s{utc(2026, 3, 8, 5, 45)};  // 00:45 EST
  s.add("skipped", "30 2 * * *");
  s.add("hourly", "0 * * * *");
  s.drive({{utc(2026, 3, 8, 6, 0), {"hourly"}},             // 01:00 EST
           {utc(2026, 3, 8, 7, 0), {"skipped", "hourly"}},  // 03:00 EDT: right after the gap
           {utc(2026, 3, 8, 8, 0), {"hourly"}}});           // 04:00 EDT
  const std::string fire = s.prefix + "cron/fire/";
  CHECK(s.fired("skipped") == std::set<std::string>{fire + "skipped/20260308T070000Z"});
  CHECK(s.fired("hourly") == std::set<std::string>{fire + "hourly/20260308T060000Z",
                                                   fire + "hourly/20260308T070000Z",
                                                   fire + "hourly/20260308T080000Z"});
  // The command saw its tick as CONCH_TICK.
  auto runs = conch::list_cron_jobs(s.transport, s.prefix, s.clock.now(), 5);
  REQUIRE(runs);
  for (const auto& job : *runs)
    for (const auto& run : job.runs) {
      CHECK(run.state == conch::detail::run_state::done);
      CHECK(run.output == run.tick);
      CHECK(run.exit_code == 0);
    }
}

TEST_CASE("fall back: a repeated wall time runs once; hourly runs in both 01:00s", "[cron][dst]") {
  scenario s{utc(2026, 11, 1, 4, 45)};  // 00:45 EDT
  s.add("repeated", "30 1 * * *");
  s.add("hourly", "0 * * * *");
  s.drive({{utc(2026, 11, 1, 5, 0), {"hourly"}},     // 01:00 EDT
           {utc(2026, 11, 1, 5, 30), {"repeated"}},  // 01:30 EDT, the first 01:30
           {utc(2026, 11, 1, 6, 0), {"hourly"}},     // 01:00 EST, the second 01:00
           {utc(2026, 11, 1, 6, 30), {}},            // 01:30 EST: not again
           {utc(2026, 11, 1, 7, 0), {"hourly"}}});   // 02:00 EST
  const std::string fire = s.prefix + "cron/fire/";
  CHECK(s.fired("repeated") == std::set<std::string>{fire + "repeated/20261101T053000Z"});
  CHECK(s.fired("hourly") == std::set<std::string>{fire + "hourly/20261101T050000Z",
                                                   fire + "hourly/20261101T060000Z",
                                                   fire + "hourly/20261101T070000Z"});
}

TEST_CASE("three daemons on one fake wall clock: each tick claimed once, through the history",
          "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  conch::etcd_transport transport{conch::test::etcd_server::shared().client_options()};
  const auto start = utc(2026, 1, 1, 0, 0) + 500ms;
  conch::fake_clock<sys> clock{start};
  REQUIRE(conch::add_cron_job(transport, prefix,
                              {.name = "beat", .schedule = "@every 1s", .tz = "", .argv = {"true"}},
                              clock.now()));
  std::vector<std::unique_ptr<fake_cron>> daemons;
  for (const char* host : {"h1", "h2", "h3"}) {
    daemons.push_back(std::make_unique<fake_cron>(
        transport, fake_cron::options{.prefix = prefix, .host = host}, clock));
    REQUIRE(daemons.back()->start());
  }
  std::stop_source stop;
  std::vector<std::jthread> running;
  for (auto& d : daemons) running.emplace_back([&stop, &d] { (void)d->run(stop.get_token()); });
  REQUIRE(clock.await_sleepers(3));
  constexpr int ticks = 30;
  const std::string runs = prefix + "cron/runs/beat/", fire = prefix + "cron/fire/beat/";
  for (int i = 1; i <= ticks; ++i) {
    const auto t = utc(2026, 1, 1, 0, 0) + std::chrono::seconds{i};
    clock.set(t);
    REQUIRE(await_key(transport, tick_key(runs, t)));
    REQUIRE(clock.await_sleepers(3));
  }
  stop.request_stop();
  running.clear();

  std::map<std::string, int> puts;
  std::set<std::string> hosts;
  auto stream = transport.watch(conch::watch_request::prefix(fire, 1));
  while (puts.size() < ticks) {
    auto batch = stream.next(std::chrono::steady_clock::now() + 5s);
    REQUIRE(batch);
    for (const auto& e : batch->events) {
      CHECK(e.type == conch::watch_event::kind::put);
      ++puts[e.kv.key];
      auto claim = conch::detail::decode_record<conch::detail::claim_record>(e.kv.value);
      REQUIRE(claim);
      hosts.insert(claim->host);
    }
  }
  CHECK(puts.size() == ticks);
  for (const auto& [key, n] : puts) {
    INFO(key);
    CHECK(n == 1);
  }
  CHECK(keys_under(transport, runs).size() == ticks);
  CHECK_FALSE(hosts.empty());
}

TEST_CASE("a steady fake clock drives the daemon's lease: renewed as the test advances it",
          "[cron][clock]") {
  conch::etcd_transport transport{conch::test::etcd_server::shared().client_options()};
  conch::fake_clock<> clock;
  conch::basic_cron<fake_steady_policies> daemon{
      transport, {.prefix = conch::test::unique_prefix(), .ttl = 2s}, clock};
  REQUIRE(daemon.start());
  // Stopped and joined on the way out, a failed REQUIRE included.
  std::jthread runner([&](std::stop_token stop) { (void)daemon.run(std::move(stop)); });
  const conch::lease_id lease = daemon.lease();
  auto granted = transport.lease_time_to_live(lease, transport.default_deadline());
  REQUIRE(granted);
  const std::chrono::seconds ttl{granted->granted_ttl};
  const auto interval = conch::detail::keepalive_interval(ttl);
  // Outlive the lease in real time; each renewal is due only when the test's
  // clock says so, and moves the daemon's deadline once etcd acknowledges it.
  const auto until = std::chrono::steady_clock::now() + ttl + 2s;
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(interval);  // real time passes, as the lease's on etcd does
    const auto before = daemon.local_deadline();
    REQUIRE(before);
    clock.advance(interval);
    REQUIRE(conch::test::eventually([&] { return daemon.local_deadline() > before; }, 10s));
  }
  auto alive = transport.lease_time_to_live(lease, transport.default_deadline());
  REQUIRE(alive);
  CHECK(alive->ttl > 0);           // etcd still holds the lease the daemon names
  CHECK(daemon.lease() == lease);  // never lost, never replaced
}

TEST_CASE("a tick that comes too late is shed, logged and counted", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  conch::etcd_transport transport{conch::test::etcd_server::shared().client_options()};
  const auto start = utc(2026, 1, 1, 0, 0) + 500ms;
  conch::fake_clock<sys> clock{start};
  REQUIRE(conch::add_cron_job(transport, prefix,
                              {.name = "beat", .schedule = "@every 1s", .tz = "", .argv = {"true"}},
                              clock.now()));
  std::atomic<int> skipped_events{0};
  fake_cron daemon{transport,
                   {.prefix = prefix,
                    .on_event =
                        [&](const conch::cron_event& e) {
                          if (e.what == conch::cron_event::kind::skipped) ++skipped_events;
                        }},
                   clock};
  REQUIRE(daemon.start());
  std::stop_source stop;
  std::jthread runner([&] { (void)daemon.run(stop.get_token()); });
  REQUIRE(clock.await_sleepers(1));
  CHECK(daemon.skipped() == 0);
  // The daemon wakes for 00:00:01 when 00:00:02 is long due: it sheds that tick.
  clock.set(start + 5s);
  CHECK(conch::test::eventually([&] { return skipped_events.load() >= 1; }));
  CHECK(daemon.skipped() == static_cast<std::uint64_t>(skipped_events.load()));
  CHECK_FALSE(await_key(transport, tick_key(prefix + "cron/fire/beat/", utc(2026, 1, 1, 0, 0) + 1s),
                        200ms));
  stop.request_stop();
}
