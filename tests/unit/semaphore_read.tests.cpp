// What a semaphore waiter makes of one read: pure, no etcd.
#include "conch/logic/semaphore_read.hpp"

#include <catch2/catch.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

using conch::key_value;
using conch::detail::rank_step;
using conch::detail::sema_layout;

namespace {

const sema_layout layout{"conch/", "pool", 2, "conch/sema/pool/max=2/", 0x1a};

key_value kv(std::string key, conch::revision created, conch::lease_id lease = 0) {
  key_value k;
  k.key = std::move(key);
  k.create_revision = created;
  k.lease = lease;
  return k;
}
key_value slot(int i, conch::revision created, conch::lease_id lease) {
  return kv(layout.office + "slot/" + std::to_string(i), created, lease);
}
key_value queued(conch::lease_id lease, conch::revision created) {
  return kv(conch::detail::queue_key(layout.office, lease), created, lease);
}

conch::range_response range(std::vector<key_value> kvs) {
  conch::range_response r;
  r.kvs = std::move(kvs);
  return r;
}

// A re-read's answer: our key, the one before us, the slots.
conch::txn_response place(std::vector<key_value> own, std::vector<key_value> before,
                          std::vector<key_value> slots) {
  conch::txn_response t;
  t.header_revision = 100;
  t.responses = {range(std::move(own)), range(std::move(before)), range(std::move(slots))};
  return t;
}

}  // namespace

TEST_CASE("the head claims the lowest free slot; with none, it watches the slots", "[semaphore]") {
  auto s = conch::detail::parse_place(place({queued(0x1a, 50)}, {}, {slot(0, 10, 7)}), 0, layout);
  REQUIRE(s);
  CHECK(s->at == 100);
  CHECK(s->next.what == rank_step::claim);
  CHECK(s->next.slot == 1);

  auto full = conch::detail::parse_place(
      place({queued(0x1a, 50)}, {}, {slot(1, 11, 8), slot(0, 10, 7)}), 0, layout);
  REQUIRE(full);
  CHECK(full->next.what == rank_step::watch_slots);
  CHECK(full->holders_text(layout) == " (2 of 2 slots held)");
}

TEST_CASE("a waiter behind another watches exactly that one, even with a slot free",
          "[semaphore]") {
  auto s = conch::detail::parse_place(place({queued(0x1a, 50)}, {queued(0x2b, 40)}, {}), 0, layout);
  REQUIRE(s);
  CHECK(s->next.what == rank_step::watch_predecessor);
  CHECK(s->next.predecessor == queued(0x2b, 40).key);
}

TEST_CASE("a slot under our lease is ours; no queue key and no slot is a lost place",
          "[semaphore]") {
  auto held =
      conch::detail::parse_place(place({}, {queued(0x2b, 40)}, {slot(1, 60, 0x1a)}), 0, layout);
  REQUIRE(held);
  CHECK(held->next.what == rank_step::hold);
  CHECK(held->next.slot == 1);
  REQUIRE(held->slot_kv(layout, 1));
  CHECK(held->slot_kv(layout, 1)->create_revision == 60);

  auto gone = conch::detail::parse_place(place({}, {}, {}), 0, layout);
  REQUIRE(gone);
  CHECK(gone->next.what == rank_step::gone);
}

TEST_CASE("keys that are not this semaphore's slots are never counted", "[semaphore]") {
  // A slot of another size, an index beyond max, a non-number: none occupies a slot.
  auto s = conch::detail::parse_place(
      place({queued(0x1a, 50)}, {},
            {kv("conch/sema/pool/max=3/slot/0", 5, 9), kv(layout.office + "slot/2", 6, 9),
             kv(layout.office + "slot/x", 7, 9), kv(layout.office + "slot/01", 8, 9)}),
      0, layout);
  REQUIRE(s);
  CHECK(s->next.what == rank_step::claim);
  CHECK(s->next.slot == 0);
  CHECK(s->holders_text(layout) == " (0 of 2 slots held)");
}

TEST_CASE("the enqueue answer names our predecessor from the two newest waiters", "[semaphore]") {
  conch::txn_response t;
  t.header_revision = 50;
  t.responses = {conch::put_response{}, range({queued(0x1a, 50)}),
                 range({queued(0x1a, 50), queued(0x2b, 40)}),
                 range({slot(0, 10, 7), slot(1, 11, 8)})};
  auto s = conch::detail::parse_entry(t, 1, layout);
  REQUIRE(s);
  CHECK(s->next.what == rank_step::watch_predecessor);
  CHECK(s->next.predecessor == queued(0x2b, 40).key);

  t.responses[2] = range({queued(0x1a, 50)});  // alone in line
  auto head = conch::detail::parse_entry(t, 1, layout);
  REQUIRE(head);
  CHECK(head->next.what == rank_step::watch_slots);

  t.responses.resize(2);  // an answer without its reads is an error, not a crash
  CHECK_FALSE(conch::detail::parse_entry(t, 1, layout));
}

TEST_CASE("a re-read that leads to the same wait keeps the watch", "[semaphore]") {
  auto a = conch::detail::parse_place(place({queued(0x1a, 50)}, {queued(0x2b, 40)}, {}), 0, layout);
  auto b = conch::detail::parse_place(
      place({queued(0x1a, 50)}, {queued(0x2b, 40)}, {slot(0, 1, 3)}), 0, layout);
  auto c = conch::detail::parse_place(place({queued(0x1a, 50)}, {queued(0x3c, 45)}, {}), 0, layout);
  REQUIRE((a && b && c));
  CHECK(a->same_wait(*b));
  CHECK_FALSE(a->same_wait(*c));
}

TEST_CASE("a newcomer takes its last slot when free, never one kept for the line", "[semaphore]") {
  using conch::detail::newcomer_slot;
  std::vector<int> free(58);
  std::iota(free.begin(), free.end(), 3);  // slots 3..60 free
  const std::size_t waiters = 38, kept = free.size() - waiters;
  // Its own last slot, when among the ones it may take: newcomers that last
  // held different slots never name the same one.
  std::set<std::size_t> taken;
  for (std::size_t j = 1; j < kept; ++j) taken.insert(newcomer_slot(free, waiters, free[j], 0));
  CHECK(taken.size() == kept - 1);
  // Never the head's (the lowest free) while another is left, never a kept one.
  CHECK(newcomer_slot(free, waiters, free[0], 0) != 0);
  CHECK(newcomer_slot(free, waiters, free[kept], 0) < kept);
  // Without a slot of its own there, the picks spread over every slot it may take.
  std::set<std::size_t> picked;
  for (std::uint64_t spread = 0; spread < 64; ++spread) {
    const auto i = newcomer_slot(free, waiters, -1, spread);
    CHECK((i >= 1 && i < kept));
    picked.insert(i);
  }
  CHECK(picked.size() == kept - 1);
  // Nobody waiting: any free slot, the lowest too; one left for us: that one.
  CHECK(newcomer_slot(free, 0, free[0], 7) == 0);
  CHECK(newcomer_slot(free, free.size() - 1, free[5], 7) == 0);
}
