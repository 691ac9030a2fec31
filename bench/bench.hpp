// bench/bench.hpp — what every measurement of conch_bench shares: the etcd,
// the client, the run's settings, and where rows and problems go.
#pragma once

#include "conch/etcd.hpp"

#include "proc.hpp"
#include "stats.hpp"
#include "support/etcd_harness.hpp"
#include "support/prometheus.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace conch::bench {

struct context {
  context(bool quick_run, int reps_wanted, test::etcd_server& server, etcd_transport& t,
          std::string key_prefix, std::string self_path, std::string tools, const temp_dir& dir)
      : quick(quick_run),
        reps(reps_wanted),
        etcd(server),
        client(t),
        prefix(std::move(key_prefix)),
        self(std::move(self_path)),
        bin_dir(std::move(tools)),
        tmp(dir) {}

  bool quick = false;
  int reps = 0;          ///< --reps: overrides each measurement's own count when > 0
  int cron_jobs = 0;     ///< --cron-jobs: overrides the cron job count when > 0
  int cron_seconds = 0;  ///< --cron-seconds: overrides the cron window when > 0
  int cron_period = 0;   ///< --cron-period: the jobs' @every period in seconds (default 1)
  test::etcd_server& etcd;
  etcd_transport& client;  ///< one gRPC channel, shared by every library measurement
  std::string prefix;      ///< this run's key namespace ("bench/<id>/")
  std::string self;        ///< this program (children run it in --child-hold mode)
  std::string bin_dir;     ///< where conch and conchd are
  const temp_dir& tmp;
  std::mt19937 rng{20251123};

  double put_p50 = 0;  ///< the floor (ms), measured first
  std::vector<row> rows;
  std::vector<std::string> problems;  ///< sanity failures: the program exits 1

  int reps_for(int quick_default, int full_default) const {
    return reps > 0 ? reps : quick ? quick_default : full_default;
  }
  std::string conch() const { return bin_dir + "/conch"; }
  std::string conchd() const { return bin_dir + "/conchd"; }
  /// `etcdctl` against our etcd, ready for more arguments.
  std::vector<std::string> etcdctl() const {
    return {"etcdctl", "--endpoints=" + etcd.endpoint(), "--dial-timeout=2s",
            "--command-timeout=10s"};
  }
  /// Records a failed sanity check (never a missed target).
  void check(bool ok, const std::string& what) {
    if (!ok) problems.push_back(what);
  }
  /// A delay drawn uniformly from [lo, hi] ms: how long a waiter queues before the release.
  std::chrono::milliseconds queue_delay(int lo = 10, int hi = 50) {
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(lo, hi)(rng));
  }
};

/// Polls `done` every `every` until it holds or `limit` passes.
inline bool await(const std::function<bool()>& done, std::chrono::milliseconds limit,
                  std::chrono::microseconds every = std::chrono::microseconds(1000)) {
  const auto until = steady::now() + limit;
  for (;;) {
    if (done()) return true;
    if (steady::now() >= until) return false;
    std::this_thread::sleep_for(every);
  }
}

using test::metric_sum;
using test::metrics_text;

/// A counter from etcd's own /metrics (plain HTTP on its client port), summed
/// over the series whose labels contain every one of `labels`; -1 if absent.
/// An etcd-side view that needs no trust in the client's bookkeeping.
inline double etcd_metric(const test::etcd_server& etcd, const std::string& name,
                          const std::vector<std::string>& labels = {}) {
  return metric_sum(metrics_text(etcd.client_port()), name, labels).value_or(-1);
}

/// What etcd has served so far: unary calls (KV and Lease) and messages
/// received on watch streams (creates and cancels).
struct etcd_calls {
  double unary = 0;
  double watch_messages = 0;
};
inline etcd_calls etcd_served(const test::etcd_server& etcd) {
  return {etcd_metric(etcd, "grpc_server_started_total", {"grpc_type=\"unary\""}),
          etcd_metric(etcd, "grpc_server_msg_received_total", {"grpc_method=\"Watch\""})};
}

/// "2 cores, load average 5.1 4.8 4.2": what the machine was doing.
std::string machine_note();

/// How many keys live under `prefix` (-1 on error).
inline std::int64_t count_keys(etcd_transport& t, const std::string& prefix) {
  auto r = range_request::prefix(prefix);
  r.count_only = true;
  auto got = t.range(r, t.default_deadline());
  return got ? got->count : -1;
}

// The measurements, in table order. Each appends its rows to ctx.rows.
void measure_floor(context& ctx);        // raw Put, linearizable Range
void measure_uncontended(context& ctx);  // acquire+release vs 2× Put
void measure_handoff(context& ctx);      // conch, etcdctl lock, v3lock
void measure_herd(context& ctx);         // watch events per release
void measure_process(context& ctx);      // conch sema vs etcdctl lock, whole process
void measure_loss(context& ctx);         // lease revoke -> child SIGTERM
void measure_memory(context& ctx);       // VmHWM of a holding wrapper
void measure_scale(context& ctx);        // 1, 8, 64 holders
void measure_cron(context& ctx);         // N jobs, 3 conchd

/// `conch_bench --child-hold READY [STAMP]`: the child the wrappers run.
int child_hold(const char* ready, const char* stamp);

/// `conch_bench --spawn-floor N ROUNDS FIRST_MS`: the cron row's floor, one
/// bare spawner (see bench/cron.cpp).
int spawn_floor(const char* runs, const char* rounds, const char* first_ms);

}  // namespace conch::bench
