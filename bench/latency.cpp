// The floor, the uncontended cycle and the handoff — library against etcd's
// floor, etcdctl lock (the Go recipe) and etcd's server-side Lock service.
#include "conch/election.hpp"
#include "conch/logic/hex.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/semaphore.hpp"
#include "conch/session.hpp"

#include "bench.hpp"
#include "v3lock.grpc.pb.h"

#include <atomic>
#include <condition_variable>
#include <future>
#include <grpcpp/grpcpp.h>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace conch::bench {

namespace {

using namespace std::chrono_literals;

// About the size of the holder record the tools write.
std::string holder_value(const std::string& who) {
  return R"({"host":"bench-host.example","pid":12345,"start":"2025-11-23T10:30:00.000Z","lease":"694d9a4f1c2b3d01",)"
         R"("token":0,"name":")" +
         who + R"(","argv":["backup.sh","--full"],"version":"0.1.0"})";
}

template <class T>
T must(result<T> r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().message);
  return std::move(*r);
}
void must(result<void> r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().message);
}

double since_ms(steady::time_point t0, steady::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// A waiter on its own thread that stamps the moment its wait returned. The
// wait gets a stop token, requested on destruction (an early exit never
// leaves it blocked).
class stamped_wait {
 public:
  template <class F>
  explicit stamped_wait(F wait) {
    done_ = std::async(std::launch::async,
                       [this, wait = std::move(wait), stop = stop_.get_token()]() mutable {
                         auto r = wait(stop);
                         at_.store(steady::now().time_since_epoch().count());
                         return r;
                       });
  }
  ~stamped_wait() {
    stop_.request_stop();
    if (done_.valid()) done_.wait();
  }
  stamped_wait(const stamped_wait&) = delete;
  stamped_wait& operator=(const stamped_wait&) = delete;

  /// When the wait returned; throws if it failed or took over `limit`.
  steady::time_point finish(const std::string& what, std::chrono::milliseconds limit = 10s) {
    if (done_.wait_for(limit) != std::future_status::ready)
      throw std::runtime_error(what + ": no handoff within 10 s");
    must(done_.get(), what);
    return steady::time_point(steady::duration(at_.load()));
  }

 private:
  std::stop_source stop_;
  std::atomic<steady::rep> at_{0};
  std::future<result<void>> done_;
};

// Waits until `n` keys live under `prefix` (the waiter is queued), then a
// further 10-50 ms, so the release finds a waiter that has settled in.
void queue_then_pause(context& ctx, const std::string& prefix, std::int64_t n,
                      const std::string& what) {
  if (!await([&] { return count_keys(ctx.client, prefix) >= n; }, 10s, 500us))
    throw std::runtime_error(what + ": the waiter never queued under " + prefix);
  std::this_thread::sleep_for(ctx.queue_delay());
}

// The etcd calls made between a release and the next holder's return.
struct call_tally {
  double unary = 0, watch_messages = 0;
  int handoffs = 0;
  void add(const etcd_calls& before, const etcd_calls& after) {
    unary += after.unary - before.unary;
    watch_messages += after.watch_messages - before.watch_messages;
    ++handoffs;
  }
  std::string text() const {
    return " [" + fixed(unary / handoffs, 1) + " calls, " + fixed(watch_messages / handoffs, 1) +
           " watch msgs]";
  }
};

// A handoff's release is sent after the waiter has settled in (a pause of
// 10-50 ms: queue_then_pause), when etcd and the client have gone idle; the
// first call after such a pause costs this machine about twice a call made
// back to back (waking idle CPUs and etcd's parked goroutines). So each
// handoff repetition is paired with one Put sent after a pause drawn the
// same way: the like-for-like floor of the ratio. The back-to-back Put of
// the floor row is shown beside it.
void time_paused_put(context& ctx, samples& into) {
  std::this_thread::sleep_for(ctx.queue_delay());
  const auto t0 = steady::now();
  must(ctx.client.put({ctx.prefix + "paused-put", "v", 0}, ctx.client.default_deadline()), "put");
  into.add(steady::now() - t0);
}

row handoff_row(const std::string& name, const samples& s, const samples& paused, double put_p50,
                double target) {
  const double ratio = s.p50() / paused.p50();
  return {name,
          ms(s.p50()),
          ms(s.p99()),
          "1× Put after the same pause " + ms(paused.p50()) + " (back to back " + ms(put_p50) +
              ": " + times(s.p50() / put_p50) + ")",
          times(ratio),
          "≤ " + fixed(target, 0) + "×",
          verdict(ratio <= target)};
}

// Etcd's server-side Lock service (v3lock): Lock blocks until held.
class v3lock_client {
 public:
  explicit v3lock_client(const std::string& endpoint)
      : stub_(v3lockpb::Lock::NewStub(
            grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()))) {}

  result<std::string> lock(const std::string& name, lease_id lease) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 15s);
    v3lockpb::LockRequest in;
    in.set_name(name);
    in.set_lease(lease);
    v3lockpb::LockResponse out;
    auto st = stub_->Lock(&c, in, &out);
    if (!st.ok()) return error{errc::unavailable, "v3lock Lock: " + st.error_message()};
    return out.key();
  }
  result<void> unlock(const std::string& key) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 10s);
    v3lockpb::UnlockRequest in;
    in.set_key(key);
    v3lockpb::UnlockResponse out;
    auto st = stub_->Unlock(&c, in, &out);
    if (!st.ok()) return error{errc::unavailable, "v3lock Unlock: " + st.error_message()};
    return {};
  }

 private:
  std::unique_ptr<v3lockpb::Lock::Stub> stub_;
};

samples handoff_semaphore(context& ctx, int reps, call_tally& tally, samples& paused) {
  session a{ctx.client, {30s, {}}}, b{ctx.client, {30s, {}}};
  must(a.start(), "session");
  must(b.start(), "session");
  semaphore sa{a, ctx.prefix, "handoff", 1}, sb{b, ctx.prefix, "handoff", 1};
  const std::string value = holder_value("handoff");
  must(sa.acquire(value), "semaphore acquire");
  semaphore *holder = &sa, *waiter = &sb;
  samples s;
  for (int i = 0; i < reps; ++i) {
    stamped_wait next([waiter, &value](std::stop_token stop) {
      semaphore::acquire_options o;
      o.stop = std::move(stop);
      return waiter->acquire(value, o);
    });
    queue_then_pause(ctx, sa.office() + "queue/", 1, "semaphore handoff");
    const auto calls0 = etcd_served(ctx.etcd);
    const auto t0 = steady::now();
    must(holder->release(), "semaphore release");
    s.add(since_ms(t0, next.finish("semaphore handoff")));
    tally.add(calls0, etcd_served(ctx.etcd));
    time_paused_put(ctx, paused);
    std::swap(holder, waiter);
  }
  must(holder->release(), "semaphore release");
  return s;
}

samples handoff_election(context& ctx, int reps, call_tally& tally, samples& paused) {
  session a{ctx.client, {30s, {}}}, b{ctx.client, {30s, {}}};
  must(a.start(), "session");
  must(b.start(), "session");
  election ea{a, ctx.prefix, "handoff"}, eb{b, ctx.prefix, "handoff"};
  const std::string value = holder_value("handoff");
  must(ea.campaign(value), "campaign");
  election *leader = &ea, *next_in_line = &eb;
  samples s;
  for (int i = 0; i < reps; ++i) {
    stamped_wait next([next_in_line, &value](std::stop_token stop) {
      election::campaign_options o;
      o.stop = std::move(stop);
      return next_in_line->campaign(value, o);
    });
    queue_then_pause(ctx, ea.office(), 2, "election handoff");
    const auto calls0 = etcd_served(ctx.etcd);
    const auto t0 = steady::now();
    must(leader->resign(), "resign");
    s.add(since_ms(t0, next.finish("election handoff")));
    tally.add(calls0, etcd_served(ctx.etcd));
    time_paused_put(ctx, paused);
    std::swap(leader, next_in_line);
  }
  must(leader->resign(), "resign");
  return s;
}

// The Go recipe (clientv3/concurrency.Mutex) through `etcdctl lock NAME`.
// The holder is written the way that recipe writes it — `NAME/<lease hex>`
// with the lease — and released the way it releases (a delete), so only the
// waiter's side differs from conch's. Acquisition is the key line etcdctl
// prints once it holds (after one more Get of its key).
samples handoff_etcdctl(context& ctx, int reps) {
  auto& t = ctx.client;
  const std::string name = ctx.prefix + "golock";
  const auto lease = must(t.lease_grant(600, t.default_deadline()), "lease grant");
  const std::string holder_key = name + "/" + detail::lease_hex(lease.id);
  samples s;
  for (int i = 0; i < reps; ++i) {
    must(t.put({holder_key, "", lease.id}, t.default_deadline()), "holder put");
    auto argv = ctx.etcdctl();
    argv.insert(argv.end(), {"lock", name});
    process waiter{{.argv = argv,
                    .env = {"ETCDCTL_API=3"},
                    .stderr_path = ctx.tmp / "etcdctl-lock.log",
                    .stdout_pipe = true}};
    queue_then_pause(ctx, name + "/", 2, "etcdctl lock handoff");
    const auto t0 = steady::now();
    must(t.delete_range({holder_key, {}, false}, t.default_deadline()), "holder delete");
    auto line = waiter.read_line(t0 + 10s);
    const auto t1 = steady::now();
    if (!line || line->rfind(name + "/", 0) != 0)
      throw std::runtime_error("etcdctl lock printed no key within 10 s (" +
                               read_text(ctx.tmp / "etcdctl-lock.log") + ")");
    s.add(since_ms(t0, t1));
    const int code = waiter.stop(SIGINT);  // etcdctl unlocks on SIGINT
    if (code != 0)
      throw std::runtime_error("etcdctl lock exited " + std::to_string(code) + " after SIGINT");
  }
  (void)t.lease_revoke(lease.id, t.default_deadline());
  return s;
}

samples handoff_v3lock(context& ctx, int reps) {
  auto& t = ctx.client;
  v3lock_client locks{ctx.etcd.endpoint()};
  const std::string name = ctx.prefix + "v3lock";
  lease_id leases[2] = {must(t.lease_grant(600, t.default_deadline()), "lease grant").id,
                        must(t.lease_grant(600, t.default_deadline()), "lease grant").id};
  std::string held = must(locks.lock(name, leases[0]), "v3lock");
  samples s;
  for (int i = 0; i < reps; ++i) {
    std::string next_key;
    const lease_id next_lease = leases[(i + 1) % 2];
    stamped_wait next([&](std::stop_token) {
      auto k = locks.lock(name, next_lease);
      if (!k) return result<void>{std::move(k).error()};
      next_key = std::move(*k);
      return result<void>{};
    });
    queue_then_pause(ctx, name + "/", 2, "v3lock handoff");
    const auto t0 = steady::now();
    must(locks.unlock(held), "v3lock unlock");
    s.add(since_ms(t0, next.finish("v3lock handoff")));
    held = next_key;
  }
  (void)locks.unlock(held);
  for (auto l : leases) (void)t.lease_revoke(l, t.default_deadline());
  return s;
}

// What any handoff by watch events pays before the waiter acts: from a
// Put's send until a thread already waiting on a watch of that key (the
// same client, as the recipes' waiters share their holder's) holds the
// event. An event-driven semaphore handoff costs at least this plus the
// waiter's own write; an election handoff at least this.
samples put_to_event(context& ctx, int n) {
  auto& t = ctx.client;
  const put_request put{ctx.prefix + "floor/watched", holder_value("floor"), 0};
  const auto first = must(t.put(put, t.default_deadline()), "put");
  watch_request w;
  w.key = put.key;
  w.start_revision = first.header_revision + 1;  // every later Put is an event
  auto stream = t.watch(w);
  std::mutex m;
  std::condition_variable arrived;
  std::vector<steady::time_point> seen;
  std::jthread waiter([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      auto b = stream.next(steady::now() + 200ms);
      if (!b || b->events.empty()) continue;
      std::lock_guard lock{m};
      for (std::size_t i = 0; i < b->events.size(); ++i) seen.push_back(steady::now());
      arrived.notify_all();
    }
  });
  samples out;
  for (int i = -20; i < n; ++i) {  // the first rounds warm the watch up
    const auto t0 = steady::now();
    must(t.put(put, t.default_deadline()), "put");
    std::unique_lock lock{m};
    const bool got =
        arrived.wait_for(lock, 5s, [&] { return seen.size() == static_cast<std::size_t>(i + 21); });
    ctx.check(got, "floor: a Put's event never reached the watch");
    if (!got) break;
    if (i >= 0) out.add(seen.back() - t0);
  }
  waiter.request_stop();
  stream.cancel();
  return out;
}

}  // namespace

void measure_floor(context& ctx) {
  auto& t = ctx.client;
  const int n = ctx.reps_for(200, 2000);
  const put_request put{ctx.prefix + "floor/key", holder_value("floor"), 0};
  range_request get;
  get.key = put.key;
  samples puts, gets;
  for (int i = -20; i < n; ++i) {  // 20 rounds to warm the channel up
    const auto t0 = steady::now();
    must(t.put(put, t.default_deadline()), "put");
    const auto t1 = steady::now();
    must(t.range(get, t.default_deadline()), "range");
    const auto t2 = steady::now();
    if (i < 0) continue;
    puts.add(t1 - t0);
    gets.add(t2 - t1);
  }
  ctx.put_p50 = puts.p50();
  ctx.check(puts.sane(0.001) && gets.sane(0.001), "floor: non-positive or missing latencies");
  ctx.rows.push_back({"floor: raw Put", ms(puts.p50()), ms(puts.p99()), "—", "1.00×", "—", "—"});
  ctx.rows.push_back({"floor: linearizable Range", ms(gets.p50()), ms(gets.p99()),
                      "1× Put " + ms(ctx.put_p50), times(gets.p50() / ctx.put_p50), "—", "—"});
  const samples seen = put_to_event(ctx, n);
  ctx.rows.push_back({"floor: Put → its event on a waiting watch (another thread)", ms(seen.p50()),
                      ms(seen.p99()), "1× Put " + ms(ctx.put_p50), times(seen.p50() / ctx.put_p50),
                      "—", "—"});
}

void measure_uncontended(context& ctx) {
  auto& t = ctx.client;
  const int n = ctx.reps_for(50, 500);
  session s{t, {30s, {}}};
  must(s.start(), "session");
  semaphore sem{s, ctx.prefix, "uncontended", 1};
  election office{s, ctx.prefix, "uncontended"};
  const std::string value = holder_value("uncontended");
  const put_request put{ctx.prefix + "uncontended-put", value, 0};
  // Interleaved, so a change in the machine's load hits every column alike.
  samples two_puts, sema, sema_acquire, elect;
  for (int i = -10; i < n; ++i) {
    const auto t0 = steady::now();
    must(t.put(put, t.default_deadline()), "put");
    must(t.put(put, t.default_deadline()), "put");
    const auto t1 = steady::now();
    must(sem.acquire(value), "semaphore acquire");
    const auto t2 = steady::now();
    must(sem.release(), "semaphore release");
    const auto t3 = steady::now();
    must(office.campaign(value), "campaign");
    must(office.resign(), "resign");
    const auto t4 = steady::now();
    if (i < 0) continue;
    two_puts.add(t1 - t0);
    sema.add(t3 - t1);
    sema_acquire.add(t2 - t1);
    elect.add(t4 - t3);
  }
  ctx.check(two_puts.sane(0.001) && sema.sane(0.001) && elect.sane(0.001),
            "uncontended: bad latencies");

  // What one cycle costs etcd, counted by etcd itself (untimed passes).
  auto calls = [&](auto cycle) {
    const int passes = 20;
    const auto before = etcd_served(ctx.etcd);
    for (int i = 0; i < passes; ++i) cycle();
    const auto after = etcd_served(ctx.etcd);
    return " [" + fixed((after.unary - before.unary) / passes, 1) + " calls, " +
           fixed((after.watch_messages - before.watch_messages) / passes, 1) + " watch msgs]";
  };
  const std::string sema_calls = calls([&] {
    must(sem.acquire(value), "semaphore acquire");
    must(sem.release(), "semaphore release");
  });
  const std::string elect_calls = calls([&] {
    must(office.campaign(value), "campaign");
    must(office.resign(), "resign");
  });
  const std::string put_calls = calls([&] {
    must(t.put(put, t.default_deadline()), "put");
    must(t.put(put, t.default_deadline()), "put");
  });

  const std::string base = "2× Put " + ms(two_puts.p50()) + put_calls;
  const double rs = sema.p50() / two_puts.p50(), re = elect.p50() / two_puts.p50();
  ctx.rows.push_back({"uncontended: semaphore (max 1) acquire+release" + sema_calls, ms(sema.p50()),
                      ms(sema.p99()), base, times(rs), "≤ 1.2×", verdict(rs <= 1.2)});
  ctx.rows.push_back({"uncontended: election campaign+resign" + elect_calls, ms(elect.p50()),
                      ms(elect.p99()), base, times(re), "≤ 1.2×", verdict(re <= 1.2)});
  std::cerr << " [semaphore acquire alone p50 " << ms(sema_acquire.p50()) << "]";
}

void measure_handoff(context& ctx) {
  const int n = ctx.reps_for(8, 40);
  call_tally sema_calls, elect_calls;
  samples paused;  // one Put after a settling pause per handoff, from both recipes' runs
  const samples sema = handoff_semaphore(ctx, n, sema_calls, paused);
  const samples elect = handoff_election(ctx, n, elect_calls, paused);
  const samples v3 = handoff_v3lock(ctx, ctx.reps_for(5, 30));
  const samples go = handoff_etcdctl(ctx, ctx.reps_for(4, 25));
  ctx.check(sema.sane(0.001) && elect.sane(0.001) && v3.sane(0.001) && go.sane(0.001) &&
                paused.sane(0.001),
            "handoff: bad latencies");
  ctx.rows.push_back(
      handoff_row("handoff: conch semaphore" + sema_calls.text(), sema, paused, ctx.put_p50, 3));
  ctx.rows.push_back(
      handoff_row("handoff: conch election" + elect_calls.text(), elect, paused, ctx.put_p50, 2));
  const std::string vs_conch = "conch sema " + ms(sema.p50());
  const double go_ratio = go.p50() / sema.p50();
  ctx.rows.push_back({"handoff: etcdctl lock (Go recipe)", ms(go.p50()), ms(go.p99()), vs_conch,
                      times(go_ratio), "≥ 10× conch", verdict(go_ratio >= 10)});
  ctx.rows.push_back({"handoff: etcd v3lock service", ms(v3.p50()), ms(v3.p99()), vs_conch,
                      times(v3.p50() / sema.p50()), "—", "—"});
}

}  // namespace conch::bench
