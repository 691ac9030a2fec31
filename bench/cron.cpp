// Cron at load: N `@every 1s` jobs across 3 conchd for T seconds. What
// happened is read back from etcd afterwards: one claim and one result per
// job and tick (each written once), when each run started, and what the
// daemons (and etcd) spent in CPU meanwhile.
#include "conch/cron_jobs.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"

#include "bench.hpp"
#include "support/etcd_harness_process.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

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

// The start-lag histogram of one /metrics text: cumulative count per bound.
using lag_buckets = std::map<double, double>;
lag_buckets lag_histogram(const std::string& text) {
  static const std::string family = "conch_cron_tick_start_lag_seconds_bucket{le=\"";
  lag_buckets out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(family, 0) != 0) continue;
    const auto quote = line.find('"', family.size());
    if (quote == std::string::npos) continue;
    const std::string le = line.substr(family.size(), quote - family.size());
    const double bound = le == "+Inf" ? 1e300 : std::strtod(le.c_str(), nullptr);
    out[bound] += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  return out;
}

// The scraper beside the daemons: every second, each daemon's /metrics.
// Keeps the latest histogram per daemon and how long each scrape took.
class lag_scraper {
 public:
  explicit lag_scraper(std::vector<int> ports) : ports_(std::move(ports)), latest_(ports_.size()) {
    thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
  }
  /// The histogram summed over the daemons, as of the latest scrape.
  lag_buckets total() {
    std::lock_guard lock{mutex_};
    lag_buckets sum;
    for (const auto& h : latest_)
      for (const auto& [bound, n] : h) sum[bound] += n;
    return sum;
  }
  samples& took() { return took_; }
  int failures() const { return failures_; }
  void stop() {
    thread_.request_stop();
    thread_.join();
  }

 private:
  void loop(const std::stop_token& stop) {
    auto next = steady::now();
    while (!stop.stop_requested()) {
      for (std::size_t i = 0; i < ports_.size(); ++i) {
        const auto t0 = steady::now();
        auto h = lag_histogram(metrics_text(ports_[i]));
        const double ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
        std::lock_guard lock{mutex_};
        if (h.empty()) {
          ++failures_;
          continue;
        }
        took_.add(ms);
        latest_[i] = std::move(h);
      }
      next += 1s;
      std::this_thread::sleep_until(next);
    }
  }
  std::vector<int> ports_;
  std::mutex mutex_;
  std::vector<lag_buckets> latest_;
  samples took_;
  int failures_ = 0;
  std::jthread thread_;
};

// The bound under which a fraction `q` of the observations (the bucket
// deltas `to - from`) lies: a bucket's upper bound, as a histogram tells it.
double bucket_quantile(const lag_buckets& from, const lag_buckets& to, double q) {
  const double all =
      to.empty() ? 0 : to.rbegin()->second - (from.empty() ? 0 : from.rbegin()->second);
  if (all <= 0) return -1;
  for (const auto& [bound, n] : to) {
    const auto before = from.find(bound);
    if (n - (before == from.end() ? 0 : before->second) >= q * all) return bound;
  }
  return -1;
}

// etcd's calls by method (grpc_server_handled_total), as counted by etcd.
std::map<std::string, double> etcd_calls_by_method(const test::etcd_server& etcd) {
  std::map<std::string, double> out;
  const std::string text = metrics_text(etcd.client_port());
  for (const char* m : {"Txn", "Range", "Put", "DeleteRange", "LeaseGrant", "LeaseTimeToLive",
                        "LeaseRevoke", "LeaseKeepAlive", "Watch"})
    out[m] =
        metric_sum(text, "grpc_server_handled_total", {"grpc_method=\"" + std::string(m) + "\""})
            .value_or(0);
  out["(all unary)"] =
      metric_sum(text, "grpc_server_started_total", {"grpc_type=\"unary\""}).value_or(0);
  return out;
}

// The cron row's floor: what this machine gives a spawner that does nothing
// but start the runs. Three bare spawners (one per conchd) each
// posix_spawnp `true` for their third of the jobs at every tick, as fast as
// they can, then reap them: no etcd, no claim, no record, no log. Their
// start lag is what any daemon on this machine would see at best, with the
// runs' own exec competing for the same cores.
struct spawn_floor_figures {
  samples lag;               ///< ms from the tick to each spawn call
  double cpu_per_1000 = 0;   ///< the spawners' own CPU per 1,000 runs (s)
  double runs_per_1000 = 0;  ///< the runs' CPU per 1,000 (s)
};

spawn_floor_figures measure_spawn_floor(context& ctx, int jobs, int rounds) {
  const int spawners = 3;
  const auto first = std::chrono::ceil<std::chrono::seconds>(wall::now()) + 2s;
  const auto first_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(first.time_since_epoch()).count();
  std::vector<std::unique_ptr<process>> ps;
  std::vector<std::string> outs;
  for (int i = 0; i < spawners; ++i) {
    const int runs = jobs / spawners + (i < jobs % spawners ? 1 : 0);
    outs.push_back(ctx.tmp / ("spawn-floor-" + std::to_string(i) + ".txt"));
    ps.push_back(std::make_unique<process>(
        spawn_spec{.argv = {ctx.self, "--spawn-floor", std::to_string(runs), std::to_string(rounds),
                            std::to_string(first_ms)},
                   .stdout_path = outs.back()}));
  }
  spawn_floor_figures f;
  double self = 0, children = 0;
  for (int i = 0; i < spawners; ++i) {
    auto code = ps[i]->wait(std::chrono::seconds(rounds + 60));
    ctx.check(code && *code == 0, "cron floor: a spawner failed");
    std::ifstream in(outs[i]);
    double a = 0, b = 0;
    std::string word;
    if (in >> word >> a >> b && word == "cpu") {
      self += a;
      children += b;
    }
    for (double v; in >> v;) f.lag.add(v);
  }
  ctx.check(f.lag.size() == static_cast<std::size_t>(jobs) * static_cast<std::size_t>(rounds),
            "cron floor: not every run was started");
  const double thousands = static_cast<double>(f.lag.size()) / 1000.0;
  if (thousands > 0) {
    f.cpu_per_1000 = self / thousands;
    f.runs_per_1000 = children / thousands;
  }
  return f;
}

}  // namespace

int spawn_floor(const char* runs_text, const char* rounds_text, const char* first_ms_text) {
  const int runs = std::atoi(runs_text), rounds = std::atoi(rounds_text);
  const wall::time_point first{std::chrono::milliseconds(std::atoll(first_ms_text))};
  if (runs <= 0 || rounds <= 0) return 64;
  std::vector<double> lag;
  lag.reserve(static_cast<std::size_t>(runs) * static_cast<std::size_t>(rounds));
  std::vector<pid_t> started(static_cast<std::size_t>(runs));
  char name[] = "true";
  char* argv[] = {name, nullptr};
  rusage before{};  // this program's own start-up is not the spawner's cost
  ::getrusage(RUSAGE_SELF, &before);
  for (int r = 0; r < rounds; ++r) {
    const auto tick = first + std::chrono::seconds(r);
    std::this_thread::sleep_until(tick);
    for (auto& pid : started) {
      lag.push_back(std::chrono::duration<double, std::milli>(wall::now() - tick).count());
      if (::posix_spawnp(&pid, name, nullptr, nullptr, argv, environ) != 0) return 1;
    }
    for (pid_t pid : started)
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
  }
  rusage self{}, children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  std::printf("cpu %.6f %.6f\n", (cpu_ms(self) - cpu_ms(before)) / 1e3, cpu_ms(children) / 1e3);
  for (double v : lag) std::printf("%.3f\n", v);
  return 0;
}

void measure_cron(context& ctx) {
  auto& t = ctx.client;
  const int jobs = ctx.cron_jobs > 0 ? ctx.cron_jobs : ctx.quick ? 50 : 1000;
  const std::chrono::seconds period{ctx.cron_period > 0 ? ctx.cron_period : 1};
  std::chrono::seconds window{ctx.cron_seconds > 0 ? ctx.cron_seconds : ctx.quick ? 5 : 30};
  window = (window + period - 1s) / period * period;  // whole periods
  const auto warmup = ctx.quick ? 2s : 4s;            // daemons up, every job loaded
  const auto grace = ctx.quick ? 3s : 15s;            // late runs of the window's ticks still count
  const std::string prefix = ctx.prefix + "cron/";
  // The floor first, while nothing else runs; for the 1 s load only.
  std::optional<spawn_floor_figures> floor;
  if (period == 1s) floor = measure_spawn_floor(ctx, jobs, ctx.quick ? 2 : 10);

  for (int i = 0; i < jobs; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "job-%04d", i);
    auto r = add_cron_job(t, prefix,
                          {.name = name,
                           .schedule = "@every " + std::to_string(period.count()) + "s",
                           .argv = {"true"}},
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
  std::vector<int> ports;
  for (std::size_t i = 0; i < daemons.size(); ++i) {
    ports.push_back(test::harness_detail::free_loopback_port());
    const std::string log = ctx.tmp / ("conchd-" + std::to_string(i) + ".log");
    for (int attempt = 1;; ++attempt) {
      std::filesystem::remove(log);
      daemons[i] = std::make_unique<process>(
          spawn_spec{.argv = {ctx.conchd(), "--endpoints", ctx.etcd.endpoint(), "--prefix", prefix,
                              "--metrics", "127.0.0.1:" + std::to_string(ports[i])},
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
  auto first = std::chrono::ceil<std::chrono::seconds>(wall::now()) + warmup;
  first += (period - first.time_since_epoch() % period) % period;  // a tick of every job
  const auto last = first + window;                                // exclusive
  auto cpu = [&](bool children = false) {
    double s = 0;
    for (auto& d : daemons) s += cpu_seconds(d->pid(), children);
    return s;
  };
  lag_scraper scraper{ports};
  std::this_thread::sleep_until(first);
  const double cpu0 = cpu(), etcd0 = cpu_seconds(ctx.etcd.pid()), runs0 = cpu(true);
  const auto calls0 = etcd_calls_by_method(ctx.etcd);
  const lag_buckets lag0 = scraper.total();
  std::this_thread::sleep_until(last);
  const double cpu1 = cpu(), etcd1 = cpu_seconds(ctx.etcd.pid()), runs1 = cpu(true);
  const auto calls1 = etcd_calls_by_method(ctx.etcd);
  std::this_thread::sleep_for(grace);
  const lag_buckets lag1 = scraper.total();
  scraper.stop();
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

  const std::int64_t expected = static_cast<std::int64_t>(jobs) * (window / period);
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

  const std::string setup = std::to_string(jobs) + " jobs @every " +
                            std::to_string(period.count()) + "s × " +
                            std::to_string(window.count()) + " s";
  // The targets: a 1 s load must run 99% of its ticks exactly once (lag and
  // CPU targets too); a slower one (10,000 jobs @every 1m) every tick.
  const bool fast = period == 1s;
  const double share = static_cast<double>(once) / static_cast<double>(expected);
  ctx.rows.push_back(
      {"cron: ticks run exactly once (" + setup + ", 3 conchd)",
       std::to_string(once) + "/" + std::to_string(expected),
       "never run " + std::to_string(expected - ran) + ", twice " + std::to_string(twice),
       "claimed " + std::to_string(claimed) + ", no result " + std::to_string(zombies) +
           (failed ? ", failed " + std::to_string(failed) : ""),
       fixed(share, 3), fast ? "≥ 0.99, twice 0" : "= 1, twice 0",
       verdict(twice == 0 && (fast ? share >= 0.99 : once == expected))});
  ctx.rows.push_back({"cron: tick start lag (run start − tick, from the results)",
                      lag.empty() ? "n/a" : ms(lag.p50()), lag.empty() ? "n/a" : ms(lag.p99()), "—",
                      lag.empty() ? "—" : ms(lag.p99()), fast ? "p99 ≤ 250 ms" : "—",
                      fast && !lag.empty() ? verdict(lag.p99() <= 250) : "—"});
  if (floor && !floor->lag.empty())
    ctx.rows.push_back({"cron: floor: 3 bare spawners start " + std::to_string(jobs) +
                            " `true` at each tick (posix_spawnp, no etcd; start lag)",
                        ms(floor->lag.p50()), ms(floor->lag.p99()),
                        "spawners' CPU " + fixed(floor->cpu_per_1000, 3) + " s, runs " +
                            fixed(floor->runs_per_1000, 3) + " s per 1,000",
                        lag.empty() ? "—" : "conch p99 " + times(lag.p99() / floor->lag.p99()), "—",
                        "—"});
  {
    const double p50 = bucket_quantile(lag0, lag1, 0.5), p99 = bucket_quantile(lag0, lag1, 0.99);
    auto bound = [](double b) {
      return b < 0 ? std::string("n/a") : b > 1e299 ? std::string("> 10 s") : "≤ " + ms(b * 1000);
    };
    auto& took = scraper.took();
    ctx.check(!took.empty(), "cron: no conchd /metrics scrape succeeded");
    ctx.rows.push_back(
        {"cron: tick start lag, scraped from conchd /metrics every second", bound(p50), bound(p99),
         std::to_string(took.size()) + " scrapes, " + std::to_string(scraper.failures()) +
             " failed, scrape p99 " + (took.empty() ? "n/a" : ms(took.p99())),
         bound(p99), fast ? "p99 ≤ 250 ms" : "—", fast && p99 >= 0 ? verdict(p99 <= 0.25) : "—"});
  }
  if (ran > 0)
    ctx.rows.push_back(
        {"cron: conchd CPU s per 1,000 ticks run (3 daemons)", fixed(daemon_cpu, 3) + " s",
         "runs (true) " + fixed((runs1 - runs0) / (static_cast<double>(ran) / 1000.0), 3) + " s",
         "etcd " + fixed(etcd_cpu, 3) + " s", times(daemon_cpu / etcd_cpu),
         fast ? "≤ 1× etcd" : "—", fast ? verdict(daemon_cpu <= etcd_cpu) : "—"});
  else
    ctx.rows.push_back({"cron: conchd CPU s in the window (3 daemons; no tick ran)",
                        fixed(cpu1 - cpu0, 1) + " s", "—", "etcd " + fixed(etcd1 - etcd0, 1) + " s",
                        "—", "—", "—"});
  // etcd's own count of the calls it handled in the window, per tick run.
  if (ran > 0) {
    std::string by_method;
    double writes = 0;
    for (const auto& [m, n] : calls1) {
      const double per = (n - calls0.at(m)) / static_cast<double>(ran);
      if (m == "Txn" || m == "Put" || m == "DeleteRange") writes += per;
      if (per >= 0.005) by_method += (by_method.empty() ? "" : ", ") + m + " " + fixed(per, 2);
    }
    // The hot path writes twice (claim, result); the pruner adds one read
    // txn and at most one prune txn per history/10 + 1 = 11 ticks.
    ctx.rows.push_back({"cron: etcd calls per tick run (grpc_server_handled_total)", by_method, "—",
                        "Txn + Put + DeleteRange (the pruner's reads are Txn too)",
                        fixed(writes, 2), "≤ 2 + prune 2/11",
                        verdict(writes <= 2.0 + 2.0 / 11 + 1e-9)});
  }
}

}  // namespace conch::bench
