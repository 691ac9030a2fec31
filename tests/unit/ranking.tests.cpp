#include "conch/logic/ranking.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <deque>
#include <map>
#include <rapidcheck/catch.h>
#include <set>

using namespace conch;
using namespace conch::detail;

TEST_CASE("the head claims the lowest free slot; the others watch their predecessor", "[ranking]") {
  semaphore_view v;
  v.slots = {lease_id{7}, std::nullopt, std::nullopt};
  v.queue = {{"q/c", 30}, {"q/a", 10}, {"q/b", 20}};  // any order in, create_revision order out

  auto head = rank_waiter(v, 0xa, "q/a");
  CHECK(head.what == rank_step::claim);
  CHECK(head.slot == 1);
  CHECK(head.position == 0);

  auto second = rank_waiter(v, 0xb, "q/b");
  CHECK(second.what == rank_step::watch_predecessor);
  CHECK(second.predecessor == "q/a");
  CHECK(second.position == 1);

  CHECK(rank_waiter(v, 0xc, "q/c").predecessor == "q/b");
}

TEST_CASE("a head facing full slots watches the slot directory", "[ranking]") {
  semaphore_view v;
  v.slots = {lease_id{7}, lease_id{0}};  // a lease-less (foreign) slot key counts as held
  v.queue = {{"q/a", 10}};
  auto d = rank_waiter(v, 0xa, "q/a");
  CHECK(d.what == rank_step::watch_slots);
  CHECK(d.slot == -1);
}

TEST_CASE("a waiter already holding a slot holds; one without a queue key is gone", "[ranking]") {
  semaphore_view v;
  v.slots = {std::nullopt, lease_id{0xa}};
  v.queue = {{"q/b", 20}};
  auto held = rank_waiter(v, 0xa, "q/a");
  CHECK(held.what == rank_step::hold);
  CHECK(held.slot == 1);
  CHECK(rank_waiter(v, 0xc, "q/c").what == rank_step::gone);
  CHECK(rank_waiter(v, 0, "q/z").what ==
        rank_step::gone);  // lease 0 never matches a lease-less slot
}

TEST_CASE("the view keeps only keys that are ours", "[ranking]") {
  const std::string office = "conch/sema/db/max=2/";
  std::vector<key_value> slots{{office + "slot/0", "", 5, 5, 1, 0xa},
                               {office + "slot/2", "", 6, 6, 1, 0xb},   // not below N
                               {office + "slot/01", "", 7, 7, 1, 0xc},  // not canonical
                               {office + "slot/1/x", "", 8, 8, 1, 0xd}};
  std::vector<key_value> queue{{office + "queue/1f", "", 9, 9, 1, 0x1f},
                               {office + "queue/junk", "", 10, 10, 1, 0},
                               {office + "queue/2a", "", 11, 11, 1, 0x2a}};
  auto v = make_semaphore_view(office, 2, slots, queue);
  REQUIRE(v.slots.size() == 2);
  CHECK(v.slots[0] == lease_id{0xa});
  CHECK(v.slots[1] == std::nullopt);
  REQUIRE(v.queue.size() == 2);
  CHECK(v.queue[0].key == office + "queue/1f");
  CHECK(v.queue[1].create_revision == 11);
}

namespace {

/// A semaphore run as the recipe runs it, one event at a time: each waiter
/// acts only when the one key it watches changes (or when it joins, after
/// creating its watch), and every waiter's decision comes from rank_waiter.
class model {
 public:
  explicit model(int n) : slots_(static_cast<std::size_t>(n)) {}

  void join() {
    const lease_id id = next_id_++;
    queue_.push_back({key(id), ++revision_});
    wake_.push_back(id);
    settle();
  }
  /// A waiter gives up (--timeout) or its lease expires: its queue key goes.
  void leave(std::size_t pick) {
    if (queue_.empty()) return;
    const auto it = queue_.begin() + static_cast<std::ptrdiff_t>(pick % queue_.size());
    const std::string gone = it->key;
    watching_.erase(id_of(gone));
    queue_.erase(it);
    deliver(gone);
    settle();
  }
  /// A holder releases its slot or its lease expires: the slot key goes.
  void release(std::size_t pick) {
    std::vector<std::size_t> held;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i]) held.push_back(i);
    if (held.empty()) return;
    slots_[held[pick % held.size()]].reset();
    deliver("slots");
    settle();
  }

  /// The invariants that must hold whenever no event is in flight.
  void check() const {
    const bool some_free = std::find(slots_.begin(), slots_.end(), std::nullopt) != slots_.end();
    RC_ASSERT(!(some_free && !queue_.empty()));  // work-conserving
    std::set<lease_id> holders;
    for (const auto& s : slots_)
      if (s) RC_ASSERT(holders.insert(*s).second);  // a waiter holds at most one slot
    RC_ASSERT(holders.size() <= slots_.size());
    RC_ASSERT(watching_.size() == queue_.size());  // every waiter watches exactly one key
    std::set<std::string> targets;
    for (const auto& [id, target] : watching_)
      RC_ASSERT(targets.insert(target).second);                 // no key watched twice
    RC_ASSERT(std::is_sorted(served_.begin(), served_.end()));  // FIFO service
  }

 private:
  static std::string key(lease_id id) { return "queue/" + lease_hex(id); }
  static lease_id id_of(const std::string& k) {
    return *parse_lease_hex(std::string_view(k).substr(6));
  }

  /// Wakes the watchers of `target`: never more than one (no herd).
  void deliver(const std::string& target) {
    int woken = 0;
    for (const auto& [id, t] : watching_) {
      if (t == target) {
        wake_.push_back(id);
        ++woken;
      }
    }
    RC_ASSERT(woken <= 1);
  }

  void settle() {
    while (!wake_.empty()) {
      const lease_id id = wake_.front();
      wake_.pop_front();
      const auto d = rank_waiter({queue_, slots_}, id, key(id));
      switch (d.what) {
        case rank_step::gone:
        case rank_step::hold:
          RC_FAIL("a woken waiter is always in the queue and never holds");
        case rank_step::claim: {
          auto& slot = slots_.at(static_cast<std::size_t>(d.slot));
          RC_ASSERT(!slot);
          RC_ASSERT(d.slot ==
                    std::find(slots_.begin(), slots_.end(), std::nullopt) - slots_.begin());
          for (const auto& w : queue_)
            RC_ASSERT(w.key == key(id) || id_of(w.key) > id);  // nobody older waits
          slot = id;
          std::erase_if(queue_, [&](const waiter& w) { return w.key == key(id); });
          watching_.erase(id);
          served_.push_back(id);
          deliver("slots");
          deliver(key(id));
          break;
        }
        case rank_step::watch_slots:
          watching_[id] = "slots";
          break;
        case rank_step::watch_predecessor:
          RC_ASSERT(d.predecessor != key(id));
          watching_[id] = d.predecessor;
          break;
      }
    }
  }

  std::vector<std::optional<lease_id>> slots_;
  std::vector<waiter> queue_;
  std::map<lease_id, std::string> watching_;
  std::deque<lease_id> wake_;
  std::vector<lease_id> served_;
  lease_id next_id_ = 1;
  revision revision_ = 100;
};

}  // namespace

TEST_CASE("ranking against a model over random histories", "[ranking][property]") {
  rc::prop("FIFO, at most N, work-conserving, one watch per waiter, no herd", [] {
    const int n = *rc::gen::inRange(1, 5);
    model m(n);
    const auto steps = *rc::gen::container<std::vector<std::pair<int, std::size_t>>>(
        rc::gen::pair(rc::gen::inRange(0, 3), rc::gen::arbitrary<std::size_t>()));
    for (const auto& [kind, pick] : steps) {
      if (kind == 0) m.join();
      if (kind == 1) m.leave(pick);
      if (kind == 2) m.release(pick);
      m.check();
    }
  });
}
