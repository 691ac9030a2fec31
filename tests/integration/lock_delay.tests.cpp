// The lock delay against a real etcd: after an unclean loss (a revoked lease,
// a key deleted by hand) the next holder's campaign / acquire returns no
// sooner than the delay after the loss; a clean resign / release hands over
// at once; a slot released cleanly is taken before one in its delay.
//
// The assertions are orderings: "returned after revoke + delay" compares the
// steady clock read before the revoke with the one read after the return.
#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/logic/keys.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/semaphore.hpp"

#include "support/catch_result.hpp"
#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>

using namespace std::chrono_literals;
using conch::errc;
using conch::test::etcd_server;
using conch::test::eventually;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto delay = 1500ms;
constexpr auto long_delay = 60s;  // a clean hand-over must not wait for it

struct candidate {
  conch::session session;
  conch::election office;
  candidate(conch::etcd_transport& t, const std::string& prefix)
      : session(t, conch::session::options{30s, {}}), office(session, prefix, "office") {
    REQUIRE(session.start());
  }
};

struct taker {
  conch::session session;
  conch::semaphore pool;
  taker(conch::etcd_transport& t, const std::string& prefix, int max)
      : session(t, conch::session::options{30s, {}}), pool(session, prefix, "pool", max) {
    REQUIRE(session.start());
  }
};

// A blocking call on its own thread, stopped and joined on destruction. What
// the thread touches lives on the heap, so a background may be moved.
class background {
 public:
  template <class F>
  explicit background(F f) {
    done_ = std::async(std::launch::async, [s = shared_.get(), f] {
      auto r = f(s->stop.get_token());
      s->returned = steady::now();
      return r;
    });
  }
  background(background&&) = default;
  background& operator=(background&&) = delete;
  ~background() {
    if (shared_) shared_->stop.request_stop();
    if (done_.valid()) done_.wait();
  }
  bool finished_within(std::chrono::milliseconds d) {
    return done_.wait_for(d) == std::future_status::ready;
  }
  conch::result<void> outcome() { return done_.get(); }
  steady::time_point returned() const { return shared_->returned; }

 private:
  struct state {
    std::stop_source stop;
    steady::time_point returned{};
  };
  std::unique_ptr<state> shared_ = std::make_unique<state>();
  std::future<conch::result<void>> done_;
};

background campaign_later(candidate& c, std::chrono::milliseconds d, bool nonblock = false) {
  return background([&c, d, nonblock](std::stop_token stop) {
    conch::election::campaign_options o;
    o.lock_delay = d;
    o.nonblock = nonblock;
    o.stop = stop;
    return c.office.campaign("v", o);
  });
}

background acquire_later(taker& c, std::chrono::milliseconds d) {
  return background([&c, d](std::stop_token stop) {
    conch::semaphore::acquire_options o;
    o.lock_delay = d;
    o.stop = stop;
    return c.pool.acquire("v", o);
  });
}

// What every case starts from: the shared etcd, a client and a fresh prefix.
struct lock_delay_case {
  etcd_server& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const std::string prefix = conch::test::unique_prefix();

  /// How many keys live under prefix + `dir`.
  std::size_t count(const std::string& dir) {
    auto r = t.range(conch::range_request::prefix(prefix + dir), t.default_deadline());
    REQUIRE(r);
    return r->kvs.size();
  }
  /// Whether `n` keys come to live under prefix + `dir` (a waiter has queued).
  bool await_count(const std::string& dir, std::size_t n) {
    return eventually([&] { return count(dir) == n; }, 5s);
  }
  /// `a` leads; `b` campaigns behind it with lock delay `d` and has queued.
  background campaign_behind(candidate& a, candidate& b, std::chrono::milliseconds d) {
    REQUIRE(a.office.campaign("a"));
    auto bw = campaign_later(b, d);
    REQUIRE(await_count("elect/office/", 2));
    return bw;
  }
  /// `a` holds the one slot; `b` asks behind it with lock delay `d` and has queued.
  background acquire_behind(taker& a, taker& b, std::chrono::milliseconds d) {
    REQUIRE(a.pool.acquire("a"));
    auto bw = acquire_later(b, d);
    REQUIRE(await_count("sema/pool/max=1/queue/", 1));
    return bw;
  }
  /// `lose` ends the holder uncleanly; the waiter `w` then gets its turn, and
  /// no sooner than the lock delay after the loss.
  static void check_waits_out_delay(background& w, const std::function<void()>& lose) {
    const auto lost = steady::now();
    lose();
    REQUIRE(w.finished_within(20s));
    REQUIRE(w.outcome());
    CHECK(w.returned() >= lost + delay);
  }
};

}  // namespace

TEST_CASE_METHOD(lock_delay_case,
                 "election: a revoked leader's successor leads only after the lock delay") {
  candidate a{t, prefix}, b{t, prefix};
  auto bw = campaign_behind(a, b, delay);
  check_waits_out_delay(bw, [&] { etcd.revoke_lease(a.session.lease()); });
  CHECK(b.office.leading());
  // The stale marker is gone once sat out; b's own marker stays while it leads.
  CHECK(count("held/elect/office/") == 1);
  REQUIRE(b.office.resign());
  CHECK(count("held/") == 0);
}

TEST_CASE_METHOD(lock_delay_case,
                 "election: a clean resign hands over at once whatever the lock delay") {
  candidate a{t, prefix}, b{t, prefix};
  auto bw = campaign_behind(a, b, long_delay);
  CHECK_FALSE(bw.finished_within(200ms));
  REQUIRE(a.office.resign());
  REQUIRE(bw.finished_within(10s));  // long before the 60 s delay could end
  REQUIRE(bw.outcome());
  CHECK(b.office.leading());
}

TEST_CASE_METHOD(lock_delay_case,
                 "election: a key deleted by hand (no marker deleted with it) counts as unclean") {
  candidate a{t, prefix}, b{t, prefix};
  auto bw = campaign_behind(a, b, delay);
  check_waits_out_delay(bw, [&] { etcd.etcdctl_ok({"del", a.office.key()}); });
}

TEST_CASE_METHOD(lock_delay_case,
                 "election: a newcomer to an office lost uncleanly waits the delay too") {
  candidate a{t, prefix}, b{t, prefix}, c{t, prefix};
  REQUIRE(a.office.campaign("a"));
  etcd.revoke_lease(a.session.lease());
  REQUIRE(count("elect/office/") == 0);  // the revoke deleted the key
  // nonblock: busy while the delay runs, and its key is gone again.
  auto busy = campaign_later(c, delay, true);
  REQUIRE(busy.finished_within(10s));
  auto r = busy.outcome();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::busy);
  CHECK(count("elect/office/") == 0);

  const auto started = steady::now();
  auto bw = campaign_later(b, delay);
  REQUIRE(bw.finished_within(20s));
  REQUIRE(bw.outcome());
  CHECK(bw.returned() >= started + delay);
  REQUIRE(b.office.resign());
  // All clean now: the next one leads at once.
  auto cw = campaign_later(c, long_delay);
  REQUIRE(cw.finished_within(10s));
  REQUIRE(cw.outcome());
}

TEST_CASE_METHOD(lock_delay_case,
                 "election: lock_delay 0 keeps the immediate hand-over after an unclean loss") {
  candidate a{t, prefix}, b{t, prefix};
  auto bw = campaign_behind(a, b, 0ms);
  etcd.revoke_lease(a.session.lease());
  REQUIRE(bw.finished_within(10s));
  REQUIRE(bw.outcome());
}

TEST_CASE_METHOD(lock_delay_case,
                 "semaphore: a revoked holder's slot is taken only after the lock delay") {
  taker a{t, prefix, 1}, b{t, prefix, 1};
  auto bw = acquire_behind(a, b, delay);
  check_waits_out_delay(bw, [&] { etcd.revoke_lease(a.session.lease()); });
  CHECK(b.pool.holding());
  REQUIRE(b.pool.release());
  CHECK(count("held/") == 0);
}

TEST_CASE_METHOD(
    lock_delay_case,
    "semaphore: a clean release hands over at once, and a clean slot beats a delayed one") {
  taker a{t, prefix, 2}, c{t, prefix, 2}, b{t, prefix, 2};
  REQUIRE(a.pool.acquire("a"));
  REQUIRE(c.pool.acquire("c"));
  const int a_slot = a.pool.slot(), c_slot = c.pool.slot();
  auto bw = acquire_later(b, long_delay);
  REQUIRE(await_count("sema/pool/max=2/queue/", 1));
  etcd.revoke_lease(a.session.lease());  // a's slot: in its 60 s delay
  CHECK_FALSE(bw.finished_within(500ms));
  REQUIRE(c.pool.release());  // c's slot: free at once
  REQUIRE(bw.finished_within(10s));
  REQUIRE(bw.outcome());
  CHECK(b.pool.slot() == c_slot);
  CHECK(b.pool.slot() != a_slot);
}

TEST_CASE_METHOD(lock_delay_case, "semaphore: a slot key deleted by hand counts as unclean") {
  taker a{t, prefix, 1}, b{t, prefix, 1};
  auto bw = acquire_behind(a, b, delay);
  check_waits_out_delay(bw, [&] { etcd.etcdctl_ok({"del", a.pool.slot_key()}); });
}

TEST_CASE_METHOD(
    lock_delay_case,
    "semaphore: a newcomer with nobody waiting does not take a slot lost uncleanly at once") {
  taker a{t, prefix, 1}, b{t, prefix, 1};
  REQUIRE(a.pool.acquire("a"));
  etcd.revoke_lease(a.session.lease());
  REQUIRE(count("sema/pool/max=1/slot/") == 0);  // free, its marker left
  REQUIRE(count("held/") == 1);
  // The entering txn must not take it: it queues and sits out the delay.
  const auto started = steady::now();
  auto bw = acquire_later(b, delay);
  REQUIRE(bw.finished_within(20s));
  REQUIRE(bw.outcome());
  CHECK(b.pool.holding());
  CHECK(bw.returned() >= started + delay);
  CHECK(count("held/") == 1);  // b's own marker
  REQUIRE(b.pool.release());
  CHECK(count("held/") == 0);
}

TEST_CASE_METHOD(lock_delay_case,
                 "semaphore: the entering txn puts the held marker and skips a slot in its delay") {
  taker a{t, prefix, 2}, c{t, prefix, 2}, b{t, prefix, 2};
  REQUIRE(a.pool.acquire("a"));
  REQUIRE(c.pool.acquire("c"));
  CHECK(count("held/") == 2);  // each taken on entry, each with its marker
  const int a_slot = a.pool.slot(), c_slot = c.pool.slot();
  etcd.revoke_lease(a.session.lease());  // a's slot: in its 60 s delay
  REQUIRE(c.pool.release());             // c's slot: free and clean
  REQUIRE(count("sema/pool/max=2/slot/") == 0);
  auto bw = acquire_later(b, long_delay);
  REQUIRE(bw.finished_within(10s));  // long before the 60 s delay could end
  REQUIRE(bw.outcome());
  CHECK(b.pool.slot() == c_slot);
  CHECK(b.pool.slot() != a_slot);
  CHECK(count("sema/pool/max=2/queue/") == 0);  // taken on entry, never queued
}
