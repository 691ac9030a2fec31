// Cron at load: N `@every 1s` jobs across 3 conchd for T seconds. What
// happened is read back from etcd afterwards: one claim and one result per
// job and tick (each written once), when each run started, and what the
// daemons (and etcd) spent in CPU meanwhile.
#include "conch/cron_jobs.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"

#include "bench.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace conch::bench {

using namespace std::chrono_literals;
using wall = std::chrono::system_clock;

namespace {

// What etcd's history says about one (job, tick): how many times its claim
// was created, and which distinct results were written (a retried write of
// the same result is one run; a second run writes another value).
struct tick_story {
  int claims = 0;
  std::set<std::string> results;
  double lag_ms = 0;  ///< the first result's run start − tick
};

// "job-0001/20251123T103000Z" -> (job-0001, tick).
std::optional<std::pair<std::string, detail::tick_time>> job_tick(std::string_view rest) {
  const auto slash = rest.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto tick = detail::parse_tick(rest.substr(slash + 1));
  if (!tick) return std::nullopt;
  return std::pair{std::string(rest.substr(0, slash)), *tick};
}

// Every PUT under `dir` from revision `from` on, in order, until the history
// is exhausted (nothing more for a while: the writers are gone by now).
template <class F>
void replay_puts(etcd_transport& t, const std::string& dir, revision from, F on_put) {
  auto w = t.watch(watch_request::prefix(dir, from));
  for (;;) {
    auto batch = w.next(steady::now() + 3s);
    if (!batch) {
      if (batch.error().code == errc::timed_out) return;
      throw std::runtime_error("replaying " + dir + ": " + batch.error().message);
    }
    for (const auto& e : batch->events)
      if (e.type == watch_event::kind::put) on_put(e.kv);
  }
}

}  // namespace

void measure_cron(context& ctx) {
  auto& t = ctx.client;
  const int jobs = ctx.cron_jobs > 0 ? ctx.cron_jobs : ctx.quick ? 50 : 1000;
  const std::chrono::seconds window{ctx.cron_seconds > 0 ? ctx.cron_seconds : ctx.quick ? 5 : 30};
  const auto warmup = ctx.quick ? 2s : 4s;  // daemons up, every job loaded
  const auto grace = ctx.quick ? 3s : 15s;  // late runs of the window's ticks still count
  const std::string prefix = ctx.prefix + "cron/";

  for (int i = 0; i < jobs; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "job-%04d", i);
    auto r = add_cron_job(t, prefix, {.name = name, .schedule = "@every 1s", .argv = {"true"}},
                          wall::now());
    if (!r) throw std::runtime_error("add job: " + r.error().message);
  }
  auto probe = t.range(range_request::prefix(prefix), t.default_deadline());
  if (!probe) throw std::runtime_error("read: " + probe.error().message);
  const revision from = probe->header_revision + 1;

  // Three daemons, each up (its "started" line logged) before the window
  // opens. On a loaded machine a daemon can miss its start-up deadline for
  // etcd (exit 69): start it again, a few times at most.
  std::vector<std::unique_ptr<process>> daemons(3);
  for (std::size_t i = 0; i < daemons.size(); ++i) {
    const std::string log = ctx.tmp / ("conchd-" + std::to_string(i) + ".log");
    for (int attempt = 1;; ++attempt) {
      std::filesystem::remove(log);
      daemons[i] = std::make_unique<process>(
          spawn_spec{.argv = {ctx.conchd(), "--endpoints", ctx.etcd.endpoint(), "--prefix", prefix},
                     .stderr_path = log});
      std::optional<int> exited;
      const bool up = await(
          [&] {
            exited = daemons[i]->wait(0ms);
            return exited || read_text(log).find("started: prefix") != std::string::npos;
          },
          30s, 10ms);
      if (up && !exited) break;
      if (attempt == 3 || (exited && *exited != 69))
        throw std::runtime_error("conchd did not start (" +
                                 (exited ? "exit " + std::to_string(*exited) : "no start line") +
                                 "): " + read_text(log));
    }
  }

  // The window: whole ticks, after the warm-up.
  const auto first = std::chrono::ceil<std::chrono::seconds>(wall::now()) + warmup;
  const auto last = first + window;  // exclusive
  auto cpu = [&] {
    double s = 0;
    for (auto& d : daemons) s += cpu_seconds(d->pid());
    return s;
  };
  std::this_thread::sleep_until(first);
  const double cpu0 = cpu(), etcd0 = cpu_seconds(ctx.etcd.pid());
  std::this_thread::sleep_until(last);
  const double cpu1 = cpu(), etcd1 = cpu_seconds(ctx.etcd.pid());
  std::this_thread::sleep_for(grace);
  for (auto& d : daemons)
    if (auto early = d->wait(0ms))
      ctx.check(false, "cron: a conchd exited early (" + std::to_string(*early) + ")");
  // SIGTERM: stop claiming; runs in flight finish and record their results.
  const auto stopping = steady::now();
  for (auto& d : daemons) d->signal(SIGTERM);
  std::string stop_codes;
  for (auto& d : daemons) {
    auto code = d->wait(60s);
    stop_codes += " " + (code ? std::to_string(*code)
                              : "killed after 60 s:" + std::to_string(d->stop(SIGKILL)));
  }
  std::cerr
      << " [conchd stopped in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - stopping).count()
      << " ms, exit codes" << stop_codes << "]";

  // The window's story, from etcd's history.
  std::map<std::pair<std::string, detail::tick_time>, tick_story> story;
  auto in_window = [&](const std::string& key, std::size_t dir) -> tick_story* {
    auto jt = job_tick(std::string_view(key).substr(dir));
    if (!jt || jt->second < std::chrono::floor<std::chrono::seconds>(first) ||
        jt->second >= std::chrono::floor<std::chrono::seconds>(last))
      return nullptr;
    return &story[*jt];
  };
  const std::string fire_dir = prefix + "cron/fire/", runs_dir = prefix + "cron/runs/";
  replay_puts(t, fire_dir, from, [&](const key_value& kv) {
    if (auto* s = in_window(kv.key, fire_dir.size()); s && kv.version == 1) ++s->claims;
  });
  std::int64_t failed = 0;
  replay_puts(t, runs_dir, from, [&](const key_value& kv) {
    auto* s = in_window(kv.key, runs_dir.size());
    if (!s || !s->results.insert(kv.value).second) return;
    auto run = detail::decode_record<detail::run_record>(kv.value);
    if (!run || run->exit_code != 0) {
      ++failed;
      return;
    }
    if (s->results.size() == 1)
      s->lag_ms = std::chrono::duration<double, std::milli>(run->start - run->tick).count();
  });

  const std::int64_t expected = static_cast<std::int64_t>(jobs) * window.count();
  std::int64_t once = 0, twice = 0, claimed = 0, zombies = 0;
  samples lag;
  for (const auto& [key, s] : story) {
    claimed += s.claims > 0;
    if (s.claims > 1 || s.results.size() > 1) ++twice;
    if (s.results.size() == 1 && s.claims == 1) ++once;
    if (s.claims > 0 && s.results.empty()) ++zombies;
    if (!s.results.empty()) lag.add(s.lag_ms);
  }
  const std::int64_t ran = static_cast<std::int64_t>(lag.size());
  const double daemon_cpu = ran > 0 ? (cpu1 - cpu0) / (static_cast<double>(ran) / 1000.0) : -1;
  const double etcd_cpu = ran > 0 ? (etcd1 - etcd0) / (static_cast<double>(ran) / 1000.0) : -1;
  // A daemon that cannot keep up is a result, not a broken benchmark; a
  // quick run (a light load) must see every part work, though.
  ctx.check(claimed > 0, "cron: nothing claimed in the window");
  ctx.check(!ctx.quick || (ran > 0 && lag.sane(-1000)), "cron: no results in the window");
  ctx.check(cpu1 >= cpu0 && cpu0 >= 0, "cron: unreadable daemon CPU");

  const std::string setup =
      std::to_string(jobs) + " jobs × " + std::to_string(window.count()) + " s";
  ctx.rows.push_back(
      {"cron: ticks run exactly once (" + setup + ", 3 conchd)",
       std::to_string(once) + "/" + std::to_string(expected),
       "never run " + std::to_string(expected - ran) + ", twice " + std::to_string(twice),
       "claimed " + std::to_string(claimed) + ", no result " + std::to_string(zombies) +
           (failed ? ", failed " + std::to_string(failed) : ""),
       fixed(static_cast<double>(once) / static_cast<double>(expected), 3), "= 1 exactly",
       verdict(once == expected && twice == 0)});
  ctx.rows.push_back({"cron: tick start lag (run start − tick)",
                      lag.empty() ? "n/a" : ms(lag.p50()), lag.empty() ? "n/a" : ms(lag.p99()), "—",
                      "—", "—", "—"});
  if (ran > 0)
    ctx.rows.push_back({"cron: conchd CPU s per 1,000 ticks run (3 daemons)",
                        fixed(daemon_cpu, 3) + " s", "—", "etcd " + fixed(etcd_cpu, 3) + " s",
                        times(daemon_cpu / etcd_cpu), "—", "—"});
  else
    ctx.rows.push_back({"cron: conchd CPU s in the window (3 daemons; no tick ran)",
                        fixed(cpu1 - cpu0, 1) + " s", "—", "etcd " + fixed(etcd1 - etcd0, 1) + " s",
                        "—", "—", "—"});
}

}  // namespace conch::bench
