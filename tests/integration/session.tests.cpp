// session against a real etcd: keepalive, the local deadline, and every way to be lost.
#include "conch/session.hpp"

#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/semaphore.hpp"

#include "support/catch_result.hpp"
#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using conch::test::etcd_server;
using steady = std::chrono::steady_clock;

namespace {

using conch::test::eventually;

conch::session::options with_ttl(std::chrono::seconds ttl,
                                 std::optional<std::chrono::milliseconds> margin = {}) {
  conch::session::options o;
  o.ttl = ttl;
  o.margin = margin;
  return o;
}

// When the session's lost token fired, on the real clock.
struct loss_clock {
  std::atomic<steady::rep> at{0};
  std::stop_callback<std::function<void()>> on_lost;
  explicit loss_clock(const conch::session& s)
      : on_lost(s.lost_token(),
                std::function<void()>([this] { at = steady::now().time_since_epoch().count(); })) {}
  bool fired() const { return at.load() != 0; }
  steady::time_point when() const { return steady::time_point{steady::duration{at.load()}}; }
};

void attach(conch::etcd_transport& t, const std::string& key, conch::lease_id lease) {
  conch::put_request put;
  put.key = key;
  put.value = "held";
  put.lease = lease;
  REQUIRE(t.put(put, t.default_deadline()));
}

// The etcd transport without its watch sets: a session on it guards each key
// with a thread and a stream of its own, as on any transport without them.
class stream_per_guard {
 public:
  explicit stream_per_guard(conch::etcd_transport& t) : t_(t) {}
  auto range(const conch::range_request& r, conch::deadline d) { return t_.range(r, d); }
  auto put(const conch::put_request& r, conch::deadline d) { return t_.put(r, d); }
  auto delete_range(const conch::delete_request& r, conch::deadline d) {
    return t_.delete_range(r, d);
  }
  auto txn(const conch::txn_request& r, conch::deadline d) { return t_.txn(r, d); }
  auto lease_grant(std::int64_t ttl, conch::deadline d) { return t_.lease_grant(ttl, d); }
  auto lease_revoke(conch::lease_id id, conch::deadline d) { return t_.lease_revoke(id, d); }
  auto lease_time_to_live(conch::lease_id id, conch::deadline d) {
    return t_.lease_time_to_live(id, d);
  }
  auto keepalive(conch::lease_id id) { return t_.keepalive(id); }
  auto watch(const conch::watch_request& r) { return t_.watch(r); }
  conch::deadline default_deadline() { return t_.default_deadline(); }

 private:
  conch::etcd_transport& t_;
};
static_assert(conch::transport<stream_per_guard> && !conch::watch_sets<stream_per_guard>);
struct stream_per_guard_policies : conch::default_policies {
  using transport = stream_per_guard;
};

// Ten guarded keys of one session: the five unguarded first are deleted
// without a loss, then deleting a sixth loses the session, naming it.
template <class Session, class Transport>
void guards_ten_keys(conch::etcd_transport& etcd, Transport& t) {
  const auto prefix = conch::test::unique_prefix();
  Session s{t, typename Session::options{30s}};
  REQUIRE(s.start());
  for (int i = 0; i < 10; ++i) {
    attach(etcd, prefix + std::to_string(i), s.lease());
    s.guard_key(prefix + std::to_string(i));
  }
  for (int i = 0; i < 5; ++i) s.unguard_key(prefix + std::to_string(i));
  for (int i = 0; i < 5; ++i) etcd_server::shared().etcdctl_ok({"del", prefix + std::to_string(i)});
  etcd_server::shared().etcdctl_ok({"del", prefix + "7"});
  REQUIRE(eventually([&] { return s.lost(); }, 10s));
  CHECK_THAT(s.lost_reason(), Catch::Contains("guarded key " + prefix + "7 was deleted"));
}

}  // namespace

TEST_CASE("a started session holds a granted lease and renews it at TTL/3") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::session s{t, with_ttl(3s)};
  REQUIRE(s.start());
  REQUIRE(s.lease() != 0);
  REQUIRE(s.ttl() >= 3s);

  const auto first = s.local_deadline();
  // A keepalive is acknowledged about every second: the deadline moves forward.
  REQUIRE(eventually([&] { return s.local_deadline() > first; }, 3s));
  REQUIRE(eventually([&] { return s.local_deadline() > first + 1500ms; }, 4s));
  REQUIRE_FALSE(s.lost());

  auto ttl = t.lease_time_to_live(s.lease(), t.default_deadline());
  REQUIRE(ttl);
  REQUIRE(ttl->ttl > 0);
}

TEST_CASE("each move of the local deadline is announced at once, with the new deadline") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::session s{t, with_ttl(3s)};
  std::mutex m;
  std::vector<steady::time_point> announced;
  s.on_deadline_moved([&](steady::time_point d) {
    std::lock_guard lock{m};
    announced.push_back(d);
  });
  REQUIRE(s.start());
  const auto first = s.local_deadline();
  // Keepalives about every second: two moves carry the deadline 1.5 s past the first.
  REQUIRE(eventually(
      [&] {
        std::lock_guard lock{m};
        return !announced.empty() && announced.back() > first + 1500ms;
      },
      4s));
  std::lock_guard lock{m};
  CHECK(std::is_sorted(announced.begin(), announced.end()));
  CHECK(announced.front() > first);
  CHECK(announced.back() <= s.local_deadline());  // announced once it was the deadline
}

TEST_CASE("etcdctl lease revoke: lost within one event delivery through the guarded key") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  // The first keepalive is 20 s away: only the watch can notice in time.
  conch::session s{t, with_ttl(60s)};
  REQUIRE(s.start());
  const auto key = conch::test::unique_prefix() + "mine";
  attach(t, key, s.lease());
  s.guard_key(key);
  loss_clock loss{s};

  const auto revoked = steady::now();
  etcd.revoke_lease(s.lease());
  REQUIRE(eventually([&] { return loss.fired(); }, 10s));
  CHECK(loss.when() - revoked < 10s);
  CHECK(s.lost());
  CHECK_THAT(s.lost_reason(), Catch::Contains("deleted"));
}

TEST_CASE("a revoked lease with no guarded key is lost at the next keepalive") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::session s{t, with_ttl(3s)};
  REQUIRE(s.start());
  etcd.revoke_lease(s.lease());
  REQUIRE(eventually([&] { return s.lost(); }, 5s));
  CHECK_THAT(s.lost_reason(), Catch::Contains("expired or was revoked"));
}

TEST_CASE("deleting a guarded key loses the session; an unguarded delete does not") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();

  conch::session quiet{t, with_ttl(30s)};
  REQUIRE(quiet.start());
  attach(t, prefix + "quiet", quiet.lease());
  quiet.guard_key(prefix + "quiet");
  quiet.unguard_key(prefix + "quiet");
  etcd.etcdctl_ok({"del", prefix + "quiet"});

  conch::session guarded{t, with_ttl(30s)};
  REQUIRE(guarded.start());
  attach(t, prefix + "guarded", guarded.lease());
  guarded.guard_key(prefix + "guarded");
  etcd.etcdctl_ok({"del", prefix + "guarded"});
  REQUIRE(eventually([&] { return guarded.lost(); }, 10s));
  CHECK_THAT(guarded.lost_reason(), Catch::Contains(prefix + "guarded"));
  CHECK_FALSE(quiet.lost());
}

TEST_CASE("a session's guarded keys share one watch stream: only a guarded key's delete loses it") {
  conch::etcd_transport t{etcd_server::shared().client_options()};
  guards_ten_keys<conch::session>(t, t);
}

TEST_CASE("on a transport without watch sets, each guarded key has a stream of its own") {
  conch::etcd_transport t{etcd_server::shared().client_options()};
  stream_per_guard own{t};
  guards_ten_keys<conch::basic_session<stream_per_guard_policies>>(t, own);
}

TEST_CASE("a guarded key deleted after an etcd restart still loses the session") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto key = conch::test::unique_prefix() + "held";
  conch::session s{t, with_ttl(30s)};
  REQUIRE(s.start());
  attach(t, key, s.lease());
  s.guard_key(key);
  etcd.restart();
  conch::delete_request del;
  del.key = key;
  REQUIRE(eventually([&] { return t.delete_range(del, t.default_deadline()); }, 10s));
  REQUIRE(eventually([&] { return s.lost(); }, 10s));
  // "was deleted", or "is gone" if the guard's first read came after the delete.
  CHECK_THAT(s.lost_reason(), Catch::Contains("guarded key " + key));
}

TEST_CASE("guarding a key that is already gone loses the session") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::session s{t, with_ttl(30s)};
  REQUIRE(s.start());
  s.guard_key(conch::test::unique_prefix() + "never-written");
  REQUIRE(eventually([&] { return s.lost(); }, 10s));
  CHECK_THAT(s.lost_reason(), Catch::Contains("gone"));
}

TEST_CASE("etcd stopped: lost at the local deadline, before the server could expire the lease") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto margin = 1000ms;
  conch::session s{t, with_ttl(4s, margin)};
  REQUIRE(s.start());
  const auto granted = s.ttl();
  const auto first = s.local_deadline();
  REQUIRE(
      eventually([&] { return s.local_deadline() > first; }, 4s));  // one keepalive acknowledged
  loss_clock loss{s};

  etcd.stop();
  // No acknowledgement can arrive any more: this is the last ack's send time + TTL - margin.
  const auto due = s.local_deadline();
  const bool fired = eventually([&] { return loss.fired(); }, granted + 5s);
  etcd.start();
  REQUIRE(fired);
  CHECK(loss.when() >= due);           // retried, not lost, until the deadline
  CHECK(loss.when() <= due + margin);  // = last ack + TTL: the server expires no sooner
  CHECK_THAT(s.lost_reason(), Catch::Contains("local deadline"));
}

TEST_CASE("ride-through: past the local deadline renewals go on, and an answer moves it ahead") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  auto o = with_ttl(3s, 1000ms);
  o.ride_through = 20s;
  conch::session s{t, o};
  REQUIRE(s.start());
  loss_clock loss{s};
  etcd.stop();
  // Down past the local deadline: whoever holds something has stopped its work by now.
  REQUIRE(eventually([&] { return steady::now() > s.local_deadline() + 500ms; }, 10s));
  CHECK_FALSE(loss.fired());
  // etcd comes back and extends the leases it restores: the first answer proves it alive.
  etcd.start();
  REQUIRE(eventually([&] { return s.local_deadline() > steady::now(); }, 15s));
  CHECK_FALSE(loss.fired());
  REQUIRE(t.lease_time_to_live(s.lease(), t.default_deadline()));
}

TEST_CASE("ride-through: lost once it ends with no answer") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  auto o = with_ttl(2s, 500ms);
  o.ride_through = 1500ms;
  conch::session s{t, o};
  REQUIRE(s.start());
  loss_clock loss{s};
  etcd.stop();
  const auto due = s.local_deadline();
  const bool fired = eventually([&] { return loss.fired(); }, 15s);
  etcd.start();
  REQUIRE(fired);
  CHECK(loss.when() >= due + o.ride_through);
  CHECK_THAT(s.lost_reason(), Catch::Contains("local deadline"));
}

TEST_CASE("a short etcd outage before the deadline is retried, not lost") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::session s{t, with_ttl(10s)};
  REQUIRE(s.start());
  const auto before = s.local_deadline();
  etcd.restart();
  REQUIRE(eventually([&] { return s.local_deadline() > before + 1s; }, 10s));
  CHECK_FALSE(s.lost());
}

TEST_CASE("close revokes the lease and its keys, and is not a loss") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto key = conch::test::unique_prefix() + "mine";
  conch::session s{t, with_ttl(30s)};
  REQUIRE(s.start());
  attach(t, key, s.lease());
  s.guard_key(key);
  REQUIRE(s.close());
  REQUIRE(s.close());  // idempotent
  CHECK_FALSE(s.lost());

  conch::range_request read;
  read.key = key;
  auto r = t.range(read, t.default_deadline());
  REQUIRE(r);
  CHECK(r->kvs.empty());
  auto ttl = t.lease_time_to_live(s.lease(), t.default_deadline());
  CHECK((!ttl || ttl->ttl <= 0));
}

TEST_CASE("the destructor returns promptly even with etcd down") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  steady::time_point began;
  {
    conch::session s{t, with_ttl(30s)};
    REQUIRE(s.start());
    etcd.stop();
    began = steady::now();
  }
  const auto took = steady::now() - began;
  etcd.start();
  CHECK(took < etcd.client_options().call_timeout + 2s);  // at most one bounded revoke attempt
}

TEST_CASE("bad session options are refused with a reason") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::session zero{t, with_ttl(0s)};
  auto r = zero.start();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == conch::errc::invalid_argument);

  conch::session wide{t, with_ttl(2s, 2000ms)};
  auto w = wide.start();
  REQUIRE_FALSE(w);
  CHECK(w.error().code == conch::errc::invalid_argument);
  CHECK_THAT(w.error().message, Catch::Contains("margin"));

  conch::session twice{t, with_ttl(5s)};
  REQUIRE(twice.start());
  auto again = twice.start();
  REQUIRE_FALSE(again);
  CHECK(again.error().code == conch::errc::failed_precondition);
}

namespace {
struct faked : conch::default_policies {
  using clock = conch::fake_clock<>;
};
}  // namespace

TEST_CASE(
    "on a fake clock: a keepalive at TTL/3 moves the deadline; the deadline alone loses the "
    "session") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::fake_clock<> clock;
  conch::basic_session<faked> s{t, {30s, 2000ms}, clock};
  REQUIRE(s.start());
  const auto granted = clock.now();
  REQUIRE(s.ttl() == 30s);
  CHECK(s.local_deadline() == granted + 30s - 2000ms);

  REQUIRE(clock.await_sleepers(1));  // the keepalive thread waits for TTL/3
  clock.advance(10s);
  REQUIRE(eventually([&] { return s.local_deadline() == granted + 10s + 30s - 2000ms; }, 5s));

  // Time jumps past the deadline before the next keepalive could go out.
  REQUIRE(clock.await_sleepers(1));
  clock.advance(40s);
  REQUIRE(eventually([&] { return s.lost(); }, 5s));
  CHECK_THAT(s.lost_reason(), Catch::Contains("local deadline"));
  // etcd itself still holds the lease: the loss is local, and early.
  auto ttl = t.lease_time_to_live(s.lease(), t.default_deadline());
  REQUIRE(ttl);
  CHECK(ttl->ttl > 0);
}

namespace {

// etcd's own transport, with the grant of a chosen id held back (after it is
// announced as sending) until the test lets it go, or sent for another id.
struct held_grant : conch::etcd_transport {
  using etcd_transport::etcd_transport;
  using etcd_transport::lease_grant;

  std::latch go{1};
  conch::lease_id send_as = 0;  ///< nonzero: the grant asks for this id instead

  conch::result<conch::lease_grant_response> lease_grant(std::int64_t ttl, conch::lease_id id,
                                                         conch::deadline d,
                                                         const std::function<void()>& sending) {
    const conch::lease_id asked = send_as != 0 ? send_as : id;
    return etcd_transport::lease_grant(ttl, asked, d, [&] {
      if (sending) sending();
      go.wait();
    });
  }
};
struct held_grant_policies : conch::default_policies {
  using transport = held_grant;
};

}  // namespace

TEST_CASE("an early start grants the id it chose, and close revokes it after the answer") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  conch::session s{t, with_ttl(5s)};
  REQUIRE(s.start_early());
  const conch::lease_id id = s.lease();
  REQUIRE(id > 0);
  REQUIRE(s.granted());
  auto ttl = t.lease_time_to_live(id, t.default_deadline());
  REQUIRE(ttl);
  CHECK(ttl->ttl > 0);
  CHECK(s.start_early().error().code == conch::errc::failed_precondition);

  REQUIRE(s.close());
  CHECK_FALSE(s.lost());
  ttl = t.lease_time_to_live(id, t.default_deadline());
  CHECK((!ttl || ttl->ttl <= 0));
}

TEST_CASE("a first write that outruns an early grant fails whole, and holds once taken again") {
  auto& etcd = etcd_server::shared();
  held_grant t{etcd.client_options()};
  conch::basic_session<held_grant_policies> s{t, {.ttl = 5s}};
  REQUIRE(s.start_early());
  const std::string prefix = conch::test::unique_prefix();
  conch::basic_semaphore<held_grant_policies> sem{s, prefix, "early", 1};

  // The grant is announced but held back: the acquire's txn reaches etcd first.
  auto first = sem.acquire("v", {.nonblock = true});
  REQUIRE_FALSE(first);
  CHECK(first.error().code == conch::errc::lost);
  CHECK_FALSE(s.lost());
  CHECK_FALSE(sem.holding());
  conch::range_request everything;
  everything.key = prefix;
  everything.range_end = conch::prefix_end(prefix);
  auto left = t.range(everything, t.default_deadline());
  REQUIRE(left);
  CHECK(left->kvs.empty());  // the failed txn wrote nothing

  t.go.count_down();
  REQUIRE(s.granted());
  CHECK_FALSE(s.lost());
  REQUIRE(sem.acquire("v", {.nonblock = true}));
  CHECK(sem.slot() == 0);
  REQUIRE(sem.release());
  REQUIRE(s.close());
}

TEST_CASE("an early grant etcd refuses loses the session and says why") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport plain{etcd.client_options()};
  conch::session other{plain, with_ttl(5s)};
  REQUIRE(other.start());

  held_grant t{etcd.client_options()};
  t.send_as = other.lease();  // an id already in use: etcd refuses it
  t.go.count_down();
  conch::basic_session<held_grant_policies> s{t, {.ttl = 5s}};
  REQUIRE(s.start_early());
  auto g = s.granted();
  REQUIRE_FALSE(g);
  CHECK(s.lost());
  CHECK_THAT(s.lost_reason(), Catch::Contains("grant failed"));
  CHECK(s.close());
  CHECK_FALSE(other.lost());
}

TEST_CASE("a campaign that outruns an early grant fails whole, and wins once taken again") {
  auto& etcd = etcd_server::shared();
  held_grant t{etcd.client_options()};
  conch::basic_session<held_grant_policies> s{t, {.ttl = 5s}};
  REQUIRE(s.start_early());
  conch::basic_election<held_grant_policies> office{s, conch::test::unique_prefix(), "early"};

  auto first = office.campaign("v", {.nonblock = true});
  REQUIRE_FALSE(first);
  CHECK(first.error().code == conch::errc::lost);
  CHECK_FALSE(office.leading());

  t.go.count_down();
  REQUIRE(s.granted());
  CHECK_FALSE(s.lost());
  REQUIRE(office.campaign("v", {.nonblock = true}));
  CHECK(office.leading());
  REQUIRE(office.resign());
  REQUIRE(s.close());
}
