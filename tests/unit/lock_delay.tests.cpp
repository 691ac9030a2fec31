// The lock delay's pure parts: when a sighting's delay ends, which free slot
// a semaphore's head takes, what counts as a stale held marker, where markers live.
#include "conch/logic/lock_delay.hpp"

#include "conch/logic/election_office.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/semaphore_read.hpp"
#include "conch/policies/fake_clock.hpp"

#include <catch2/catch.hpp>
#include <chrono>

using namespace std::chrono_literals;
using conch::key_value;
using conch::detail::choose_slot;
using conch::detail::free_slot;
using clock_type = conch::fake_clock<>;
using gate = conch::detail::handover_gate<clock_type::time_point>;

namespace {

key_value kv(std::string key, conch::revision created, conch::revision modified = 0) {
  key_value k;
  k.key = std::move(key);
  k.create_revision = created;
  k.mod_revision = modified ? modified : created;
  return k;
}

}  // namespace

TEST_CASE("markers live outside the office, one per candidate or slot") {
  using namespace conch::detail;
  CHECK(held_marker_dir("conch/", "conch/elect/web/") == "conch/held/elect/web/");
  CHECK(held_marker_dir("", "sema/pool/max=2/") == "held/sema/pool/max=2/");
  CHECK(candidate_marker("conch/held/elect/web/", 0x1f) == "conch/held/elect/web/1f");
  CHECK(slot_marker("conch/held/sema/pool/max=2/", 1) == "conch/held/sema/pool/max=2/1");
  // Not under the office: etcdctl elect and the observer never see them.
  CHECK_FALSE(held_marker_dir("conch/", "conch/elect/web/").starts_with("conch/elect/web/"));
}

TEST_CASE("a sighting's delay ends delay after the first sighting, on the clock given") {
  clock_type c;
  gate g{1500ms};
  REQUIRE(g.enabled());
  CHECK_FALSE(g.latest());
  const auto t0 = c.now();
  CHECK(g.saw("m/a", 7, t0) == t0 + 1500ms);
  c.advance(1s);
  // The same stale marker seen again keeps its first sighting.
  CHECK(g.saw("m/a", 7, c.now()) == t0 + 1500ms);
  CHECK(g.ready_of("m/a", 7, c.now()) == t0 + 1500ms);
  // The same key at another revision is another loss: counted from now.
  CHECK(g.saw("m/a", 9, c.now()) == c.now() + 1500ms);
  CHECK(*g.latest() == c.now() + 1500ms);
  // Never seen: it would end delay after now.
  CHECK(g.ready_of("m/b", 1, c.now()) == c.now() + 1500ms);
  g.clear();
  CHECK_FALSE(g.latest());
}

TEST_CASE("the latest delay wins, whatever the order of sightings") {
  clock_type c;
  gate g{1s};
  const auto t0 = c.now();
  g.saw("m/late", 3, t0 + 500ms);
  g.saw("m/early", 2, t0);
  CHECK(*g.latest() == t0 + 1500ms);
}

TEST_CASE("without a delay nothing waits") {
  clock_type c;
  gate g{0ms};
  CHECK_FALSE(g.enabled());
  const auto [slot, ready] =
      choose_slot<clock_type::time_point>({{2, 5}, {3, 0}}, "m/", g, c.now());
  CHECK(slot == 2);  // the lowest free slot, as the ranking says
  CHECK(ready == c.now());
}

TEST_CASE("a head takes a cleanly freed slot at once before one in its delay") {
  clock_type c;
  gate g{10s};
  const auto now = c.now();
  auto [slot, ready] = choose_slot<clock_type::time_point>({{0, 12}, {1, 0}}, "m/", g, now);
  CHECK(slot == 1);
  CHECK(ready == now);
  // Only stale ones: the one whose delay ends first.
  g.saw("m/1", 20, now);
  c.advance(3s);
  std::tie(slot, ready) = choose_slot<clock_type::time_point>({{0, 12}, {1, 20}}, "m/", g, c.now());
  CHECK(slot == 1);
  CHECK(ready == now + 10s);
}

TEST_CASE("free slots: stale markers of free slots, and the lowest clean free slot") {
  conch::detail::sema_layout l{"p/", "pool", 4, "p/sema/pool/max=4/", 1};
  conch::detail::sema_state s;
  s.slots = {kv("p/sema/pool/max=4/slot/0", 10), kv("p/sema/pool/max=4/slot/2", 11)};
  s.markers = {kv("p/held/sema/pool/max=4/0", 10),    // slot 0 is held: not stale
               kv("p/held/sema/pool/max=4/1", 5, 8),  // slot 1 free: stale
               kv("p/held/sema/pool/max=4/9", 6),     // not a slot of this size
               kv("p/held/sema/pool/max=4/x", 6)};    // not a slot at all
  const auto free = s.free_slots(l);
  REQUIRE(free.size() == 2);
  CHECK(free[0].slot == 1);
  CHECK(free[0].stale == 8);
  CHECK(free[1].slot == 3);
  CHECK(free[1].stale == 0);
}

TEST_CASE("a predecessor has a marker only if it was made in the same txn as its key") {
  using conch::detail::has_marker;
  const auto pred = kv("o/elect/x/a", 40);
  CHECK(has_marker(pred, kv("o/held/elect/x/a", 40)));
  CHECK_FALSE(has_marker(pred, std::nullopt));                // an etcdctl elect candidate
  CHECK_FALSE(has_marker(pred, kv("o/held/elect/x/b", 38)));  // someone else's, older
}

TEST_CASE("the campaign txn puts our marker and reads the one before it") {
  using namespace conch::detail;
  const auto t =
      campaign_txn("o/elect/x/", "o/elect/x/b", "v", 0xb, "o/held/elect/x/", "o/held/elect/x/b");
  REQUIRE(t.success.size() == 4);  // put, three newest (keys only), marker put, two markers
  const auto* newest = std::get_if<conch::range_request>(&t.success[1]);
  REQUIRE(newest);
  CHECK(newest->keys_only);
  CHECK(newest->limit == 3);
  const auto* put = std::get_if<conch::put_request>(&t.success[2]);
  REQUIRE(put);
  CHECK(put->key == "o/held/elect/x/b");
  CHECK(put->lease == 0);  // outlives an unclean loss
  CHECK(campaign_txn("o/elect/x/", "o/elect/x/b", "v", 0xb, "o/held/elect/x/", "o/held/elect/x/b",
                     true)
            .success.size() == 5);  // nonblock: also who leads

  conch::txn_response r;
  r.succeeded = true;
  r.header_revision = 50;
  conch::range_response newest_keys, markers;
  newest_keys.kvs = {kv("o/elect/x/b", 50)};
  markers.kvs = {kv("o/held/elect/x/b", 50), kv("o/held/elect/x/a", 41)};
  r.responses = {conch::put_response{}, newest_keys, conch::put_response{}, markers};
  auto e = parse_campaign(r);
  REQUIRE(e);
  CHECK_FALSE(e->predecessor);
  REQUIRE(e->first);
  CHECK(e->first->key == "o/elect/x/b");
  REQUIRE(e->marker_before);
  CHECK(e->marker_before->key == "o/held/elect/x/a");  // stale: its candidate is gone
}

TEST_CASE("a sole predecessor and its marker are read together, so its delete can be judged") {
  using namespace conch::detail;
  conch::txn_response r;
  r.succeeded = true;
  r.header_revision = 60;
  conch::range_response newest_keys, markers;
  newest_keys.kvs = {kv("o/elect/x/c", 60), kv("o/elect/x/b", 55)};
  markers.kvs = {kv("o/held/elect/x/c", 60), kv("o/held/elect/x/b", 55)};
  r.responses = {conch::put_response{}, newest_keys, conch::put_response{}, markers};
  auto e = parse_campaign(r);
  REQUIRE(e);
  REQUIRE(e->predecessor);
  CHECK(e->sole);
  REQUIRE(e->marker_before);
  CHECK(has_marker(*e->predecessor, e->marker_before));  // a conch candidate: its delete is
                                                         // judged by its marker

  const auto t = predecessor_txn("o/elect/x/", "o/elect/x/c", 60, "o/held/elect/x/");
  REQUIRE(t.success.size() == 3);  // own key, two before (keys only), newest marker before
  conch::txn_response reread;
  reread.succeeded = true;
  reread.header_revision = 70;
  conch::range_response own, before, marker;
  own.kvs = {kv("o/elect/x/c", 60)};
  marker.kvs = {kv("o/held/elect/x/b", 55)};  // left behind: the delete was unclean
  reread.responses = {own, before, marker};
  campaign_entry seen;
  REQUIRE(read_predecessor(reread, 60, seen));
  CHECK_FALSE(seen.predecessor);
  CHECK_FALSE(seen.sole);
  REQUIRE(seen.marker_before);
  CHECK(seen.marker_before->key == "o/held/elect/x/b");
}
