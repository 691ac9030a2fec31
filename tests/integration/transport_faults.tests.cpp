// The etcd transport across etcd restarts: watches resume without losing or
// repeating an event, keepalives and calls recover, progress notifications
// move a watch's resume point forward.
#include "conch/etcd.hpp"

#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <thread>

using namespace std::chrono_literals;
using conch::errc;
using conch::test::etcd_server;

namespace {

conch::deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

conch::put_request put_of(std::string key, std::string value) {
  conch::put_request r;
  r.key = std::move(key);
  r.value = std::move(value);
  return r;
}

using conch::test::eventually;

std::vector<std::string> values(const std::vector<conch::watch_event>& events) {
  std::vector<std::string> v;
  for (auto& e : events) v.push_back(e.kv.value);
  return v;
}

// Reads `w` until `n` events arrived (each batch within 10s), then checks
// that nothing more comes within a short while.
std::vector<conch::watch_event> take_exactly(conch::etcd_watch_stream& w, std::size_t n) {
  std::vector<conch::watch_event> got;
  while (got.size() < n) {
    auto b = w.next(in(10s));
    if (!b) FAIL("watch: " << b.error().message);
    got.insert(got.end(), b->events.begin(), b->events.end());
  }
  auto extra = w.next(in(200ms));
  if (extra) got.insert(got.end(), extra->events.begin(), extra->events.end());
  return got;
}

}  // namespace

TEST_CASE("etcd restart mid-watch: every event arrives exactly once, in order") {
  auto& server = etcd_server::shared();
  conch::etcd_transport etcd{server.client_options()};
  auto p = conch::test::unique_prefix();
  auto first = etcd.put(put_of(p + "k", "1"), etcd.default_deadline());
  REQUIRE(first);
  auto w = etcd.watch(conch::watch_request::prefix(p, first->header_revision));
  REQUIRE(values(take_exactly(w, 1)) == std::vector<std::string>{"1"});
  REQUIRE(etcd.put(put_of(p + "k", "2"), etcd.default_deadline()));
  REQUIRE(values(take_exactly(w, 1)) == std::vector<std::string>{"2"});

  SECTION("events written while the watch was away") {
    server.restart();
    // Written after the restart but before the watch noticed its stream broke.
    REQUIRE(eventually([&] { return etcd.put(put_of(p + "k", "3"), etcd.default_deadline()); }));
    REQUIRE(etcd.put(put_of(p + "other", "4"), etcd.default_deadline()));
    auto got = take_exactly(w, 2);
    CHECK(values(got) == std::vector<std::string>{"3", "4"});
    REQUIRE(etcd.put(put_of(p + "k", "5"), etcd.default_deadline()));
    CHECK(values(take_exactly(w, 1)) == std::vector<std::string>{"5"});
  }

  SECTION("a next() blocked across the outage") {
    std::vector<conch::watch_event> got;
    std::thread reader([&] { got = take_exactly(w, 3); });
    server.stop();
    std::this_thread::sleep_for(300ms);  // the watch is down for a while
    server.start();
    conch::etcd_transport writer{server.client_options()};
    for (auto v : {"3", "4", "5"})
      REQUIRE(
          eventually([&] { return writer.put(put_of(p + "k", v), writer.default_deadline()); }));
    reader.join();
    CHECK(values(got) == std::vector<std::string>{"3", "4", "5"});
  }
}

TEST_CASE("calls fail fast with unavailable while etcd is down and work once it is back") {
  auto& server = etcd_server::shared();
  auto opts = server.client_options();
  opts.dial_timeout = 300ms;
  conch::etcd_transport etcd{opts};
  auto p = conch::test::unique_prefix();
  REQUIRE(etcd.put(put_of(p + "k", "1"), etcd.default_deadline()));
  server.stop();
  auto started = std::chrono::steady_clock::now();
  auto down = etcd.range(conch::range_request::prefix(p), in(5s));
  REQUIRE_FALSE(down);
  CHECK(down.error().code == errc::unavailable);
  CHECK_THAT(down.error().message, Catch::Contains(server.endpoint()));
  CHECK(std::chrono::steady_clock::now() - started < 4s);
  server.start();
  auto back = eventually([&] { return etcd.range(conch::range_request::prefix(p), in(2s)); });
  REQUIRE(back);
  CHECK(back->kvs.at(0).value == "1");
}

TEST_CASE("after an outage longer than a connect attempt, calls work again once etcd is back") {
  auto& server = etcd_server::shared();
  conch::etcd_transport etcd{server.client_options()};
  auto p = conch::test::unique_prefix();
  REQUIRE(etcd.put(put_of(p + "k", "1"), etcd.default_deadline()));
  server.stop();
  // Calls fail fast while the channel is down, for longer than one reconnect
  // attempt may take (5 s): the channel has no call in flight to poll it.
  const auto down_until = std::chrono::steady_clock::now() + 7s;
  while (std::chrono::steady_clock::now() < down_until) {
    CHECK_FALSE(etcd.range(conch::range_request::prefix(p), in(200ms)));
    std::this_thread::sleep_for(100ms);
  }
  server.start();
  auto back =
      eventually([&] { return etcd.range(conch::range_request::prefix(p), in(200ms)); }, 10s);
  REQUIRE(back);
  CHECK(back->kvs.at(0).value == "1");
}

TEST_CASE("keepalive across an etcd restart: the break is reported, then renewals resume") {
  auto& server = etcd_server::shared();
  conch::etcd_transport etcd{server.client_options()};
  auto lease = etcd.lease_grant(20, etcd.default_deadline());
  REQUIRE(lease);
  auto ka = etcd.keepalive(lease->id);
  REQUIRE(ka.send());
  REQUIRE(ka.next(in(5s)).value_or(-1) == 20);

  server.restart();
  // The old stream is gone: the next answer is an error, not a hang.
  REQUIRE(ka.send());
  auto broken = ka.next(in(5s));
  if (broken) {
    CHECK(*broken == 20);  // the send raced ahead of the break: also fine
  } else {
    CHECK(broken.error().code == errc::unavailable);
  }
  auto renewed = eventually([&]() -> conch::result<std::int64_t> {
    if (auto s = ka.send(); !s) return s.error();
    return ka.next(in(2s));
  });
  REQUIRE(renewed);
  CHECK(*renewed == 20);
}

TEST_CASE("progress notifications move the resume point past a later compaction") {
  // Its own etcd: frequent progress notifications, and free to compact.
  conch::test::etcd_options frequent;
  frequent.progress_notify_interval = 100ms;
  etcd_server server{frequent};
  conch::etcd_transport etcd{server.client_options()};
  auto p = conch::test::unique_prefix();
  auto start = etcd.put(put_of(p + "watched", "1"), etcd.default_deadline());
  REQUIRE(start);
  auto req = conch::watch_request::prefix(p + "watched/", start->header_revision);
  req.progress_notify = true;
  auto w = etcd.watch(req);
  // Activity elsewhere, which this watch does not see.
  conch::revision elsewhere = 0;
  for (int i = 0; i < 5; ++i) {
    auto r = etcd.put(put_of(p + "unwatched", std::to_string(i)), etcd.default_deadline());
    REQUIRE(r);
    elsewhere = r->header_revision;
  }
  // A progress notification tells the watch it has seen everything so far.
  auto until = in(10s);
  while (w.next_revision() <= elsewhere && std::chrono::steady_clock::now() < until) {
    auto b = w.next(in(2s));
    REQUIRE(b);
    CHECK(b->events.empty());
  }
  REQUIRE(w.next_revision() > elsewhere);

  // Compacting up to there and breaking the stream must not lose the watch:
  // it resumes after what it has seen, not from its original start.
  server.compact();
  server.restart();
  REQUIRE(
      eventually([&] { return etcd.put(put_of(p + "watched/x", "2"), etcd.default_deadline()); }));
  for (;;) {
    auto b = w.next(in(10s));
    REQUIRE(b);
    if (b->events.empty()) continue;
    REQUIRE(b->events.size() == 1);
    CHECK(b->events[0].kv.value == "2");
    break;
  }
}

TEST_CASE("when the current endpoint dies, calls move to the next one") {
  // Two separate etcds stand in for two members: only reachability matters here.
  etcd_server a, b;
  auto opts = a.client_options();
  opts.endpoints = {a.endpoint(), b.endpoint()};
  opts.dial_timeout = 500ms;
  conch::etcd_transport etcd{opts};
  auto p = conch::test::unique_prefix();
  REQUIRE(etcd.put(put_of(p + "k", "on a"), etcd.default_deadline()));
  CHECK(etcd.endpoint() == a.endpoint());

  a.stop();
  // A read is retried on the next endpoint within the same call.
  auto read = etcd.range(conch::range_request::prefix(p), in(5s));
  REQUIRE(read);
  CHECK(read->kvs.empty());  // b never saw the put
  CHECK(etcd.endpoint() == b.endpoint());
  REQUIRE(etcd.put(put_of(p + "k", "on b"), etcd.default_deadline()));
  auto w = etcd.watch(conch::watch_request::prefix(p, 1));
  auto batch = w.next(in(5s));
  REQUIRE(batch);
  CHECK(batch->events.at(0).kv.value == "on b");
}

TEST_CASE("etcd restart under a watch set: each watch resumes past what it delivered") {
  auto& server = etcd_server::shared();
  conch::etcd_transport etcd{server.client_options()};
  auto p = conch::test::unique_prefix();
  auto first = etcd.put(put_of(p + "a", "1"), etcd.default_deadline());
  REQUIRE(first);
  auto set = etcd.watch_set();
  for (std::int64_t id : {1, 2}) {
    conch::watch_request w;
    w.key = p + (id == 1 ? "a" : "b");
    w.start_revision = first->header_revision;
    set.add(id, w);
  }
  auto next = [&] {
    auto b = set.next(in(10s));
    if (!b) FAIL("watch set: " << b.error().message);
    return std::move(*b);
  };
  auto got = next();
  CHECK(got.id == 1);
  CHECK(values(got.batch.events) == std::vector<std::string>{"1"});

  server.restart();
  REQUIRE(eventually([&] { return etcd.put(put_of(p + "b", "2"), etcd.default_deadline()); }));
  REQUIRE(etcd.put(put_of(p + "a", "3"), etcd.default_deadline()));
  std::map<std::int64_t, std::vector<std::string>> seen;
  while (seen[1].size() + seen[2].size() < 2) {
    auto b = next();
    for (auto& v : values(b.batch.events)) seen[b.id].push_back(v);
  }
  CHECK(seen[1] == std::vector<std::string>{"3"});  // "1" is not delivered again
  CHECK(seen[2] == std::vector<std::string>{"2"});
  auto extra = set.next(in(200ms));
  CHECK_FALSE(extra);
}
