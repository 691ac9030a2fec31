// election against a real etcd: campaign, handoff, give-ups, faults while waiting, observe.
#include "conch/election.hpp"

#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"

#include "support/catch_result.hpp"
#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using conch::errc;
using conch::test::etcd_server;
using steady = std::chrono::steady_clock;

namespace {

using conch::test::eventually;

// One candidate: its own session (lease) and its election object.
struct contender {
  conch::session session;
  conch::election office;
  contender(conch::etcd_transport& t, const std::string& prefix, const std::string& name,
            std::chrono::seconds ttl = 30s)
      : session(t, conch::session::options{ttl, {}}), office(session, prefix, name) {
    REQUIRE(session.start());
  }
};

// A campaign running on its own thread; stopped and joined on destruction so a
// failing test never hangs on it.
class background_campaign {
 public:
  background_campaign(conch::election& e, std::string value,
                      conch::election::campaign_options o = {}) {
    o.stop = stop_.get_token();
    done_ = std::async(std::launch::async,
                       [&e, value = std::move(value), o] { return e.campaign(value, o); });
  }
  ~background_campaign() {
    stop_.request_stop();
    if (done_.valid()) done_.wait();
  }
  bool finished_within(std::chrono::milliseconds d) {
    return done_.wait_for(d) == std::future_status::ready;
  }
  conch::result<void> outcome() { return done_.get(); }
  void cancel() { stop_.request_stop(); }

 private:
  std::stop_source stop_;
  std::future<conch::result<void>> done_;
};

std::vector<conch::key_value> candidates(conch::etcd_transport& t, const std::string& office) {
  auto r = t.range(conch::range_request::prefix(office), t.default_deadline());
  REQUIRE(r);
  return r->kvs;
}

bool has_key(conch::etcd_transport& t, const std::string& office, const std::string& key) {
  for (const auto& kv : candidates(t, office))
    if (kv.key == key) return true;
  return false;
}

std::string lease_hex(conch::lease_id id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(id));
  return buf;
}

}  // namespace

TEST_CASE("an uncontended campaign leads at once with the etcd layout and token") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, "office"};
  REQUIRE(a.office.campaign("a-record"));
  CHECK(a.office.leading());
  CHECK(a.office.key() == prefix + "elect/office/" + lease_hex(a.session.lease()));

  auto held = candidates(t, prefix + "elect/office/");
  REQUIRE(held.size() == 1);
  CHECK(held[0].value == "a-record");
  CHECK(held[0].lease == a.session.lease());
  CHECK(a.office.create_revision() == held[0].create_revision);
  CHECK(a.office.token() == held[0].create_revision);

  auto who = conch::election::leader(t, prefix, "office");
  REQUIRE(who);
  REQUIRE(who->has_value());
  CHECK((*who)->key == a.office.key());
  CHECK((*who)->value == "a-record");
}

TEST_CASE("a vacant office has no leader") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  auto who = conch::election::leader(t, conch::test::unique_prefix(), "office");
  REQUIRE(who);
  CHECK_FALSE(who->has_value());
}

TEST_CASE("resign hands the office to the next contender promptly, with a greater token") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";
  contender a{t, prefix, "office"}, b{t, prefix, "office"}, c{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));
  const auto a_token = a.office.token();  // resign() zeroes it
  REQUIRE(a_token > 0);

  background_campaign bw{b.office, "b"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 5s));
  background_campaign cw{c.office, "c"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 3; }, 5s));
  CHECK_FALSE(bw.finished_within(200ms));  // a still leads

  REQUIRE(a.office.resign());
  CHECK(a.office.token() == 0);
  CHECK_FALSE(a.office.leading());
  // The TTL is 30 s: leading within a few seconds means the delete was seen, not an expiry.
  REQUIRE(bw.finished_within(5s));
  REQUIRE(bw.outcome());
  CHECK(b.office.leading());
  CHECK(b.office.token() > a_token);
  CHECK_FALSE(cw.finished_within(200ms));  // c waits for b, not for a

  const auto b_token = b.office.token();
  REQUIRE(b.office.resign());
  REQUIRE(cw.finished_within(5s));
  REQUIRE(cw.outcome());
  CHECK(c.office.token() > b_token);
  auto who = conch::election::leader(t, prefix, "office");
  REQUIRE(who);
  REQUIRE(who->has_value());
  CHECK((*who)->value == "c");
}

TEST_CASE("a waiter behind a waiter that gives up still follows the leader") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";
  contender a{t, prefix, "office"}, b{t, prefix, "office"}, c{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));
  background_campaign bw{b.office, "b"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 5s));
  background_campaign cw{c.office, "c"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 3; }, 5s));

  bw.cancel();  // c's predecessor leaves; c must now watch a
  REQUIRE(bw.finished_within(5s));
  CHECK(bw.outcome().error().code == errc::cancelled);
  CHECK_FALSE(cw.finished_within(300ms));

  REQUIRE(a.office.resign());
  REQUIRE(cw.finished_within(5s));
  REQUIRE(cw.outcome());
}

TEST_CASE("nonblock: busy at once when another leads, and our key is gone") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, "office"}, b{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));

  conch::election::campaign_options o;
  o.nonblock = true;
  auto r = b.office.campaign("b", o);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::busy);
  CHECK_THAT(r.error().message, Catch::Contains(a.office.key()));
  CHECK(candidates(t, prefix + "elect/office/").size() == 1);
  CHECK(b.office.key().empty());

  REQUIRE(a.office.resign());
  REQUIRE(b.office.campaign("b", o));  // vacant: nonblock leads
  CHECK(b.office.leading());
}

TEST_CASE("timeout: timed_out and our key removed") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, "office"}, b{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));

  conch::election::campaign_options o;
  o.timeout = 300ms;
  auto r = b.office.campaign("b", o);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::timed_out);
  CHECK_FALSE(has_key(t, prefix + "elect/office/",
                      prefix + "elect/office/" + lease_hex(b.session.lease())));
  CHECK_FALSE(b.session.lost());
}

TEST_CASE("cancellation through the stop token: cancelled and our key removed") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";
  contender a{t, prefix, "office"}, b{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));
  background_campaign bw{b.office, "b"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 5s));
  bw.cancel();
  REQUIRE(bw.finished_within(5s));
  auto r = bw.outcome();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::cancelled);
  CHECK(candidates(t, office).size() == 1);
  CHECK_FALSE(b.session.lost());
}

TEST_CASE("a waiter whose lease is revoked gets lost, not leadership") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";
  contender a{t, prefix, "office"}, b{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));
  background_campaign bw{b.office, "b"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 5s));
  etcd.revoke_lease(b.session.lease());
  REQUIRE(bw.finished_within(10s));
  auto r = bw.outcome();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::lost);
  CHECK(b.session.lost());
  CHECK(a.office.leading());
}

TEST_CASE("a leader whose key is deleted loses its session") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));
  etcd.etcdctl_ok({"del", a.office.key()});
  REQUIRE(eventually([&] { return a.session.lost(); }, 10s));
  auto p = a.office.proclaim("again");
  REQUIRE_FALSE(p);
  CHECK(p.error().code == errc::lost);
  CHECK(candidates(t, prefix + "elect/office/").empty());  // never re-created by a stale leader
}

TEST_CASE("a zero timeout still takes a vacant office") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, "office"}, b{t, prefix, "office"};
  conch::election::campaign_options now;
  now.timeout = 0ms;
  REQUIRE(a.office.campaign("a", now));
  auto r = b.office.campaign("b", now);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::timed_out);
  CHECK(candidates(t, prefix + "elect/office/").size() == 1);
}

TEST_CASE("proclaim is a fenced update while leading") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, "office"};
  REQUIRE(a.office.campaign("first"));
  const auto token = a.office.token();
  REQUIRE(a.office.proclaim("second"));
  auto who = conch::election::leader(t, prefix, "office");
  REQUIRE(who);
  REQUIRE(who->has_value());
  CHECK((*who)->value == "second");
  CHECK((*who)->create_revision == token);

  REQUIRE(a.office.resign());
  auto late = a.office.proclaim("third");
  REQUIRE_FALSE(late);
  CHECK(late.error().code == errc::failed_precondition);
}

TEST_CASE("double campaign on one session and office is reported, not shared") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  conch::session s{t, {30s, {}}};
  REQUIRE(s.start());

  SECTION("a second election object on the same session and office") {
    conch::election first{s, prefix, "office"}, second{s, prefix, "office"};
    REQUIRE(first.campaign("one"));
    auto r = second.campaign("two");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::failed_precondition);
    CHECK(first.leading());
    CHECK(candidates(t, prefix + "elect/office/").size() == 1);
    // The first still owns its key: resigning it frees the office for the second.
    REQUIRE(first.resign());
    REQUIRE(second.campaign("two"));
  }
  SECTION("the same object campaigning twice") {
    conch::election e{s, prefix, "office"};
    REQUIRE(e.campaign("one"));
    auto r = e.campaign("again");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::failed_precondition);
    CHECK(e.leading());
  }
  SECTION("a key under our lease that this election did not create") {
    conch::put_request put;
    put.key = prefix + "elect/office/" + lease_hex(s.lease());
    put.value = "someone else";
    put.lease = s.lease();
    REQUIRE(t.put(put, t.default_deadline()));
    conch::election e{s, prefix, "office"};
    auto r = e.campaign("mine");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::failed_precondition);
    CHECK_THAT(r.error().message, Catch::Contains("did not create"));
    auto still = candidates(t, prefix + "elect/office/");
    REQUIRE(still.size() == 1);
    CHECK(still[0].value == "someone else");
  }
  SECTION("different offices on one session are fine") {
    conch::election x{s, prefix, "x"}, y{s, prefix, "y"};
    REQUIRE(x.campaign("x"));
    REQUIRE(y.campaign("y"));
  }
}

TEST_CASE("compaction and an etcd restart while waiting: the waiter keeps its place") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";
  contender a{t, prefix, "office"}, b{t, prefix, "office"}, c{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));
  background_campaign bw{b.office, "b"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 5s));
  background_campaign cw{c.office, "c"};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 3; }, 5s));
  const auto b_key = prefix + "elect/office/" + lease_hex(b.session.lease());
  conch::revision b_created = 0;
  for (const auto& kv : candidates(t, office))
    if (kv.key == b_key) b_created = kv.create_revision;

  // Move history past the waiters' watch start and compact it away; then the
  // restart makes every watch resume from a compacted revision.
  for (int i = 0; i < 5; ++i) etcd.etcdctl_ok({"put", prefix + "noise", std::to_string(i)});
  etcd.compact();
  etcd.restart();
  CHECK_FALSE(bw.finished_within(500ms));

  REQUIRE(a.office.resign());
  REQUIRE(bw.finished_within(10s));
  REQUIRE(bw.outcome());
  CHECK(b.office.create_revision() == b_created);
  CHECK_FALSE(cw.finished_within(300ms));
  REQUIRE(b.office.resign());
  REQUIRE(cw.finished_within(10s));
  REQUIRE(cw.outcome());
  CHECK_FALSE(b.session.lost());
  CHECK_FALSE(c.session.lost());
}

namespace {

// Collects what observe() reports, on its own thread.
class leader_log {
 public:
  leader_log(conch::etcd_transport& t, std::string prefix, std::string name)
      : thread_(
            [this, &t, prefix = std::move(prefix), name = std::move(name)](std::stop_token stop) {
              auto r = conch::election::observe(t, prefix, name, stop,
                                                [this](const std::optional<conch::key_value>& kv) {
                                                  std::lock_guard lock{m_};
                                                  seen_.push_back(kv);
                                                  cv_.notify_all();
                                                });
              std::lock_guard lock{m_};
              ended_ = true;
              ok_ = r.ok();
              cv_.notify_all();
            }) {}

  // Waits until the latest report satisfies `f`.
  template <class F>
  bool await(F f, std::chrono::milliseconds within = 10s) {
    std::unique_lock lock{m_};
    return cv_.wait_for(lock, within, [&] { return !seen_.empty() && f(seen_.back()); });
  }
  std::size_t reports() {
    std::lock_guard lock{m_};
    return seen_.size();
  }
  void stop() { thread_.request_stop(); }
  bool ended_ok(std::chrono::milliseconds within = 5s) {
    std::unique_lock lock{m_};
    return cv_.wait_for(lock, within, [&] { return ended_; }) && ok_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::optional<conch::key_value>> seen_;
  bool ended_ = false, ok_ = false;
  std::jthread thread_;
};

auto held_by(const std::string& value) {
  return [value](const std::optional<conch::key_value>& kv) { return kv && kv->value == value; };
}
auto vacant() {
  return [](const std::optional<conch::key_value>& kv) { return !kv; };
}

}  // namespace

TEST_CASE("observe follows leaders and values, and survives an etcd restart and compaction") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  leader_log log{t, prefix, "office"};
  REQUIRE(log.await(vacant()));

  contender a{t, prefix, "office"}, b{t, prefix, "office"};
  REQUIRE(a.office.campaign("a"));
  REQUIRE(log.await(held_by("a")));
  REQUIRE(a.office.proclaim("a2"));
  REQUIRE(log.await(held_by("a2")));

  background_campaign bw{b.office, "b"};
  REQUIRE(eventually([&] { return candidates(t, prefix + "elect/office/").size() == 2; }, 5s));
  const auto before_restart = log.reports();
  for (int i = 0; i < 3; ++i) etcd.etcdctl_ok({"put", prefix + "noise", std::to_string(i)});
  etcd.compact();
  etcd.restart();

  REQUIRE(a.office.resign());
  REQUIRE(bw.finished_within(10s));
  REQUIRE(log.await(held_by("b")));
  CHECK(log.reports() > before_restart);
  REQUIRE(b.office.resign());
  REQUIRE(log.await(vacant()));

  log.stop();
  CHECK(log.ended_ok());
}

TEST_CASE("the election destructor leaves the office") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  conch::session s{t, {30s, {}}};
  REQUIRE(s.start());
  {
    conch::election e{s, prefix, "office"};
    REQUIRE(e.campaign("short-lived"));
  }
  CHECK(candidates(t, prefix + "elect/office/").empty());
  CHECK_FALSE(s.lost());
}

namespace {
struct counted : conch::default_policies {
  using fencing = conch::counter_fencing;
};
}  // namespace

TEST_CASE("counter fencing: dense tokens per office, bumped only by a sitting leader") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  conch::basic_session<counted> sa{t, {30s, {}}}, sb{t, {30s, {}}};
  REQUIRE(sa.start());
  REQUIRE(sb.start());
  conch::basic_election<counted> a{sa, prefix, "office"}, b{sb, prefix, "office"};
  REQUIRE(a.campaign("a"));
  CHECK(a.token() == 1);

  conch::basic_election<counted>::campaign_options o;
  o.nonblock = true;
  REQUIRE(b.campaign("b", o).error().code == errc::busy);  // a waiter that gives up takes no token
  auto waiting = std::async(std::launch::async, [&] { return b.campaign("b"); });
  REQUIRE(eventually([&] { return candidates(t, prefix + "elect/office/").size() == 2; }, 5s));
  REQUIRE(a.resign());
  REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
  REQUIRE(waiting.get());
  CHECK(b.token() == 2);
  REQUIRE(b.resign());
  REQUIRE(a.campaign("a again"));
  CHECK(a.token() == 3);
  // The counter lives outside the office: etcdctl elect -l never sees it.
  CHECK(candidates(t, prefix + "elect/office/").size() == 1);
}

TEST_CASE("a name that cannot be a key segment is refused with a reason") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  conch::session s{t, {30s, {}}};
  REQUIRE(s.start());
  conch::election e{s, prefix, ""};
  auto r = e.campaign("x");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::invalid_argument);
  CHECK_THAT(r.error().message, Catch::Contains("empty"));
  auto who = conch::election::leader(t, prefix, "");
  REQUIRE_FALSE(who);
  CHECK(who.error().code == errc::invalid_argument);
  std::stop_source stop;
  auto watched = conch::election::observe(t, prefix, "", stop.get_token(), [](const auto&) {});
  REQUIRE_FALSE(watched);
  CHECK(watched.error().code == errc::invalid_argument);
}

TEST_CASE("observe on a session follows the office with the session's transport and policies") {
  conch::etcd_transport t{etcd_server::shared().client_options()};
  const auto prefix = conch::test::unique_prefix();
  conch::session s{t};
  REQUIRE(s.start());
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::optional<conch::key_value>> seen;
  std::jthread watcher([&](std::stop_token stop) {
    (void)conch::election::observe(s, prefix, "office", stop, [&](const auto& kv) {
      std::lock_guard lock{m};
      seen.push_back(kv);
      cv.notify_all();
    });
  });
  auto await = [&](auto f) {
    std::unique_lock lock{m};
    return cv.wait_for(lock, 10s, [&] { return !seen.empty() && f(seen.back()); });
  };
  REQUIRE(await(vacant()));
  conch::election office{s, prefix, "office"};
  REQUIRE(office.campaign("here"));
  CHECK(await(held_by("here")));
  REQUIRE(office.resign());
  CHECK(await(vacant()));
}
