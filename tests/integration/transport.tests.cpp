// The etcd transport against a real etcd: KV, txn, leases, keepalives,
// watches, deadlines, cancellation and endpoint failover.
#include "conch/etcd.hpp"

#include "support/etcd_harness.hpp"
#include "support/prometheus.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using conch::errc;
using conch::test::etcd_server;

namespace {

conch::deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

conch::etcd_transport client() {
  return conch::etcd_transport{etcd_server::shared().client_options()};
}

conch::put_request put_of(std::string key, std::string value, conch::lease_id lease = 0) {
  conch::put_request r;
  r.key = std::move(key);
  r.value = std::move(value);
  r.lease = lease;
  return r;
}

conch::delete_request delete_of(std::string key, bool prev_kv = false) {
  conch::delete_request r;
  r.key = std::move(key);
  r.prev_kv = prev_kv;
  return r;
}

// Collects `n` events from `w`, each batch within `each`.
std::vector<conch::watch_event> take(conch::etcd_watch_stream& w, std::size_t n,
                                     std::chrono::milliseconds each = 5s) {
  std::vector<conch::watch_event> got;
  while (got.size() < n) {
    auto b = w.next(in(each));
    if (!b) FAIL("watch: " << b.error().message);
    got.insert(got.end(), b->events.begin(), b->events.end());
  }
  return got;
}

// Waits (in real time, at most `within`) until a next() on `stream` blocks.
template <class Stream>
bool await_blocked(const Stream& stream, std::chrono::milliseconds within = 10s) {
  const auto until = in(within);
  while (stream.waiting() == 0) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Runs `work` on a thread of its own and says whether it finished within
// `bound`: a hang fails an assertion instead of waiting for ctest's timeout.
// A thread that never finishes is left behind; what it uses it owns.
template <class Work>
bool finishes_within(std::chrono::seconds bound, Work work) {
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  std::thread([done, work = std::move(work)]() mutable {
    work();
    done->set_value();
  }).detach();
  return finished.wait_for(bound) == std::future_status::ready;
}

}  // namespace

TEST_CASE("put, range and delete round-trip") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto put = etcd.put(put_of(p + "a", "1"), etcd.default_deadline());
  REQUIRE(put);
  CHECK(put->header_revision > 0);
  REQUIRE(etcd.put(put_of(p + "b", "2"), etcd.default_deadline()));

  auto all = etcd.range(conch::range_request::prefix(p), etcd.default_deadline());
  REQUIRE(all);
  REQUIRE(all->kvs.size() == 2);
  CHECK(all->kvs[0].key == p + "a");
  CHECK(all->kvs[0].value == "1");
  CHECK(all->kvs[0].create_revision == put->header_revision);
  CHECK(all->kvs[0].version == 1);
  CHECK(all->kvs[1].value == "2");

  auto overwrite = put_of(p + "b", "3");
  overwrite.prev_kv = true;
  auto again = etcd.put(overwrite, etcd.default_deadline());
  REQUIRE(again);
  REQUIRE(again->prev_kv);
  CHECK(again->prev_kv->value == "2");

  auto del = etcd.delete_range(delete_of(p + "a", true), etcd.default_deadline());
  REQUIRE(del);
  CHECK(del->deleted == 1);
  REQUIRE(del->prev_kvs.size() == 1);
  CHECK(del->prev_kvs[0].value == "1");
  auto left = etcd.range(conch::range_request::prefix(p), etcd.default_deadline());
  REQUIRE(left);
  REQUIRE(left->kvs.size() == 1);
  CHECK(left->kvs[0].value == "3");
  CHECK(left->kvs[0].version == 2);
}

TEST_CASE("range options: sort, limit, count, revision, create-revision bounds") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  std::vector<conch::revision> revs;
  for (auto k : {"a", "b", "c"}) {
    auto r = etcd.put(put_of(p + k, k), etcd.default_deadline());
    REQUIRE(r);
    revs.push_back(r->header_revision);
  }
  REQUIRE(etcd.put(put_of(p + "a", "changed"), etcd.default_deadline()));

  auto q = conch::range_request::prefix(p);
  q.order = conch::range_request::sort_order::descend;
  q.target = conch::range_request::sort_target::create;
  q.limit = 2;
  auto r = etcd.range(q, etcd.default_deadline());
  REQUIRE(r);
  REQUIRE(r->kvs.size() == 2);
  CHECK(r->kvs[0].key == p + "c");
  CHECK(r->kvs[1].key == p + "b");
  CHECK(r->more);
  CHECK(r->count == 3);

  auto count = conch::range_request::prefix(p);
  count.count_only = true;
  auto c = etcd.range(count, etcd.default_deadline());
  REQUIRE(c);
  CHECK(c->kvs.empty());
  CHECK(c->count == 3);

  auto old = conch::range_request::prefix(p);
  old.at_revision = revs[0];
  auto o = etcd.range(old, etcd.default_deadline());
  REQUIRE(o);
  REQUIRE(o->kvs.size() == 1);
  CHECK(o->kvs[0].value == "a");

  auto later = conch::range_request::prefix(p);
  later.min_create_revision = revs[1];
  later.keys_only = true;
  auto l = etcd.range(later, etcd.default_deadline());
  REQUIRE(l);
  REQUIRE(l->kvs.size() == 2);
  CHECK(l->kvs[0].key == p + "b");
  CHECK(l->kvs[0].value.empty());
}

TEST_CASE("txn: create-if-absent, fenced by create revision, both branches answer") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  const auto key = p + "office";

  conch::txn_request claim;
  claim.compares = {conch::compare::create_revision(key) == 0};
  claim.success = {put_of(key, "me")};
  conch::range_request read;
  read.key = key;
  claim.failure = {read};
  auto first = etcd.txn(claim, etcd.default_deadline());
  REQUIRE(first);
  CHECK(first->succeeded);
  REQUIRE(first->responses.size() == 1);
  CHECK(std::holds_alternative<conch::put_response>(first->responses[0]));
  const auto token = first->header_revision;

  claim.success = {put_of(key, "someone else")};
  auto second = etcd.txn(claim, etcd.default_deadline());
  REQUIRE(second);
  CHECK_FALSE(second->succeeded);
  REQUIRE(second->responses.size() == 1);
  auto& seen = std::get<conch::range_response>(second->responses[0]);
  REQUIRE(seen.kvs.size() == 1);
  CHECK(seen.kvs[0].value == "me");
  CHECK(seen.kvs[0].create_revision == token);

  conch::txn_request fenced;
  fenced.compares = {conch::compare::create_revision(key) == token,
                     conch::compare::value(key) == std::string("me"),
                     conch::compare::version(key) > 0,
                     conch::compare::mod_revision(key) < token + 1};
  fenced.success = {delete_of(key)};
  auto release = etcd.txn(fenced, etcd.default_deadline());
  REQUIRE(release);
  CHECK(release->succeeded);
  CHECK(std::get<conch::delete_response>(release->responses[0]).deleted == 1);

  auto stale = etcd.txn(fenced, etcd.default_deadline());
  REQUIRE(stale);
  CHECK_FALSE(stale->succeeded);
}

TEST_CASE("leases: grant, attach, time to live, revoke") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto lease = etcd.lease_grant(30, etcd.default_deadline());
  REQUIRE(lease);
  CHECK(lease->id != 0);
  CHECK(lease->ttl == 30);
  REQUIRE(etcd.put(put_of(p + "held", "x", lease->id), etcd.default_deadline()));

  auto ttl = etcd.lease_time_to_live(lease->id, etcd.default_deadline(), true);
  REQUIRE(ttl);
  CHECK(ttl->granted_ttl == 30);
  CHECK(ttl->ttl > 0);
  CHECK(ttl->ttl <= 30);
  CHECK(ttl->keys == std::vector<std::string>{p + "held"});

  REQUIRE(etcd.lease_revoke(lease->id, etcd.default_deadline()));
  auto gone = etcd.range(conch::range_request::prefix(p), etcd.default_deadline());
  REQUIRE(gone);
  CHECK(gone->kvs.empty());
  auto after = etcd.lease_time_to_live(lease->id, etcd.default_deadline());
  REQUIRE(after);
  CHECK(after->ttl == -1);

  auto twice = etcd.lease_revoke(lease->id, etcd.default_deadline());
  REQUIRE_FALSE(twice);
  CHECK(twice.error().code == errc::lease_not_found);
  auto attach = etcd.put(put_of(p + "late", "x", lease->id), etcd.default_deadline());
  REQUIRE_FALSE(attach);
  CHECK(attach.error().code == errc::lease_not_found);
}

TEST_CASE("keepalive renews the lease; a revoked lease answers ttl 0") {
  auto& server = etcd_server::shared();
  auto etcd = client();
  auto lease = etcd.lease_grant(5, etcd.default_deadline());
  REQUIRE(lease);
  auto ka = etcd.keepalive(lease->id);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(ka.send());
    auto ttl = ka.next(in(5s));
    REQUIRE(ttl);
    CHECK(*ttl == 5);
  }

  server.revoke_lease(lease->id);
  REQUIRE(ka.send());
  auto ttl = ka.next(in(5s));
  REQUIRE(ttl);
  CHECK(*ttl == 0);
}

TEST_CASE("keepalive: next() without send() is an error, not a hang") {
  auto etcd = client();
  auto ka = etcd.keepalive(12345);
  auto r = ka.next(in(10s));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::failed_precondition);
}

TEST_CASE("watch from a start revision delivers history then live events, in order") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto first = etcd.put(put_of(p + "a", "1"), etcd.default_deadline());
  REQUIRE(first);
  REQUIRE(etcd.put(put_of(p + "b", "2"), etcd.default_deadline()));
  REQUIRE(etcd.delete_range(delete_of(p + "a"), etcd.default_deadline()));

  auto req = conch::watch_request::prefix(p, first->header_revision);
  req.prev_kv = true;
  auto w = etcd.watch(req);
  auto history = take(w, 3);
  REQUIRE(history.size() == 3);
  CHECK(history[0].kv.key == p + "a");
  CHECK(history[0].type == conch::watch_event::kind::put);
  CHECK(history[1].kv.key == p + "b");
  CHECK(history[2].type == conch::watch_event::kind::del);
  REQUIRE(history[2].prev_kv);
  CHECK(history[2].prev_kv->value == "1");

  auto live = etcd.put(put_of(p + "c", "3"), etcd.default_deadline());
  REQUIRE(live);
  auto more = take(w, 1);
  REQUIRE(more.size() == 1);
  CHECK(more[0].kv.key == p + "c");
  CHECK(more[0].kv.mod_revision == live->header_revision);
  CHECK(w.next_revision() == live->header_revision + 1);
}

TEST_CASE("watch from now sees only later events; filters apply") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  REQUIRE(etcd.put(put_of(p + "before", "x"), etcd.default_deadline()));
  auto req = conch::watch_request::prefix(p);
  req.no_put = true;
  auto w = etcd.watch(req);
  // Nothing yet: the watch is created, and the wait times out.
  auto quiet = w.next(in(300ms));
  REQUIRE_FALSE(quiet);
  CHECK(quiet.error().code == errc::timed_out);

  REQUIRE(etcd.put(put_of(p + "after", "y"), etcd.default_deadline()));
  REQUIRE(etcd.delete_range(delete_of(p + "after"), etcd.default_deadline()));
  auto got = take(w, 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].type == conch::watch_event::kind::del);
  CHECK(got[0].kv.key == p + "after");
}

TEST_CASE("a compacted start revision ends the watch with errc::compacted") {
  auto& server = etcd_server::shared();
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto old = etcd.put(put_of(p + "k", "1"), etcd.default_deadline());
  REQUIRE(old);
  REQUIRE(etcd.put(put_of(p + "k", "2"), etcd.default_deadline()));
  const auto compacted = server.compact();

  auto w = etcd.watch(conch::watch_request::prefix(p, old->header_revision));
  auto r = w.next(in(5s));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::compacted);
  CHECK(r.error().compact_revision == compacted);
  // It stays over.
  auto again = w.next(in(100ms));
  REQUIRE_FALSE(again);
  CHECK(again.error().code == errc::compacted);

  // A range at the compacted revision says the same.
  auto q = conch::range_request::prefix(p);
  q.at_revision = old->header_revision;
  auto range = etcd.range(q, etcd.default_deadline());
  REQUIRE_FALSE(range);
  CHECK(range.error().code == errc::compacted);
}

TEST_CASE("cancel() unblocks a pending next() promptly") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  // next() waits up to 30 s: errc::cancelled (not timed_out) proves cancel() ended it.
  SECTION("watch") {
    auto w = etcd.watch(conch::watch_request::prefix(p));
    bool was_blocked = false;
    std::thread canceller([&] {
      was_blocked = await_blocked(w);
      w.cancel();
    });
    auto r = w.next(in(30s));
    canceller.join();
    CHECK(was_blocked);  // the cancel came while next() waited
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::cancelled);
    CHECK(w.next(in(1s)).error().code == errc::cancelled);
  }
  SECTION("keepalive") {
    auto lease = etcd.lease_grant(10, etcd.default_deadline());
    REQUIRE(lease);
    auto ka = etcd.keepalive(lease->id);
    REQUIRE(ka.send());
    REQUIRE(ka.next(in(5s)));  // answered; nothing more asked, so the next next() waits
    bool was_blocked = false;
    std::thread canceller([&] {
      was_blocked = await_blocked(ka);
      ka.cancel();
    });
    auto r = ka.next(in(30s));
    canceller.join();
    CHECK(was_blocked);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::cancelled);
    CHECK(ka.send().error().code == errc::cancelled);
  }
}

TEST_CASE("destroying streams mid-flight does not hang") {
  auto etcd = std::make_shared<conch::etcd_transport>(etcd_server::shared().client_options());
  auto p = conch::test::unique_prefix();
  auto lease = etcd->lease_grant(10, etcd->default_deadline());
  REQUIRE(lease);
  auto failed = std::make_shared<std::string>();  // written by the worker only
  const bool finished = finishes_within(60s, [etcd, p, id = lease->id, failed] {
    for (int i = 0; i < 5; ++i) {
      auto w = etcd->watch(conch::watch_request::prefix(p));
      (void)w.next(in(20ms));  // opening or open, nothing read
      auto ka = etcd->keepalive(id);
      if (!ka.send()) *failed += "keepalive send failed; ";  // a write in flight, never read
    }
    // A watch left with a backlog unread.
    conch::revision from = 0;
    for (int i = 0; i < 20; ++i) {
      auto r = etcd->put(put_of(p + "k", std::to_string(i)), etcd->default_deadline());
      if (!r) *failed += "put: " + r.error().message + "; ";
      if (r && from == 0) from = r->header_revision;
    }
    auto w = etcd->watch(conch::watch_request::prefix(p, from));
    if (!w.next(in(5s))) *failed += "the backlog watch delivered nothing; ";
  });
  REQUIRE(finished);  // every stream was destroyed within the bound: nothing hung
  CHECK(*failed == "");
}

TEST_CASE("deadlines: a call past its deadline times out; a watch keeps going after a timeout") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto late = etcd.range(conch::range_request::prefix(p), std::chrono::steady_clock::now() - 1ms);
  REQUIRE_FALSE(late);
  CHECK(late.error().code == errc::timed_out);

  auto w = etcd.watch(conch::watch_request::prefix(p));
  CHECK(w.next(in(100ms)).error().code == errc::timed_out);
  REQUIRE(etcd.put(put_of(p + "x", "1"), etcd.default_deadline()));
  CHECK(take(w, 1).at(0).kv.key == p + "x");
}

TEST_CASE("a dead endpoint listed first fails over to the live one") {
  auto& server = etcd_server::shared();
  auto opts = server.client_options();
  const auto dead =
      "127.0.0.1:" + std::to_string(conch::test::harness_detail::free_loopback_port());
  opts.endpoints = {dead, server.endpoint()};
  conch::etcd_transport etcd{opts};
  auto p = conch::test::unique_prefix();

  auto put = etcd.put(put_of(p + "k", "v"), etcd.default_deadline());
  REQUIRE(put);
  CHECK(etcd.endpoint() == server.endpoint());
  auto w = etcd.watch(conch::watch_request::prefix(p, put->header_revision));
  CHECK(take(w, 1).at(0).kv.value == "v");
  auto lease = etcd.lease_grant(5, etcd.default_deadline());
  REQUIRE(lease);
  auto ka = etcd.keepalive(lease->id);
  REQUIRE(ka.send());
  CHECK(ka.next(in(5s)).value_or(-1) == 5);

  SECTION("a watch opened first finds the live endpoint too") {
    conch::etcd_transport fresh{opts};
    auto w2 = fresh.watch(conch::watch_request::prefix(p, put->header_revision));
    CHECK(take(w2, 1).at(0).kv.value == "v");
  }
}

TEST_CASE("no live endpoint: a one-line unavailable error naming the endpoint, promptly") {
  auto opts = etcd_server::shared().client_options();
  const auto dead =
      "127.0.0.1:" + std::to_string(conch::test::harness_detail::free_loopback_port());
  opts.endpoints = {dead};
  opts.dial_timeout = 500ms;
  conch::etcd_transport etcd{opts};
  auto started = std::chrono::steady_clock::now();
  auto r = etcd.put(put_of("k", "v"), in(3s));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::unavailable);
  CHECK_THAT(r.error().message, Catch::Contains(dead));
  CHECK(r.error().message.find('\n') == std::string::npos);
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  CHECK(etcd.ping(in(3s)).error().code == errc::unavailable);
}

TEST_CASE("bad options are reported as invalid_argument, naming the problem") {
  conch::transport_options none;
  none.endpoints = {};
  CHECK(conch::etcd_transport::check_options(none).error().code == errc::invalid_argument);
  conch::etcd_transport t{none};
  auto r = t.range(conch::range_request::prefix("x"), t.default_deadline());
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::invalid_argument);
  CHECK(t.watch(conch::watch_request::prefix("x")).next(in(1s)).error().code ==
        errc::invalid_argument);
  CHECK(t.keepalive(1).send().error().code == errc::invalid_argument);

  conch::transport_options tls;
  tls.ca_file = "/nonexistent/ca.pem";
  auto bad = conch::etcd_transport::check_options(tls);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == errc::invalid_argument);
  CHECK_THAT(bad.error().message, Catch::Contains("/nonexistent/ca.pem"));

  conch::transport_options half;
  half.cert_file = "/some/cert.pem";
  CHECK(conch::etcd_transport::check_options(half).error().code == errc::invalid_argument);
  CHECK(conch::etcd_transport::check_options(etcd_server::shared().client_options()));
}

namespace {

// The next delivery of `set` within `each`, or a failed assertion.
conch::watch_set_batch next_of(conch::etcd_watch_set& set, std::chrono::milliseconds each = 5s) {
  auto b = set.next(in(each));
  if (!b) FAIL("watch set: " << b.error().message);
  return std::move(*b);
}

conch::watch_request key_from(std::string key, conch::revision from, bool no_put = false) {
  conch::watch_request w;
  w.key = std::move(key);
  w.start_revision = from;
  w.no_put = no_put;
  return w;
}

}  // namespace

TEST_CASE("a watch set carries several watches on one stream, each by its id") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto at = etcd.put(put_of(p + "a", "1"), etcd.default_deadline());
  REQUIRE(at);
  REQUIRE(etcd.put(put_of(p + "b", "1"), etcd.default_deadline()));
  REQUIRE(etcd.put(put_of(p + "c", "1"), etcd.default_deadline()));
  auto set = etcd.watch_set();
  const auto from = at->header_revision + 3;
  set.add(1, key_from(p + "a", from, true));
  set.add(2, key_from(p + "b", from, true));
  set.add(3, key_from(p + "c", from));
  CHECK(set.size() == 3);
  // Nothing yet: the wait times out and the set goes on.
  auto quiet = set.next(in(300ms));
  REQUIRE_FALSE(quiet);
  CHECK(quiet.error().code == errc::timed_out);

  REQUIRE(etcd.put(put_of(p + "a", "2"), etcd.default_deadline()));  // filtered out for 1
  auto b_gone = etcd.delete_range(delete_of(p + "b"), etcd.default_deadline());
  REQUIRE(b_gone);
  auto got = next_of(set);
  CHECK(got.id == 2);
  CHECK_FALSE(got.ended);
  REQUIRE(got.batch.events.size() == 1);
  CHECK(got.batch.events[0].type == conch::watch_event::kind::del);
  CHECK(got.batch.events[0].kv.mod_revision == b_gone->header_revision);

  SECTION("a removed watch delivers nothing more") {
    set.remove(3);
    set.remove(3);  // twice is harmless
    CHECK(set.size() == 2);
    REQUIRE(etcd.put(put_of(p + "c", "2"), etcd.default_deadline()));
    REQUIRE(etcd.delete_range(delete_of(p + "a"), etcd.default_deadline()));
    auto next = next_of(set);
    CHECK(next.id == 1);  // not 3's put, which came first
    REQUIRE(next.batch.events.size() == 1);
    CHECK(next.batch.events[0].kv.key == p + "a");
  }

  SECTION("a watch added to a running set starts from its own revision") {
    auto late = etcd.put(put_of(p + "d", "1"), etcd.default_deadline());
    REQUIRE(late);
    set.add(4, key_from(p + "d", late->header_revision));  // history: its put
    auto next = next_of(set);
    CHECK(next.id == 4);
    REQUIRE(next.batch.events.size() == 1);
    CHECK(next.batch.events[0].kv.value == "1");
  }
}

TEST_CASE("a watch set with no watch holds no stream until its first add()") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  const int port = etcd_server::shared().client_port();
  auto watch_streams = [port] {  // Watch calls etcd has started so far
    return conch::test::metric_sum(conch::test::metrics_text(port), "grpc_server_started_total",
                                   {"grpc_method=\"Watch\""})
        .value_or(0);
  };
  auto at = etcd.put(put_of(p + "k", "1"), etcd.default_deadline());
  REQUIRE(at);
  auto set = etcd.watch_set();
  const double before = watch_streams();

  // Waiting with nothing to watch: the deadline passes, no call is made.
  const auto t0 = std::chrono::steady_clock::now();
  auto quiet = set.next(in(200ms));
  REQUIRE_FALSE(quiet);
  CHECK(quiet.error().code == errc::timed_out);
  CHECK(std::chrono::steady_clock::now() - t0 >= 200ms);
  CHECK(watch_streams() == before);

  // `f` on another thread, a moment after next() started waiting.
  auto soon = [](std::function<void()> f) {
    return std::jthread{[f = std::move(f)] {
      std::this_thread::sleep_for(50ms);
      f();
    }};
  };

  SECTION("wake() ends the empty wait at once") {
    auto waker = soon([&set] { set.wake(); });
    auto woken = set.next(in(30s));
    REQUIRE_FALSE(woken);
    CHECK(woken.error().code == errc::timed_out);
  }

  SECTION("a watch added while next() waits opens the stream and is delivered") {
    // From history: the put above.
    auto adder = soon([&] { set.add(7, key_from(p + "k", at->header_revision)); });
    auto b = set.next(in(30s));
    REQUIRE(b);
    CHECK(b->id == 7);
    REQUIRE(b->batch.events.size() == 1);
    CHECK(b->batch.events[0].kv.value == "1");
    CHECK(watch_streams() == before + 1);
  }

  SECTION("cancel() ends the empty wait with errc::cancelled") {
    auto canceller = soon([&set] { set.cancel(); });
    auto ended = set.next(in(30s));
    REQUIRE_FALSE(ended);
    CHECK(ended.error().code == errc::cancelled);
  }
}

TEST_CASE("a watch set: a compacted start ends that watch alone, with errc::compacted") {
  auto& server = etcd_server::shared();
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto old = etcd.put(put_of(p + "old", "1"), etcd.default_deadline());
  REQUIRE(old);
  REQUIRE(etcd.put(put_of(p + "old", "2"), etcd.default_deadline()));
  const auto compacted = server.compact();
  auto set = etcd.watch_set();
  set.add(7, key_from(p + "old", old->header_revision));
  set.add(8, key_from(p + "new", compacted + 1));
  auto ended = next_of(set);
  CHECK(ended.id == 7);
  REQUIRE(ended.ended);
  CHECK(ended.ended->code == errc::compacted);
  CHECK(ended.ended->compact_revision == compacted);
  CHECK(set.size() == 1);
  REQUIRE(etcd.put(put_of(p + "new", "x"), etcd.default_deadline()));
  auto live = next_of(set);
  CHECK(live.id == 8);
  CHECK_FALSE(live.ended);
}

TEST_CASE("a watch set: wake() and cancel() end a waiting next() promptly") {
  auto etcd = client();
  auto set = etcd.watch_set();
  set.add(1, key_from(conch::test::unique_prefix() + "k", 1));
  std::atomic<int> woken{0};
  std::atomic<int> last{-1};
  std::thread reader([&] {
    for (;;) {  // each next() waits up to 30 s unless woken or cancelled
      auto r = set.next(in(30s));
      const errc why = r ? errc{} : r.error().code;
      if (why == errc::timed_out) ++woken;
      if (why == errc::timed_out) continue;
      last = static_cast<int>(why);
      return;
    }
  });
  REQUIRE(finishes_within(10s, [&] {
    while (woken.load() == 0) {
      set.wake();
      std::this_thread::sleep_for(5ms);
    }
  }));
  REQUIRE(finishes_within(10s, [&] {
    set.cancel();
    reader.join();
  }));
  CHECK(last.load() == static_cast<int>(errc::cancelled));
}
