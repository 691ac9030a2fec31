// The cron job controls against one real etcd, with conchd and `conch cron`
// as processes: concurrency forbid|allow|replace, --timeout, pause/resume,
// `cron run`, and what `ls` shows of them.
#include "support/cron_fixture.hpp"

#include <atomic>

namespace {

/// A file path of this test binary's own, unique per call.
std::string scratch(const std::string& what) {
  static std::atomic<int> n{0};
  return temp_dir() + "/" + what + "-" + std::to_string(++n);
}

/// The job's results in key (= tick) order.
std::vector<conch::detail::run_record> results(const std::string& prefix, const std::string& job) {
  std::vector<conch::detail::run_record> out;
  for (const auto& kv : range_prefix(prefix + "cron/runs/" + job + "/")) {
    auto r = conch::detail::decode_record<conch::detail::run_record>(kv.value);
    REQUIRE(r);
    out.push_back(*r);
  }
  return out;
}

std::size_t count_skipped(const std::string& prefix, const std::string& job) {
  std::size_t n = 0;
  for (const auto& r : results(prefix, job)) n += r.skipped.empty() ? 0 : 1;
  return n;
}

std::size_t count_lines(const std::string& path) {
  const std::string text = read_file(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::size_t count_claims(const std::string& prefix, const std::string& job) {
  return range_prefix(prefix + "cron/fire/" + job + "/").size();
}

void put_raw(const std::string& key, const std::string& value) {
  conch::put_request put;
  put.key = key;
  put.value = value;
  REQUIRE(client().put(put, client().default_deadline()));
}

}  // namespace

TEST_CASE("forbid: a tick whose previous run still runs on any daemon is skipped and recorded",
          "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  const std::string lock = scratch("forbid.lock");
  // The job as the previous version stored it: no concurrency, timeout,
  // paused or run_request field. It reads as forbid.
  const nlohmann::json old{
      {"name", "slow"},
      {"schedule", "@every 1s"},
      {"tz", ""},
      {"argv", {"sh", "-c", "mkdir " + lock + " || exit 99; sleep 2.5; rmdir " + lock}},
      {"created", "2026-01-01T00:00:00Z"}};
  put_raw(prefix + "cron/jobs/slow", old.dump());
  conchd d1{prefix};
  conchd d2{prefix};
  REQUIRE(eventually([&] { return count_skipped(prefix, "slow") >= 2; }, 30s));
  remove_job(prefix, "slow");
  CHECK(d1.stop() == 0);
  CHECK(d2.stop() == 0);
  std::size_t ran = 0;
  for (const auto& r : results(prefix, "slow")) {
    INFO(conch::detail::format_tick(r.tick) << " exit " << r.exit_code << " " << r.skipped);
    if (r.skipped.empty()) {
      CHECK(r.exit_code == 0);  // 99: two runs overlapped
      ++ran;
    } else {
      CHECK(r.skipped.find("overlap") != std::string::npos);
      CHECK(r.skipped.find("still running") != std::string::npos);
    }
  }
  CHECK(ran >= 1);
  const std::string logs = d1.log() + d2.log();
  CHECK(logs.find("reason=overlap") != std::string::npos);
  auto ls = ls_json(prefix);
  const auto* job = find_job(ls, "slow");
  REQUIRE(job);
  CHECK((*job)["removed"] == true);
}

TEST_CASE("allow: runs of one job overlap", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  const std::string lock = scratch("allow.lock");
  auto r = conch_cron(
      prefix, {"add", "both", "--schedule", "@every 1s", "--concurrency", "allow", "--", "sh", "-c",
               "if mkdir " + lock + " 2>/dev/null; then sleep 2.5; rmdir " + lock +
                   "; else echo overlapped; fi"});
  REQUIRE(r.code == 0);
  conchd d{prefix};
  CHECK(eventually(
      [&] {
        for (const auto& rec : results(prefix, "both"))
          if (rec.output == "overlapped\n") return true;
        return false;
      },
      30s));
  remove_job(prefix, "both");
  CHECK(d.stop() == 0);
  CHECK(count_skipped(prefix, "both") == 0);
}

TEST_CASE("replace: the previous run's group is stopped before the new run starts", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  auto r =
      conch_cron(prefix, {"add", "fresh", "--schedule", "@every 2s", "--concurrency", "replace",
                          "--", "sh", "-c", "trap 'exit 143' TERM; sleep 30 & wait"});
  REQUIRE(r.code == 0);
  conchd d{prefix, {"--kill-after", "1s"}};
  REQUIRE(eventually([&] { return results(prefix, "fresh").size() >= 2; }, 30s));
  remove_job(prefix, "fresh");
  CHECK(d.stop() == 0);
  const auto runs = results(prefix, "fresh");
  REQUIRE(runs.size() >= 2);
  for (std::size_t i = 0; i + 1 < runs.size(); ++i) {
    INFO("run " << i);
    CHECK(runs[i].skipped.empty());
    CHECK(runs[i].exit_code == 143);          // its trap heard SIGTERM
    CHECK(runs[i].end <= runs[i + 1].start);  // stopped and recorded before the next began
  }
  CHECK(d.log().find("reason=replace") == std::string::npos);  // one daemon: always replaced
}

TEST_CASE("replace across daemons: the holder's daemon is asked to stop its run first", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  auto r =
      conch_cron(prefix, {"add", "fresh", "--schedule", "@every 2s", "--concurrency", "replace",
                          "--", "sh", "-c", "trap 'exit 143' TERM; sleep 30 & wait"});
  REQUIRE(r.code == 0);
  conchd d1{prefix, {"--kill-after", "1s"}};
  conchd d2{prefix, {"--kill-after", "1s"}};
  const std::string asked = "a newer tick on another daemon replaces this run";
  // Which daemon wins each tick is up to them: wait until a run held by one
  // daemon was replaced by a tick the other won.
  REQUIRE(eventually([&] { return (d1.log() + d2.log()).find(asked) != std::string::npos; }, 60s));
  const auto n = results(prefix, "fresh").size();
  REQUIRE(eventually([&] { return results(prefix, "fresh").size() >= n + 1; }, 20s));
  remove_job(prefix, "fresh");
  CHECK(d1.stop() == 0);
  CHECK(d2.stop() == 0);
  const auto runs = results(prefix, "fresh");
  REQUIRE(runs.size() >= 2);
  for (std::size_t i = 0; i + 1 < runs.size(); ++i) {
    INFO("run " << i << " on " << runs[i].host << " " << runs[i].skipped);
    CHECK(runs[i].skipped.empty());
    CHECK(runs[i].exit_code == 143);
    CHECK(runs[i].end <= runs[i + 1].start);
  }
  CHECK(count_skipped(prefix, "fresh") == 0);
}

TEST_CASE("a tick costs etcd two writes, its claim and its result, under every policy", "[cron]") {
  const std::string policy = GENERATE(as<std::string>{}, "forbid", "replace", "allow");
  INFO("--concurrency " << policy);
  private_etcd own;  // no other test's writes in etcd's counts
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "tock", "@every 1s", {"true"}, {"--concurrency", policy});
  const long before = etcd_write_calls();
  {
    // --history 0: nothing pruned, so every write is a tick's.
    conchd d{prefix, {"--history", "0"}};
    REQUIRE(eventually([&] { return count_runs(prefix, "tock") >= 6; }, 30s));
    CHECK(d.stop() == 0);  // runs in flight finish and record their results
  }
  const long writes = etcd_write_calls() - before;
  const auto ticks = results(prefix, "tock");
  CHECK(count_claims(prefix, "tock") == ticks.size());
  CHECK(count_skipped(prefix, "tock") == 0);
  CHECK_FALSE(get(prefix + "cron/running/tock"));  // released with each result
  CHECK(writes == 2 * static_cast<long>(ticks.size()));
}

TEST_CASE("--timeout stops the run's group and the result says it timed out; ls shows it",
          "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  auto r = conch_cron(
      prefix, {"add", "late", "--schedule", "@every 2s", "--timeout", "1s", "--", "sleep", "30"});
  REQUIRE(r.code == 0);
  conchd d{prefix, {"--kill-after", "1s"}};
  REQUIRE(eventually(
      [&] {
        for (const auto& rec : results(prefix, "late"))
          if (rec.timed_out) return true;
        return false;
      },
      30s));
  for (const auto& rec : results(prefix, "late")) {
    CHECK(rec.timed_out);
    CHECK(rec.exit_code == 128 + SIGTERM);
    CHECK(rec.end - rec.start < 10s);  // not the 30s the command wanted
  }
  CHECK(d.await_log("reason=timeout"));

  auto ls = ls_json(prefix);
  const auto* job = find_job(ls, "late");
  REQUIRE(job);
  CHECK((*job)["concurrency"] == "forbid");
  CHECK((*job)["timeout_ms"] == 1000);
  CHECK((*job)["paused"] == false);
  CHECK((*job)["timeouts"].get<int>() >= 1);
  CHECK((*job)["skips"].is_number_integer());
  auto human = conch_cron(prefix, {"ls"});
  CHECK(human.out.find("concurrency=forbid timeout=1s") != std::string::npos);
  CHECK(human.out.find("timed-out") != std::string::npos);
  remove_job(prefix, "late");
  CHECK(d.stop() == 0);
}

TEST_CASE("a paused job claims nothing and keeps its history; resumed, it runs again", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  add_job(prefix, "nap", "@every 1s", {"true"});
  conchd d{prefix};
  REQUIRE(eventually([&] { return count_runs(prefix, "nap") >= 1; }));
  auto paused = conch_cron(prefix, {"pause", "nap"});
  INFO(paused.err);
  REQUIRE(paused.code == 0);
  REQUIRE(d.await_log("every 1s paused"));  // the daemon saw it through its jobs watch
  const auto claims = count_claims(prefix, "nap");
  // Another job's ticks pass: the paused one claims none meanwhile.
  add_job(prefix, "clock", "@every 1s", {"true"});
  REQUIRE(eventually([&] { return count_runs(prefix, "clock") >= 3; }, 20s));
  CHECK(count_claims(prefix, "nap") == claims);

  auto ls = ls_json(prefix);
  const auto* job = find_job(ls, "nap");
  REQUIRE(job);
  CHECK((*job)["paused"] == true);
  CHECK((*job)["next"].is_null());
  CHECK_FALSE((*job)["runs"].empty());  // the history stays
  CHECK(conch_cron(prefix, {"ls"}).out.find("nap  @every 1s  PAUSED") != std::string::npos);

  REQUIRE(conch_cron(prefix, {"resume", "nap"}).code == 0);
  CHECK(eventually([&] { return count_claims(prefix, "nap") > claims; }));
  CHECK(find_job(ls_json(prefix), "nap")->at("paused") == false);
  remove_job(prefix, "nap");
  remove_job(prefix, "clock");
  CHECK(d.stop() == 0);
}

TEST_CASE("cron run: one run now, claimed once among two daemons, listed under its own id",
          "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  const std::string ran = scratch("ran");
  add_job(prefix, "once", "0 0 1 1 *", {"sh", "-c", "echo \"$CONCH_TICK\" >> " + ran});
  conchd d1{prefix};
  conchd d2{prefix};
  auto asked = conch_cron(prefix, {"run", "once"});
  INFO(asked.err);
  REQUIRE(asked.code == 0);
  CHECK(asked.err.find("-run") != std::string::npos);
  REQUIRE(eventually([&] { return count_runs(prefix, "once") == 1; }));
  // Both daemons saw the request (the job's change) before we count.
  auto reloads = [](const conchd& d) {
    const std::string log = d.log();
    std::size_t n = 0;
    for (auto at = log.find("job job=once"); at != std::string::npos;
         at = log.find("job job=once", at + 1))
      ++n;
    return n;
  };
  CHECK(eventually([&] { return reloads(d1) >= 2 && reloads(d2) >= 2; }));
  CHECK(d1.stop() == 0);
  CHECK(d2.stop() == 0);
  std::size_t claim_puts = 0;
  for (const auto& e : history(prefix + "cron/fire/once/"))
    if (e.type == conch::watch_event::kind::put) ++claim_puts;
  CHECK(claim_puts == 1);
  CHECK(count_lines(ran) == 1);
  auto ls = ls_json(prefix);
  const auto* job = find_job(ls, "once");
  REQUIRE(job);
  REQUIRE((*job)["runs"].size() == 1);
  const auto& run = (*job)["runs"][0];
  CHECK(run["manual"] == true);
  CHECK(run["state"] == "done");
  CHECK(run["run"].get<std::string>().find("-run") != std::string::npos);
  CHECK(conch_cron(prefix, {"ls"}).out.find("(cron run)  done exit=0") != std::string::npos);
}

TEST_CASE("bad input: unknown jobs, bad --concurrency and --timeout", "[cron]") {
  const std::string prefix = conch::test::unique_prefix();
  for (std::string sub : {"pause", "resume", "run", "rm"}) {
    auto r = conch_cron(prefix, {sub, "nosuch"});
    INFO(sub << ": " << r.err);
    CHECK(r.code == 1);
    CHECK(r.err.find("nosuch") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  auto policy = conch_cron(
      prefix, {"add", "x", "--schedule", "@daily", "--concurrency", "sometimes", "--", "true"});
  CHECK(policy.code == 64);
  CHECK(policy.err.find("sometimes") != std::string::npos);
  CHECK(std::count(policy.err.begin(), policy.err.end(), '\n') == 1);
  auto timeout =
      conch_cron(prefix, {"add", "x", "--schedule", "@daily", "--timeout", "soon", "--", "true"});
  CHECK(timeout.code == 64);
  CHECK(timeout.err.find("soon") != std::string::npos);
  CHECK(std::count(timeout.err.begin(), timeout.err.end(), '\n') == 1);
  CHECK_FALSE(get(prefix + "cron/jobs/x"));

  // A stored value this version cannot read is reported, not guessed at.
  put_raw(prefix + "cron/jobs/odd",
          R"({"name":"odd","schedule":"@daily","argv":["true"],"concurrency":"sometimes"})");
  auto corrupt = conch_cron(prefix, {"pause", "odd"});
  CHECK(corrupt.code == 1);
  CHECK(corrupt.err.find("sometimes") != std::string::npos);
  auto ls = ls_json(prefix);
  const auto* odd = find_job(ls, "odd");
  REQUIRE(odd);
  CHECK((*odd)["problem"].get<std::string>().find("concurrency") != std::string::npos);
}
