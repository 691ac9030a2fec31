// conch/logic/ranking.hpp — where a semaphore waiter stands, and what it watches.
//
// The semaphore is N slot keys `slot/<i>` (created only if absent, so never
// more than N holders) and a FIFO queue of waiter keys `queue/<lease>`,
// ordered by create_revision. Only the head of the queue may claim a slot,
// always the lowest free one, in one txn that also deletes its queue key.
//
// Who watches what — one watch per waiter, and no key watched by two:
// - a waiter behind the head watches its immediate predecessor's queue key;
//   the predecessor leaving (claimed, gave up, expired) wakes exactly it;
// - the head, when every slot is held, watches the whole slot directory (one
//   range watch). Watching a single slot would not do: if another slot were
//   released first, nobody would notice and a slot would stay free while
//   someone waits. Only the head watches the slots, so a release delivers one
//   event to one waiter, whatever the queue length.
//
//   auto d = rank_waiter(view, my_lease, my_queue_key);
//   if (d.what == rank_step::claim) try_claim(d.slot);          // lowest free slot
//   else if (d.what == rank_step::watch_predecessor) watch(d.predecessor);
//   else if (d.what == rank_step::watch_slots) watch_prefix(slot_dir(office));
#pragma once

#include "conch/logic/keys.hpp"
#include "conch/policies/transport.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conch::detail {

/// One queue key, as read from etcd.
struct waiter {
  std::string key;
  revision create_revision = 0;
};

/// The semaphore as one consistent read shows it.
struct semaphore_view {
  std::vector<waiter> queue;  ///< any order: ranked here by create_revision
  /// slots[i]: the lease holding slot i (0 for a key without lease), or
  /// nothing when slot i is free. Size N.
  std::vector<std::optional<lease_id>> slots;
};

enum class rank_step {
  hold,               ///< a slot is already ours (e.g. a claim whose answer was lost)
  claim,              ///< we are the head and `slot` is free: claim it
  watch_slots,        ///< we are the head and every slot is held: watch the slot directory
  watch_predecessor,  ///< we wait behind `predecessor`: watch that one key
  gone,               ///< our queue key is not there (expired or removed): we lost our place
};

struct rank_decision {
  rank_step what = rank_step::gone;
  std::size_t position = 0;  ///< our place in the queue, 0 for the head
  int slot = -1;             ///< hold: our slot; claim: the lowest free slot
  std::string predecessor;   ///< watch_predecessor: the queue key to watch
};

/// Queue in service order: create_revision, then key (etcd never repeats a
/// create_revision; the key only makes the order total for any input).
inline std::vector<const waiter*> service_order(const std::vector<waiter>& queue) {
  std::vector<const waiter*> order;
  order.reserve(queue.size());
  for (const auto& w : queue) order.push_back(&w);
  std::sort(order.begin(), order.end(), [](const waiter* a, const waiter* b) {
    return a->create_revision != b->create_revision ? a->create_revision < b->create_revision
                                                    : a->key < b->key;
  });
  return order;
}

/// What the waiter holding lease `us` with queue key `our_key` does next.
inline rank_decision rank_waiter(const semaphore_view& view, lease_id us,
                                 std::string_view our_key) {
  rank_decision d;
  for (std::size_t i = 0; i < view.slots.size(); ++i) {
    if (us != 0 && view.slots[i] == us) {
      d.what = rank_step::hold;
      d.slot = static_cast<int>(i);
      return d;
    }
  }
  const auto order = service_order(view.queue);
  const auto me =
      std::find_if(order.begin(), order.end(), [&](const waiter* w) { return w->key == our_key; });
  if (me == order.end()) return d;  // gone
  d.position = static_cast<std::size_t>(me - order.begin());
  if (d.position > 0) {
    d.what = rank_step::watch_predecessor;
    d.predecessor = (*(me - 1))->key;
    return d;
  }
  const auto free = std::find(view.slots.begin(), view.slots.end(), std::nullopt);
  if (free == view.slots.end()) {
    d.what = rank_step::watch_slots;
  } else {
    d.what = rank_step::claim;
    d.slot = static_cast<int>(free - view.slots.begin());
  }
  return d;
}

/// The view from two prefix reads of a semaphore office (`slot/` and
/// `queue/`). Keys that are not ours (a slot index not below N, a queue key
/// not named by a lease) are left out rather than trusted.
inline semaphore_view make_semaphore_view(std::string_view office, int max,
                                          const std::vector<key_value>& slot_kvs,
                                          const std::vector<key_value>& queue_kvs) {
  semaphore_view view;
  view.slots.resize(static_cast<std::size_t>(std::clamp(max, 0, max_semaphore_size)));
  const std::string slots = slot_dir(office), queue = queue_dir(office);
  for (const auto& kv : slot_kvs) {
    key_reader r{kv.key};
    int i = 0;
    if (r.literal(slots) && r.number(i, 0, max - 1) && r.at_end())
      view.slots[static_cast<std::size_t>(i)] = kv.lease;
  }
  for (const auto& kv : queue_kvs) {
    key_reader r{kv.key};
    lease_id l = 0;
    if (r.literal(queue) && r.lease(l) && r.at_end())
      view.queue.push_back({kv.key, kv.create_revision});
  }
  return view;
}

}  // namespace conch::detail
