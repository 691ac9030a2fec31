// Many contenders on one semaphore: the herd (watch events per release with a
// long queue) and the scale (throughput with 1, 8 and 64 holders).
#include "conch/policies/default_policies.hpp"
#include "conch/semaphore.hpp"
#include "conch/session.hpp"

#include "bench.hpp"

#include <algorithm>
#include <atomic>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace conch::bench {

namespace {

using namespace std::chrono_literals;

// One contender: its own session (lease) and semaphore object; acquire runs
// on a thread of its own, stopped and joined on destruction.
struct contender {
  session s;
  semaphore sem;
  std::stop_source stop;
  std::future<result<void>> held;

  contender(context& ctx, const std::string& name, int max)
      : s(ctx.client, {30s, {}}), sem(s, ctx.prefix, name, max) {
    if (auto r = s.start(); !r) throw std::runtime_error("session: " + r.error().message);
  }
  ~contender() {
    stop.request_stop();
    if (held.valid()) held.wait();
  }
  void begin() {
    semaphore::acquire_options o;
    o.stop = stop.get_token();
    held = std::async(std::launch::async,
                      [this, o] { return sem.acquire("{\"name\":\"bench\"}", o); });
  }
  bool holds_now() const { return held.valid() && held.wait_for(0s) == std::future_status::ready; }
};

std::uint64_t total(const std::vector<std::unique_ptr<contender>>& cs,
                    std::uint64_t semaphore_stats::*what) {
  std::uint64_t n = 0;
  for (const auto& c : cs) n += c->sem.stats().*what;
  return n;
}

}  // namespace

void measure_herd(context& ctx) {
  const int waiters = ctx.quick ? 30 : 100;
  const int releases = std::min(ctx.reps_for(10, 40), waiters - 1);
  contender first{ctx, "herd", 1};
  if (auto r = first.sem.acquire("{\"name\":\"bench\"}"); !r)
    throw std::runtime_error("acquire: " + r.error().message);
  std::vector<std::unique_ptr<contender>> queue;
  for (int i = 0; i < waiters; ++i) {
    queue.push_back(std::make_unique<contender>(ctx, "herd", 1));
    queue.back()->begin();
  }
  // Everyone queued and watching: from here on only releases make events.
  if (!await(
          [&] {
            return total(queue, &semaphore_stats::watches) >= static_cast<std::uint64_t>(waiters);
          },
          60s, 5ms))
    throw std::runtime_error("not every waiter started watching within 60 s");
  std::this_thread::sleep_for(200ms);

  samples per_release, etcd_side;
  const std::string etcd_events = "etcd_debugging_mvcc_events_total";
  semaphore* holder = &first.sem;
  for (int i = 0; i < releases; ++i) {
    const double etcd0 = etcd_metric(ctx.etcd, etcd_events);
    const auto events0 = total(queue, &semaphore_stats::watch_events);
    const auto watches0 = total(queue, &semaphore_stats::watches);
    if (auto r = holder->release(); !r) throw std::runtime_error("release: " + r.error().message);
    contender* next = nullptr;
    if (!await(
            [&] {
              for (auto& c : queue)
                if (c->holds_now()) next = c.get();
              return next != nullptr;
            },
            10s, 200us))
      throw std::runtime_error("no waiter took the released slot within 10 s");
    if (auto r = next->held.get(); !r) throw std::runtime_error("acquire: " + r.error().message);
    // Settled: the new head has opened its watch, and nothing else moves for a while.
    (void)await([&] { return total(queue, &semaphore_stats::watches) > watches0; }, 5s, 200us);
    for (auto before = total(queue, &semaphore_stats::watch_events);;) {
      std::this_thread::sleep_for(30ms);
      const auto now = total(queue, &semaphore_stats::watch_events);
      if (now == before) break;
      before = now;
    }
    per_release.add(static_cast<double>(total(queue, &semaphore_stats::watch_events) - events0));
    etcd_side.add(etcd_metric(ctx.etcd, etcd_events) - etcd0);
    holder = &next->sem;
  }
  (void)holder->release();

  ctx.check(per_release.sane(0) && per_release.sum() > 0, "herd: no watch events counted");
  const double mean = per_release.sum() / static_cast<double>(per_release.size());
  ctx.rows.push_back({"herd: watch events per release (" + std::to_string(waiters) + " waiters)",
                      fixed(per_release.p50(), 0), fixed(per_release.p99(), 0),
                      "etcd sent " +
                          fixed(etcd_side.sum() / static_cast<double>(etcd_side.size()), 1) +
                          "/release",
                      fixed(mean, 2) + " (mean)", "≤ 2", verdict(mean <= 2)});
}

namespace {

// Whole cycles of one or more runs of the same kind, with what etcd served
// and the CPU both sides used meanwhile; per-cycle figures are derived.
struct scale_run {
  samples cycles;
  double seconds = 0;
  double unary = 0, watch_messages = 0;  // etcd's counts
  double client_cpu = 0, etcd_cpu = 0;   // seconds: this process's, etcd's

  void add(const scale_run& o) {
    for (double v : o.cycles.values()) cycles.add(v);
    seconds += o.seconds;
    unary += o.unary;
    watch_messages += o.watch_messages;
    client_cpu += o.client_cpu;
    etcd_cpu += o.etcd_cpu;
  }
  double n() const { return static_cast<double>(std::max<std::size_t>(cycles.size(), 1)); }
  double rate() const { return seconds > 0 ? static_cast<double>(cycles.size()) / seconds : 0; }
  double calls() const { return unary / n(); }
  double watch_msgs() const { return watch_messages / n(); }
  /// "2.0 calls; CPU 300 µs client, 500 µs etcd"
  std::string per_cycle() const {
    return fixed(calls(), 1) + " calls; CPU " + fixed(client_cpu * 1e6 / n(), 0) + " µs client, " +
           fixed(etcd_cpu * 1e6 / n(), 0) + " µs etcd";
  }
};

// `threads` threads, each running `cycle(i)` (thread i's one cycle) in a loop
// for `run_for`; `what` names the run in its checks. Samples are of whole
// cycles; calls and watch messages are etcd's counts.
template <class Cycle>
scale_run run_cycles(context& ctx, int threads, std::chrono::milliseconds run_for,
                     const std::string& what, Cycle cycle) {
  std::atomic<bool> go{false};
  std::mutex m;
  scale_run out;
  std::vector<std::string> errors;
  std::vector<std::jthread> running;
  steady::time_point until;
  for (int i = 0; i < threads; ++i)
    running.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      samples mine;
      while (steady::now() < until) {
        const auto t0 = steady::now();
        if (result<void> r = cycle(i); !r) {
          std::lock_guard lock{m};
          errors.push_back(r.error().message);
          return;
        }
        mine.add(steady::now() - t0);
      }
      std::lock_guard lock{m};
      for (double v : mine.values()) out.cycles.add(v);
    });
  const auto served0 = etcd_served(ctx.etcd);
  const double client0 = cpu_seconds(::getpid()), etcd0 = cpu_seconds(ctx.etcd.pid());
  const auto start = steady::now();
  until = start + run_for;
  go.store(true);
  running.clear();  // joins
  out.seconds = std::chrono::duration<double>(steady::now() - start).count();
  const auto served1 = etcd_served(ctx.etcd);
  out.client_cpu = cpu_seconds(::getpid()) - client0;
  out.etcd_cpu = cpu_seconds(ctx.etcd.pid()) - etcd0;
  out.unary = served1.unary - served0.unary;
  out.watch_messages = served1.watch_messages - served0.watch_messages;
  ctx.check(errors.empty(), "scale " + what + ": " + (errors.empty() ? "" : errors.front()));
  ctx.check(out.cycles.sane(0.001), "scale " + what + ": no cycles");
  return out;
}

// `holders` sessions on one semaphore of `max` slots.
struct holders {
  std::vector<std::unique_ptr<contender>> cs;
  int max;
  holders(context& ctx, int n, int max_) : max(max_) {
    const std::string name = "scale-" + std::to_string(n) + "-" + std::to_string(max);
    for (int i = 0; i < n; ++i) cs.push_back(std::make_unique<contender>(ctx, name, max));
  }
};

// Each holder running acquire+release in a loop for `run_for`.
scale_run run_scale(context& ctx, holders& h, std::chrono::milliseconds run_for) {
  const int n = static_cast<int>(h.cs.size());
  return run_cycles(ctx, n, run_for, std::to_string(n) + " on max " + std::to_string(h.max),
                    [&](int i) -> result<void> {
                      auto& sem = h.cs[static_cast<std::size_t>(i)]->sem;
                      if (auto a = sem.acquire("{\"name\":\"bench\"}"); !a) return a.error();
                      return sem.release();
                    });
}

// What etcd gives `writers` threads that only write: each runs a cycle of
// two plain Puts (as many calls as an uncontended acquire+release) in a loop
// for `run_for`, through the same client as the holders. The rate is what
// "until etcd saturates" means on this machine, in this run.
scale_run run_put_writers(context& ctx, int writers, std::chrono::milliseconds run_for) {
  std::vector<put_request> puts;
  for (int i = 0; i < writers; ++i)
    puts.push_back({ctx.prefix + "scale-put/" + std::to_string(i), "{\"name\":\"bench\"}", 0});
  return run_cycles(ctx, writers, run_for, std::to_string(writers) + " Put writers",
                    [&](int i) -> result<void> {
                      const auto& put = puts[static_cast<std::size_t>(i)];
                      for (int k = 0; k < 2; ++k)
                        if (auto r = ctx.client.put(put, ctx.client.default_deadline()); !r)
                          return r.error();
                      return {};
                    });
}

// What etcd gives `writers` threads that send the holders' own writes with
// none of the protocol around them: per cycle, the uncontended acquire's txn
// (compare an empty queue range, a free slot and no held marker; put the
// slot with a lease and the marker) and the release's (compare the slot's
// create revision; delete slot and marker), each thread on keys of its own.
// This is where etcd saturates for the holders' work, on this machine in
// this run; the Put writers above are the same for the cheapest write.
struct txn_writers {
  context& ctx;
  std::vector<lease_id> leases;
  txn_writers(context& c, int writers) : ctx(c) {
    for (int i = 0; i < writers; ++i) {
      auto g = ctx.client.lease_grant(60, ctx.client.default_deadline());
      if (!g) throw std::runtime_error("lease grant: " + g.error().message);
      leases.push_back(g->id);
    }
  }
  txn_writers(const txn_writers&) = delete;
  txn_writers& operator=(const txn_writers&) = delete;
  ~txn_writers() {
    for (auto l : leases) (void)ctx.client.lease_revoke(l, ctx.client.default_deadline());
  }

  scale_run run(std::chrono::milliseconds run_for) {
    const std::string dir = ctx.prefix + "scale-txn/";
    const int writers = static_cast<int>(leases.size());
    return run_cycles(ctx, writers, run_for, std::to_string(writers) + " txn writers",
                      [&](int i) -> result<void> {
                        const std::string own = dir + std::to_string(i);
                        const std::string slot = own + "/slot", marker = own + "/held",
                                          queue = own + "/queue/";
                        txn_request take;
                        compare empty = compare::create_revision(queue) < 1;
                        empty.range_end = prefix_end(queue);
                        take.compares = {empty, compare::create_revision(slot) == 0,
                                         compare::create_revision(marker) == 0};
                        take.success.emplace_back(put_request{slot, "{\"name\":\"bench\"}",
                                                              leases[static_cast<std::size_t>(i)]});
                        take.success.emplace_back(put_request{marker, "bench", 0});
                        auto taken = ctx.client.txn(take, ctx.client.default_deadline());
                        if (!taken) return taken.error();
                        if (!taken->succeeded)
                          return error{errc::internal, "txn writer: its slot was taken"};
                        txn_request give =
                            fenced_release({slot, taken->header_revision, 0});  // as release() does
                        give.success.emplace_back(delete_request{marker, {}, false});
                        auto given = ctx.client.txn(give, ctx.client.default_deadline());
                        if (!given) return given.error();
                        return {};
                      });
  }
};

}  // namespace

// K holders on K slots should run K times one holder's rate until etcd
// saturates (target ≥ 0.8 × the lesser of K × one holder and etcd's ceiling
// for the same writes: K txn writers). K threads of Put pairs show etcd's
// ceiling for the cheapest write beside it. For each K the three kinds run in
// turns of a quarter of the time each (Put writers, txn writers, holders,
// four times over), so a change in the machine's load falls on both sides of
// the ratio alike. 64 holders on one slot show the contended line.
void measure_scale(context& ctx) {
  const auto run_for = ctx.quick ? 1500ms : 8000ms;
  const int turns = ctx.quick ? 1 : 4;
  const auto turn = run_for / turns;
  std::map<int, scale_run> put_runs, txn_runs, holder_runs;
  for (int k : {1, 8, 64}) {
    holders h{ctx, k, k};
    txn_writers t{ctx, k};
    for (int i = 0; i < turns; ++i) {
      put_runs[k].add(run_put_writers(ctx, k, turn));
      txn_runs[k].add(t.run(turn));
      holder_runs[k].add(run_scale(ctx, h, turn));
    }
  }
  for (int k : {1, 8, 64})
    for (auto [runs, who, cycle] : {std::tuple{&put_runs, "Put writer", "2-Put cycle"},
                                    std::tuple{&txn_runs, "txn writer", "the holders' 2 txns"}}) {
      const scale_run& w = (*runs)[k];
      ctx.rows.push_back({"scale: " + std::to_string(k) + " " + who + (k == 1 ? "" : "s") +
                              " (no semaphore), " + cycle + " [" + w.per_cycle() + "]",
                          ms(w.cycles.p50()), ms(w.cycles.p99()), "—",
                          "(" + fixed(w.rate(), 0) + "/s)", "—", "—"});
    }
  scale_run contended;
  {
    holders h{ctx, 64, 1};
    contended = run_scale(ctx, h, run_for);
  }
  const double single = holder_runs[1].rate();
  for (auto [k, max] : {std::pair{1, 1}, {8, 8}, {64, 64}, {64, 1}}) {
    const scale_run& r = max == 1 && k > 1 ? contended : holder_runs[k];
    const double ideal = single * (max == 1 ? 1 : k);
    const bool targeted = k > 1 && max == k;
    const double etcd = put_runs[k].rate(), txn = txn_runs[k].rate();
    const double ceiling = std::min(ideal, txn);  // "until etcd saturates"
    ctx.rows.push_back({"scale: " + std::to_string(k) + (k == 1 ? " holder" : " holders") +
                            " (max " + std::to_string(max) + "), acquire+release cycle [" +
                            r.per_cycle() + ", " + fixed(r.watch_msgs(), 1) + " watch msgs]",
                        ms(r.cycles.p50()), ms(r.cycles.p99()),
                        (k == 1 ? std::string{}
                                : (max == 1 ? "" : std::to_string(k) + " × ") + "1 holder " +
                                      fixed(single, 0) + "/s; ") +
                            std::to_string(k) + " Put writers " + fixed(etcd, 0) +
                            "/s; txn writers " + fixed(txn, 0) + "/s",
                        times(r.rate() / ideal) + "; " + times(r.rate() / etcd) + " of writers; " +
                            times(r.rate() / txn) + " of txn writers (" + fixed(r.rate(), 0) +
                            "/s)",
                        targeted ? "≥ 0.8× min(K × 1, txn writers)" : "—",
                        targeted ? verdict(r.rate() >= 0.8 * ceiling) : "—"});
  }
}

}  // namespace conch::bench
