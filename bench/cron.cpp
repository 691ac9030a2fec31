// Cron at load: N `@every 1s` jobs across 3 conchd for T seconds. What
// happened is read back from etcd afterwards: one claim and one result per
// job and tick (each written once), when each run started, and what the
// daemons (and etcd) spent in CPU meanwhile.
#include "conch/cron_jobs.hpp"  // first: see detail/cron_job.hpp

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench.hpp"
#include "conch/detail/records.hpp"
#include "conch/detail/time_format.hpp"

namespace conch::bench {

using namespace std::chrono_literals;
using wall = std::chrono::system_clock;

void measure_cron(context& ctx) {
  auto& t = ctx.client;
  const int jobs = ctx.quick ? 50 : 1000;
  const auto window = ctx.quick ? 5s : 30s;
  const auto warmup = ctx.quick ? 2s : 4s;  // daemons up, every job loaded
  const std::string prefix = ctx.prefix + "cron/";

  std::vector<std::string> names;
  for (int i = 0; i < jobs; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "job-%04d", i);
    names.emplace_back(name);
    auto r = add_cron_job(t, prefix, {.name = name, .schedule = "@every 1s", .argv = {"true"}}, wall::now());
    if (!r) throw std::runtime_error("add job: " + r.error().message);
  }

  std::vector<std::unique_ptr<process>> daemons;
  for (int i = 0; i < 3; ++i)
    daemons.push_back(std::make_unique<process>(spawn_spec{
        .argv = {ctx.conchd(), "--endpoints", ctx.etcd.endpoint(), "--prefix", prefix},
        .stderr_path = ctx.tmp / ("conchd-" + std::to_string(i) + ".log")}));

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
  std::this_thread::sleep_for(3s);  // the window's last runs record their results
  for (auto& d : daemons) {
    if (auto early = d->wait(0ms))
      ctx.check(false, "cron: a conchd exited early (" + std::to_string(*early) + ")");
    (void)d->stop(SIGTERM, 15s);
  }

  std::int64_t expected = 0, results = 0, rewritten = 0, failed = 0, claims = 0, zombies = 0;
  samples lag;
  for (const auto& name : names) {
    auto runs_dir = detail::cron_runs_dir(prefix, name);
    auto fire_dir = detail::cron_fire_dir(prefix, name);
    if (!runs_dir || !fire_dir) throw std::runtime_error("job key for " + name);
    auto runs = t.range(range_request::prefix(*runs_dir), t.default_deadline());
    auto fire_req = range_request::prefix(*fire_dir);
    fire_req.keys_only = true;
    auto fires = t.range(fire_req, t.default_deadline());
    if (!runs || !fires) throw std::runtime_error("reading back " + name);
    auto in_window = [&](const std::string& key, std::size_t dir) -> std::optional<detail::tick_time> {
      auto tick = detail::parse_tick(std::string_view(key).substr(dir));
      if (!tick || *tick < std::chrono::floor<std::chrono::seconds>(first) ||
          *tick >= std::chrono::floor<std::chrono::seconds>(last))
        return std::nullopt;
      return *tick;
    };
    std::int64_t job_claims = 0, job_results = 0;
    for (const auto& kv : fires->kvs)
      if (in_window(kv.key, fire_dir->size())) {
        ++job_claims;
        if (kv.version != 1) ++rewritten;
      }
    for (const auto& kv : runs->kvs) {
      auto tick = in_window(kv.key, runs_dir->size());
      if (!tick) continue;
      ++job_results;
      if (kv.version != 1) ++rewritten;
      auto run = detail::decode_record<detail::run_record>(kv.value);
      if (!run || run->exit_code != 0) {
        ++failed;
        continue;
      }
      lag.add(std::chrono::duration<double, std::milli>(run->start - *tick).count());
    }
    claims += job_claims;
    results += job_results;
    zombies += std::max<std::int64_t>(0, job_claims - job_results);
    expected += std::chrono::duration_cast<std::chrono::seconds>(window).count();
  }

  const double job_ticks = static_cast<double>(expected);
  const double daemon_cpu = (cpu1 - cpu0) / (job_ticks / 1000.0);
  const double etcd_cpu = (etcd1 - etcd0) / (job_ticks / 1000.0);
  ctx.check(results > 0 && lag.sane(-1000), "cron: no results in the window");
  ctx.check(cpu1 >= cpu0 && cpu0 >= 0, "cron: unreadable daemon CPU");

  const std::string setup = std::to_string(jobs) + " jobs × " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(window).count()) + " s";
  const bool exactly_once = results == expected && claims == expected && rewritten == 0 && failed == 0;
  ctx.rows.push_back({"cron: results per tick (" + setup + ", 3 conchd)",
                      std::to_string(results) + "/" + std::to_string(expected),
                      "missing " + std::to_string(expected - results) + ", twice " + std::to_string(rewritten),
                      "claims " + std::to_string(claims) + ", zombies " + std::to_string(zombies),
                      fixed(static_cast<double>(results) / job_ticks, 3), "= 1 exactly", verdict(exactly_once)});
  ctx.rows.push_back({"cron: tick start lag (run start − tick)", ms(lag.p50()), ms(lag.p99()), "—", "—", "—", "—"});
  ctx.rows.push_back({"cron: conchd CPU s per 1,000 job-ticks (3 daemons)", fixed(daemon_cpu, 3) + " s", "—",
                      "etcd " + fixed(etcd_cpu, 3) + " s", times(daemon_cpu / etcd_cpu), "—", "—"});
}

}  // namespace conch::bench
