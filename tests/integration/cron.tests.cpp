// conchd and `conch cron` as processes against one real etcd: the cron
// contract. Several daemons share each scenario's prefix; what happened is
// read back from etcd (keys, and the watch history from revision 1).
#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/exit_codes.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/process/output.hpp"
#include "conch/process/spawn.hpp"

#include "support/cron_fixture.hpp"
#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <set>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using conch::detail::tick_time;

TEST_CASE("three daemons, one run per tick; add, rm and corrupt jobs while running", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  // A corrupt job value, as someone might write by hand: reported, skipped.
  etcd().etcdctl_ok({"put", prefix + "cron/jobs/broken", "this is not a job"});
  // Runs may overlap here: the slow-clocked daemon claims ticks whose
  // successors run elsewhere (with the default, forbid, it records them as skipped).
  const std::vector<std::string> overlap{"--concurrency", "allow"};
  add_job(prefix, "every", "@every 1s",
          {"sh", "-c", "printf '%s %s' \"$CONCH_TICK\" \"$CONCH_REV\""}, overlap);

  conchd d1{prefix};
  conchd d2{prefix, {}, {{"CONCH_CLOCK_OFFSET", "-3s"}}};  // a daemon whose clock is 3 s slow
  conchd d3{prefix, {"--log-format", "json"}};
  for (auto* d : {&d1, &d2}) CHECK(d->await_log("corrupt job=broken"));
  CHECK(d3.await_log(R"("event":"corrupt","job":"broken")"));
  CHECK(d2.log().find("clock offset -3000ms") != std::string::npos);

  // Added while the daemons run: takes effect without a restart.
  add_job(prefix, "late", "@every 1s", {"true"});
  CHECK(eventually([&] { return count_runs(prefix, "late") >= 1; }));

  // The 4 KiB output cap.
  add_job(prefix, "loud", "@every 1s",
          {"sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x; printf END"}, overlap);
  CHECK(eventually([&] { return count_runs(prefix, "loud") >= 1; }));
  remove_job(prefix, "loud");
  {
    auto runs = range_prefix(prefix + "cron/runs/loud/");
    REQUIRE_FALSE(runs.empty());
    auto rec = conch::detail::decode_record<conch::detail::run_record>(runs.front().value);
    REQUIRE(rec);
    CHECK(rec->output.size() == 4096);
    CHECK(rec->output.substr(4093) == "END");
  }

  // rm during a run: the run finishes and records its result; no further ticks.
  add_job(prefix, "slow", "@every 2s", {"sh", "-c", "sleep 1; echo finished"}, overlap);
  CHECK(eventually([&] { return !range_prefix(prefix + "cron/fire/slow/").empty(); }));
  remove_job(prefix, "slow");
  const auto slow_claims = range_prefix(prefix + "cron/fire/slow/");
  CHECK(eventually([&] { return count_runs(prefix, "slow") == slow_claims.size(); }));
  for (const auto& run : range_prefix(prefix + "cron/runs/slow/")) {
    auto rec = conch::detail::decode_record<conch::detail::run_record>(run.value);
    REQUIRE(rec);
    CHECK(rec->exit_code == 0);
    CHECK(rec->output == "finished\n");
  }

  remove_job(prefix, "late");
  for (auto* d : {&d1, &d2}) {
    CHECK(d->await_log("removed job=late"));
    CHECK(d->await_log("removed job=slow"));
  }
  const auto late_claims = range_prefix(prefix + "cron/fire/late/").size();

  // At least 20 ticks of "every" with a result, then look at the history.
  CHECK(eventually([&] { return count_runs(prefix, "every") >= 22; }, 40s));
  CHECK(range_prefix(prefix + "cron/fire/late/").size() == late_claims);  // rm: no further ticks
  CHECK(range_prefix(prefix + "cron/fire/slow/").size() == slow_claims.size());

  auto ls = ls_json(prefix);
  const auto* broken = find_job(ls, "broken");
  REQUIRE(broken);
  CHECK_FALSE((*broken)["problem"].is_null());
  const auto* every = find_job(ls, "every");
  REQUIRE(every);
  CHECK((*every)["problem"].is_null());
  CHECK_FALSE((*every)["next"].is_null());
  CHECK((*every)["runs"].size() == 5);

  for (auto* d : {&d1, &d2, &d3}) CHECK(d->stop() == 0);

  // Through the history: every tick claimed exactly once and never rewritten,
  // every claimed tick has exactly one result, and the ticks are contiguous.
  const std::string fire_dir = prefix + "cron/fire/every/", runs_dir = prefix + "cron/runs/every/";
  std::map<std::string, int> claim_puts, result_puts;
  std::map<std::string, conch::revision> claim_rev;
  for (const auto& e : history(prefix + "cron/")) {
    if (!e.kv.key.starts_with(fire_dir) && !e.kv.key.starts_with(runs_dir)) continue;
    CHECK(e.type == conch::watch_event::kind::put);  // nothing pruned or deleted below 100 ticks
    if (e.kv.key.starts_with(fire_dir)) {
      ++claim_puts[e.kv.key.substr(fire_dir.size())];
      claim_rev[e.kv.key.substr(fire_dir.size())] = e.kv.create_revision;
    }
    if (e.kv.key.starts_with(runs_dir)) ++result_puts[e.kv.key.substr(runs_dir.size())];
  }
  REQUIRE(claim_puts.size() >= 20);
  std::optional<tick_time> previous;
  for (const auto& [tick, puts] : claim_puts) {
    INFO("tick " << tick);
    CHECK(puts == 1);
    CHECK(result_puts[tick] == 1);
    const auto t = *conch::detail::parse_tick(tick);
    if (previous) CHECK(t - *previous == 1s);
    previous = t;
  }
  // Each run saw its own tick (CONCH_TICK) and its claim's revision (CONCH_REV).
  for (const auto& kv : range_prefix(runs_dir)) {
    auto rec = conch::detail::decode_record<conch::detail::run_record>(kv.value);
    REQUIRE(rec);
    const std::string tick = kv.key.substr(runs_dir.size());
    CHECK(rec->output ==
          conch::detail::format_rfc3339(rec->tick) + " " + std::to_string(claim_rev[tick]));
    CHECK(conch::detail::format_tick(rec->tick) == tick);
  }
}

TEST_CASE("a killed winner leaves a zombie: claimed, no result, never rerun", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  const std::string pids = temp_dir() + "/sleeper.pids";
  add_job(prefix, "sleeper", "@every 2s", {"sh", "-c", "echo $$ >> " + pids + "; exec sleep 30"});
  conchd d1{prefix};
  conchd d2{prefix};

  REQUIRE(eventually([&] { return !range_prefix(prefix + "cron/fire/sleeper/").empty(); }));
  REQUIRE(eventually([&] { return !read_file(pids).empty(); }));
  remove_job(prefix, "sleeper");  // no further ticks: only the one run we kill under
  const auto claims = range_prefix(prefix + "cron/fire/sleeper/");
  REQUIRE(claims.size() == 1);
  const auto claim = claims.front();
  auto who = conch::detail::decode_record<conch::detail::claim_record>(claim.value);
  REQUIRE(who);
  conchd& winner = who->pid == d1.pid() ? d1 : d2;
  conchd& other = who->pid == d1.pid() ? d2 : d1;
  REQUIRE(who->pid == winner.pid());
  CHECK(winner.stop(SIGKILL) == 128 + SIGKILL);

  // Once the dead claimer's lease expires, ls calls the tick a zombie.
  CHECK(eventually([&] {
    auto ls = conch_cron(prefix, {"ls", "--json"});
    return ls.code == 0 && ls.out.find("\"zombie\"") != std::string::npos;
  }));
  auto human = conch_cron(prefix, {"ls"});
  CHECK(human.out.find("sleeper  (removed)") != std::string::npos);  // rm keeps the history
  CHECK(human.out.find("zombie") != std::string::npos);
  CHECK(human.out.find("claimer=" + who->host + "/" + std::to_string(who->pid)) !=
        std::string::npos);

  // Never rerun: the claim is untouched, no result, one run ever started.
  CHECK(other.await_log("removed job=sleeper"));
  auto still = get(claim.key);
  REQUIRE(still);
  CHECK(still->create_revision == claim.create_revision);
  CHECK(still->mod_revision == claim.mod_revision);
  CHECK(still->lease == 0);  // claims outlive their claimer
  CHECK(range_prefix(prefix + "cron/runs/sleeper/").empty());
  std::istringstream lines(read_file(pids));
  std::vector<long> started;
  for (long pid; lines >> pid;) started.push_back(pid);
  CHECK(started.size() == 1);
  // The dead claimer's watchdog killed its run when the lease deadline passed.
  for (long pid : started) {
    CHECK(eventually([&] { return ::kill(static_cast<pid_t>(pid), 0) != 0; }, 15s));
    ::kill(static_cast<pid_t>(pid), SIGKILL);  // whatever the outcome, leave nothing behind
  }
  CHECK(other.stop() == 0);
}

TEST_CASE("a restarted daemon does not claim the ticks it missed", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "tick", "@every 1s", {"true"});
  std::optional<conchd> d{std::in_place, prefix};
  REQUIRE(eventually([&] { return count_runs(prefix, "tick") >= 2; }));
  REQUIRE(d->stop() == 0);
  const auto down = std::chrono::system_clock::now();
  std::this_thread::sleep_for(2500ms);  // ticks pass with no daemon: the downtime itself
  const auto up = std::chrono::system_clock::now();
  d.emplace(prefix);
  const auto before = count_runs(prefix, "tick");
  REQUIRE(eventually([&] { return count_runs(prefix, "tick") >= before + 2; }));
  CHECK(d->stop() == 0);
  for (const auto& kv : range_prefix(prefix + "cron/fire/tick/")) {
    const auto t = tick_of(kv.key);
    INFO(kv.key);
    CHECK((t <= down || t > up));
  }
}

TEST_CASE("the winner prunes the job's history to the last N ticks", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "short", "@every 1s", {"true"});
  conchd d{prefix, {"--history", "3"}};
  // Six results ever written, through the history.
  REQUIRE(eventually(
      [&] {
        std::size_t puts = 0;
        for (const auto& e : history(prefix + "cron/runs/short/"))
          puts += e.type == conch::watch_event::kind::put;
        return puts >= 6;
      },
      20s));
  CHECK(d.stop() == 0);
  auto fire = range_prefix(prefix + "cron/fire/short/");
  auto runs = range_prefix(prefix + "cron/runs/short/");
  CHECK(fire.size() == 3);
  CHECK(runs.size() == 3);
  // The newest three stay.
  std::set<std::string> fire_ticks, run_ticks;
  for (const auto& kv : fire) fire_ticks.insert(kv.key.substr(kv.key.size() - 16));
  for (const auto& kv : runs) run_ticks.insert(kv.key.substr(kv.key.size() - 16));
  CHECK(fire_ticks == run_ticks);
  std::size_t deleted = 0;
  for (const auto& e : history(prefix + "cron/fire/short/")) {
    if (e.type != conch::watch_event::kind::del) continue;
    ++deleted;
    CHECK(e.kv.key.substr(e.kv.key.size() - 16) < *fire_ticks.begin());
  }
  CHECK(deleted >= 3);
}

TEST_CASE("a daemon lagging by more than history x period never claims a pruned tick again",
          "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "lag", "@every 1s", {"true"});
  conchd on_time{prefix, {"--history", "2"}};
  conchd lagging{prefix, {"--history", "2", "--clock-offset", "-4s"}};  // 4 s > 2 ticks x 1 s
  const std::string fire_dir = prefix + "cron/fire/lag/";
  // Twelve claims ever made, through the history (pruning deletes the keys).
  REQUIRE(eventually(
      [&] {
        std::size_t created = 0;
        for (const auto& e : history(fire_dir)) created += e.type == conch::watch_event::kind::put;
        return created >= 12;
      },
      30s));
  CHECK(on_time.stop() == 0);
  CHECK(lagging.stop() == 0);
  std::map<std::string, int> created;
  std::size_t deleted = 0;
  for (const auto& e : history(fire_dir)) {
    if (e.type == conch::watch_event::kind::del) ++deleted;
    if (e.type == conch::watch_event::kind::put && e.kv.version == 1) ++created[e.kv.key];
  }
  CHECK(deleted > 0);  // pruning ran, so the lagging daemon saw absent fire keys
  for (const auto& [key, n] : created) {
    INFO(key);
    CHECK(n == 1);
  }
  for (auto* d : {&on_time, &lagging})
    CHECK(d->log().find("result not recorded") == std::string::npos);
  CHECK_FALSE(range_prefix(prefix + "cron/floor/lag/").empty());
}

TEST_CASE("a run's background processes are stopped before its result is recorded", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  const std::string pids = temp_dir() + "/background.pids";
  add_job(prefix, "bg", "@every 1s",
          {"sh", "-c", "sleep 4242 & echo $! >> " + pids + "; echo started"});
  conchd d{prefix};
  REQUIRE(eventually([&] { return count_runs(prefix, "bg") >= 2; }));
  remove_job(prefix, "bg");
  CHECK(d.stop() == 0);
  std::istringstream lines(read_file(pids));
  std::size_t seen = 0;
  for (long pid; lines >> pid; ++seen) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    INFO("sleep " << pid << ": " << text);
    CHECK((text.empty() ||
           text.find(") Z") != std::string::npos));  // gone, or a zombie for init to reap
    ::kill(static_cast<pid_t>(pid), SIGKILL);        // whatever the outcome, leave nothing behind
  }
  CHECK(seen >= 2);
  for (const auto& kv : range_prefix(prefix + "cron/runs/bg/")) {
    auto rec = conch::detail::decode_record<conch::detail::run_record>(kv.value);
    REQUIRE(rec);
    CHECK(rec->exit_code == 0);
    CHECK(rec->output == "started\n");
  }
}

TEST_CASE("SIGTERM lets a run finish up to --kill-after, then kills it and records the result",
          "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "stuck", "@every 1s", {"sleep", "30"});
  conchd d{prefix, {"--kill-after", "1s"}};
  REQUIRE(d.await_log("run job=stuck"));
  remove_job(prefix, "stuck");
  const auto began = std::chrono::steady_clock::now();
  CHECK(d.stop(SIGTERM) == 0);
  CHECK(std::chrono::steady_clock::now() - began < 10s);
  CHECK(d.log().find("stopping on signal 15") != std::string::npos);
  auto runs = range_prefix(prefix + "cron/runs/stuck/");
  REQUIRE_FALSE(runs.empty());
  for (const auto& kv : runs) {
    auto rec = conch::detail::decode_record<conch::detail::run_record>(kv.value);
    REQUIRE(rec);
    CHECK(rec->exit_code == 128 + SIGKILL);
  }
  CHECK(runs.size() == range_prefix(prefix + "cron/fire/stuck/").size());
}

TEST_CASE("bad input: schedule, zone and unreachable etcd", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  auto bad_schedule = conch_cron(prefix, {"add", "x", "--schedule", "61 * * * *", "--", "true"});
  CHECK(bad_schedule.code == 64);
  CHECK(bad_schedule.err.find("61") != std::string::npos);
  CHECK(std::count(bad_schedule.err.begin(), bad_schedule.err.end(), '\n') == 1);
  auto bad_zone = conch_cron(
      prefix, {"add", "x", "--schedule", "@daily", "--tz", "Mars/Olympus", "--", "true"});
  CHECK(bad_zone.code == 64);
  CHECK(bad_zone.err.find("Mars/Olympus") != std::string::npos);
  CHECK(conch_cron(prefix, {"add", "x", "--", "true"}).code == 64);            // no --schedule
  CHECK(conch_cron(prefix, {"add", "x", "--schedule", "@daily"}).code == 64);  // no command
  CHECK_FALSE(get(prefix + "cron/jobs/x"));                                    // nothing stored

  auto missing = conch_cron(prefix, {"rm", "nosuch"});
  CHECK(missing.code == 1);
  CHECK(missing.err.find("nosuch") != std::string::npos);

  auto no_etcd = run_tool("conchd", {"--endpoints", "127.0.0.1:1", "--prefix", prefix});
  CHECK(no_etcd.code == 69);
  CHECK(no_etcd.err.find("127.0.0.1:1") != std::string::npos);
  CHECK(run_tool("conchd", {"--log-format", "xml"}).code == 64);
}

TEST_CASE("a daemon whose lease is revoked stops the runs under it, then takes a new one",
          "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  const std::string pids = temp_dir() + "/deaf.pids";
  add_job(prefix, "steady", "@every 1s", {"true"});
  // A run that ignores SIGTERM: only SIGKILL, --kill-after later, ends it.
  add_job(prefix, "deaf", "@every 1s",
          {"sh", "-c", "trap '' TERM; echo $$ >> " + pids + "; while :; do sleep 0.1; done"});
  conchd d{prefix, {"--kill-after", "1s"}};
  REQUIRE(eventually([&] { return !read_file(pids).empty(); }));
  remove_job(prefix, "deaf");  // no further ticks: only the runs under way
  const auto deaf = range_prefix(prefix + "cron/fire/deaf/");
  REQUIRE_FALSE(deaf.empty());
  auto first = conch::detail::decode_record<conch::detail::claim_record>(deaf.front().value);
  REQUIRE(first);
  auto lease = conch::detail::parse_lease_hex(first->lease);
  REQUIRE(lease);
  etcd().revoke_lease(*lease);
  CHECK(d.await_log("lease lost"));

  // Later ticks are claimed under a new lease, and their results recorded.
  std::optional<conch::detail::wall_time> renewed;  // the first claim under a new lease
  CHECK(eventually([&] {
    for (const auto& kv : range_prefix(prefix + "cron/runs/steady/"))
      if (auto r = conch::detail::decode_record<conch::detail::run_record>(kv.value);
          r && r->lease != first->lease)
        return true;
    return false;
  }));
  for (const auto& kv : range_prefix(prefix + "cron/fire/steady/"))
    if (auto c = conch::detail::decode_record<conch::detail::claim_record>(kv.value);
        c && c->lease != first->lease && (!renewed || c->start < *renewed))
      renewed = c->start;
  REQUIRE(renewed);

  // Every run under the revoked lease was killed (SIGKILL: it ignored
  // SIGTERM), its whole group gone, before the new lease was granted; its
  // result says the lease was lost (exit 70).
  std::istringstream lines(read_file(pids));
  for (long pid; lines >> pid;) {
    CHECK(eventually([&] { return ::kill(static_cast<pid_t>(pid), 0) != 0; }));
    ::kill(static_cast<pid_t>(pid), SIGKILL);  // whatever the outcome, leave nothing behind
  }
  CHECK(eventually([&] { return count_runs(prefix, "deaf") == deaf.size(); }));
  for (const auto& kv : range_prefix(prefix + "cron/runs/deaf/")) {
    auto r = conch::detail::decode_record<conch::detail::run_record>(kv.value);
    REQUIRE(r);
    INFO(kv.key);
    CHECK(r->exit_code == conch::exit_code::lost);
    CHECK(r->end <= *renewed);
  }
  // ls shows none of them running.
  const auto ls = ls_json(prefix, 100);
  const auto* job = find_job(ls, "deaf");
  REQUIRE(job);
  CHECK((*job)["runs"].size() == deaf.size());
  for (const auto& run : (*job)["runs"]) CHECK(run["state"] != "running");
  CHECK(d.stop() == 0);
}

TEST_CASE("daemons ride out an etcd outage: no tick claimed twice, firing resumes", "[cron]") {
  private_etcd own;  // it stops etcd: not the one the other tests share
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "through", "@every 1s", {"true"});
  conchd d1{prefix};
  conchd d2{prefix};
  REQUIRE(eventually([&] { return count_runs(prefix, "through") >= 2; }));
  etcd().stop();
  std::this_thread::sleep_for(3s);  // the outage itself: longer than the daemons' 2 s lease
  etcd().start();
  const auto before = count_runs(prefix, "through");
  CHECK(eventually([&] { return count_runs(prefix, "through") >= before + 3; }, 30s));
  CHECK(d1.stop() == 0);
  CHECK(d2.stop() == 0);
  std::map<std::string, int> puts;
  for (const auto& e : history(prefix + "cron/fire/through/")) {
    CHECK(e.type == conch::watch_event::kind::put);
    ++puts[e.kv.key];
  }
  for (const auto& [key, n] : puts) {
    INFO(key);
    CHECK(n == 1);
  }
}

// ---- faults: threads refused, etcd frozen, leases revoked under runs ----

TEST_CASE("a daemon the system refuses threads to keeps running what it can, never aborts",
          "[cron][faults]") {
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "squeezed", "@every 1s", {"true"});
  // An unprivileged user of its own with a small process limit: gRPC's
  // threads fit, the 64 workers do not (RLIMIT_NPROC counts threads).
  const std::string uid = std::to_string(40000 + ::getpid() % 20000);
  std::vector<std::string> launcher{"prlimit",        "--nproc=40:40",  "setpriv",
                                    "--reuid=" + uid, "--regid=" + uid, "--clear-groups"};
  conchd d{prefix, {}, {}, launcher};
  CHECK(d.await_log("worker not started"));
  // Ticks are still claimed and run by the workers it got, which leave room
  // for the runs' processes.
  CHECK(eventually([&] {
    for (const auto& kv : range_prefix(prefix + "cron/runs/squeezed/"))
      if (auto r = conch::detail::decode_record<conch::detail::run_record>(kv.value);
          r && r->exit_code == 0)
        return true;
    return false;
  }));
  CHECK(d.stop() == 0);
  INFO(d.log());
  CHECK(d.log().find("terminate called") == std::string::npos);
}

TEST_CASE("a corrupt or foreign value under the jobs prefix is logged once per revision, skipped",
          "[cron][faults]") {
  const std::string prefix = conch::test::unique_prefix();
  const std::string jobs = prefix + "cron/jobs/";
  etcd().etcdctl_ok({"put", jobs + "broken", "this is not a job"});
  etcd().etcdctl_ok({"put", jobs + "nested/key", "{\"schedule\":\"@every 1s\"}"});  // foreign
  etcd().etcdctl_ok({"put", jobs + "shape", "{\"foo\":1}"});  // JSON, not a job record
  add_job(prefix, "good", "@every 1s", {"true"});
  conchd d{prefix};
  auto logged = [&](const std::string& what) {
    const std::string log = d.log();
    std::size_t n = 0;
    for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  auto runs_grow_by = [&](std::size_t n) {
    const auto before = count_runs(prefix, "good");
    return eventually([&] { return count_runs(prefix, "good") >= before + n; });
  };
  // The other jobs run meanwhile; ticks pass, and nothing is said twice.
  CHECK(runs_grow_by(3));
  CHECK(logged("corrupt job=broken ") == 1);
  CHECK(logged("corrupt job=shape ") == 1);
  CHECK(logged("corrupt job=" + jobs + "nested/key ") == 1);
  // A new revision of the corrupt value is news: said once more.
  etcd().etcdctl_ok({"put", jobs + "broken", "still not a job"});
  CHECK(eventually([&] { return logged("corrupt job=broken ") == 2; }));
  CHECK(runs_grow_by(3));
  CHECK(logged("corrupt job=broken ") == 2);
  CHECK(logged("corrupt job=shape ") == 1);
  CHECK(logged("corrupt job=" + jobs + "nested/key ") == 1);
  CHECK(range_prefix(prefix + "cron/fire/broken/").empty());
  CHECK(range_prefix(prefix + "cron/fire/shape/").empty());
  CHECK(d.stop() == 0);
}

TEST_CASE("a daemon behind a frozen etcd sheds the late ticks, logs them and resumes, no abort",
          "[cron][faults]") {
  private_etcd own;  // it freezes etcd: not the one the other tests share
  const std::string prefix = conch::test::unique_prefix();
  // More ticks fall due during the freeze than there are workers to hold
  // them (64): those still queued when etcd answers again are late.
  constexpr int jobs = 30;
  for (int i = 0; i < jobs; ++i) add_job(prefix, "j" + std::to_string(i), "@every 1s", {"true"});
  const int port = conch::test::harness_detail::free_loopback_port();
  conchd d{prefix, {"--ttl", "10", "--metrics", "127.0.0.1:" + std::to_string(port)}};
  REQUIRE(eventually([&] { return count_runs(prefix, "j0") >= 2; }));
  REQUIRE(::kill(etcd().pid(), SIGSTOP) == 0);
  std::this_thread::sleep_for(4s);  // the freeze itself: calls time out, ticks pile up
  REQUIRE(::kill(etcd().pid(), SIGCONT) == 0);
  CHECK(d.await_log("skip job="));
  const auto before = count_runs(prefix, "j0");
  CHECK(eventually([&] { return count_runs(prefix, "j0") >= before + 3; }, 30s));
  // Each skip is logged once and counted once. The daemon runs on (it may
  // still skip, e.g. an overlap under concurrency forbid), and an event is
  // counted just before it is logged, one at a time: so the count scraped
  // lies between the log lines before the scrape and those after it (+1).
  auto logged = [&] {
    std::size_t n = 0;
    const std::string log = d.log();
    for (auto at = log.find(" skip job="); at != std::string::npos;
         at = log.find(" skip job=", at + 1))
      ++n;
    return static_cast<double>(n);
  };
  const double logged_before = logged();
  const auto scraped = conch::test::http_get(port, "/metrics");
  const double counted =
      conch::test::metric_sum(scraped ? scraped->body : "", "conch_cron_ticks_skipped_total")
          .value_or(0);
  const double logged_after = logged();
  CHECK(logged_before > 0);
  CHECK(logged_before <= counted);
  CHECK(counted <= logged_after + 1);
  CHECK(d.stop() == 0);
  INFO(d.log().substr(0, 4000));
  CHECK(d.log().find("terminate called") == std::string::npos);
  std::map<std::string, int> puts;
  for (const auto& e : history(prefix + "cron/fire/")) {
    CHECK(e.type == conch::watch_event::kind::put);
    ++puts[e.kv.key];
  }
  for (const auto& [key, n] : puts) {
    INFO(key);
    CHECK(n == 1);
  }
}

TEST_CASE(
    "claims etcd refuses for want of space are shed once late; firing resumes after the alarm",
    "[cron][faults]") {
  private_etcd own{{.quota_backend_bytes = 8 << 20}};  // it fills etcd up
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "tight", "@every 1s", {"true"});
  conchd d{prefix, {"--ttl", "10"}};
  REQUIRE(eventually([&] { return count_runs(prefix, "tight") >= 2; }));
  // Fill the backend past its quota: etcd raises NOSPACE, every write fails.
  const std::string filler = prefix + "filler/";
  bool full = false;
  for (int i = 0; i < 64 && !full; ++i) {
    auto w = client().put({.key = filler + std::to_string(i), .value = std::string(1 << 20, 'x')},
                          client().default_deadline());
    full = !w && w.error().message.find("database space exceeded") != std::string::npos;
  }
  REQUIRE(full);
  const auto raised = std::chrono::system_clock::now();
  // Ticks come due and their claims are refused: each is shed once late,
  // logged, instead of being retried for ever and run late.
  auto refused = [&] {
    const std::string log = d.log();
    std::size_t n = 0;
    for (auto at = log.find("refused until late"); at != std::string::npos;
         at = log.find("refused until late", at + 1))
      ++n;
    return n;
  };
  CHECK(eventually([&] { return refused() >= 5; }));
  const auto lowered = std::chrono::system_clock::now();
  auto gone = client().delete_range({.key = filler, .range_end = conch::prefix_end(filler)},
                                    client().default_deadline());
  REQUIRE(gone);
  etcd().compact();
  etcd().etcdctl_ok({"defrag"});
  etcd().etcdctl_ok({"alarm", "disarm"});
  const auto before = count_runs(prefix, "tight");
  CHECK(eventually([&] { return count_runs(prefix, "tight") >= before + 2; }, 30s));
  CHECK(d.stop() == 0);
  // No tick due while etcd refused every claim was run late after it (a
  // refused claim is retried, paced by the backoff, until its successor is
  // due: allow for the last pause).
  for (const auto& kv : range_prefix(prefix + "cron/fire/tight/")) {
    const auto t = tick_of(kv.key);
    INFO(kv.key);
    CHECK_FALSE((t > raised + 1s && t < lowered - 3s));
  }
}

TEST_CASE("claims lost to another daemon and zombie claims are counted in /metrics", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "taken", "@every 1s", {"true"});
  add_job(prefix, "ghost", "@every 1s", {"true"});
  // Another claimer took the next three minutes of "taken"'s ticks (a value this
  // daemon cannot read: it learns no peer from it, so it claims on time).
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  for (int i = 1; i < 180; ++i) {
    conch::put_request claim;
    claim.key =
        prefix + "cron/fire/taken/" + conch::detail::format_tick(now + std::chrono::seconds{i});
    claim.value = "claimed elsewhere";
    REQUIRE(client().put(claim, client().default_deadline()));
  }
  // A claim an hour old with no result, whose claimer's lease does not exist: a zombie.
  conch::detail::claim_record zombie{.name = "ghost",
                                     .tick = now - std::chrono::hours{1},
                                     .host = "gone",
                                     .pid = 1,
                                     .lease = "7fffffff00000001",
                                     .start = {}};
  etcd().etcdctl_ok({"put", prefix + "cron/fire/ghost/" + conch::detail::format_tick(zombie.tick),
                     conch::detail::encode_record(zombie)});
  const int port = conch::test::harness_detail::free_loopback_port();
  conchd d{prefix, {"--history", "20", "--metrics", "127.0.0.1:" + std::to_string(port)}};
  auto sample = [&](const std::string& name, const std::string& job) {
    const auto scraped = conch::test::http_get(port, "/metrics");
    return conch::test::metric_sum(scraped ? scraped->body : "", name, {"job=\"" + job + "\""})
        .value_or(-1);
  };
  CHECK(eventually([&] { return sample("conch_cron_claim_conflicts_total", "taken") >= 2; }, 20s));
  CHECK(eventually([&] { return sample("conch_cron_zombie_claims", "ghost") == 1; }, 60s));
  CHECK(count_runs(prefix, "taken") == 0);               // every tick it tried was someone else's
  CHECK(d.log().find("conflict") == std::string::npos);  // counted, not logged
  CHECK(d.stop() == 0);
}
