// conch/logic/semaphore_read.hpp — what a semaphore waiter reads, and what it means.
//
// A waiter's whole decision (detail/ranking.hpp) rests on one consistent read
// of three things: its own queue key (still there?), the waiter just ahead of
// it (the one key it would watch; none means it is the head), and the slots
// (which are free, and whether one is already its own, from a claim whose
// answer was lost). The rest of the queue never matters, so it is never read:
// each read costs O(N) whatever the queue length. These helpers build that
// read as txn ops and turn the answer into a `sema_state`; no I/O here.
#pragma once

#include "conch/logic/keys.hpp"
#include "conch/logic/lock_delay.hpp"
#include "conch/logic/ranking.hpp"
#include "conch/logic/txn_read.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

namespace conch {

/// Who holds which slot, and who waits in which order (`--who`).
struct semaphore_status {
  struct holder {
    int slot = 0;
    key_value kv;  ///< value: the holder record; create_revision: the token
  };
  std::vector<holder> holders;     ///< by slot index
  std::vector<key_value> waiters;  ///< first in line first
  revision at = 0;                 ///< the revision this was read at
};

}  // namespace conch

namespace conch::detail {

/// Where one semaphore's keys live, and whose place we read.
struct sema_layout {
  std::string prefix, name;  ///< the namespace ("conch/") and the semaphore's name
  int max = 1;
  std::string office;  ///< `<prefix>sema/<name>/max=<N>/`
  lease_id lease = 0;  ///< ours: our queue key's name, and how our own slot is told apart

  std::string slots() const { return slot_dir(office); }
  /// Where the slots' held markers live (logic/lock_delay.hpp).
  std::string markers() const { return held_marker_dir(prefix, office); }
  std::string queue() const { return queue_dir(office); }
  std::string own_key() const { return queue_key(office, lease); }
  /// The slot index of `key` if it is one of this semaphore's slot keys.
  std::optional<int> slot_of(std::string_view key) const {
    auto k = decode_key<semaphore_slot_key>(prefix, key);
    if (!k || k->name != name || k->max != max) return std::nullopt;
    return k->slot;
  }
};

/// One consistent read of a waiter's place, and what to do about it.
struct sema_state {
  revision at = 0;
  std::optional<key_value> own;          ///< our queue key
  std::optional<key_value> predecessor;  ///< the waiter just before us
  std::vector<key_value> slots;          ///< the slot keys that exist
  std::vector<key_value> markers;        ///< the slots' held markers (keys only)
  rank_decision next;

  /// The free slots worth choosing from (choose_slot): every free slot with
  /// a stale held marker (its mod_revision) and the lowest free slot without
  /// one (stale 0), lowest first. A marker of a held slot is not stale.
  std::vector<free_slot> free_slots(const sema_layout& l) const {
    std::set<int> held;
    for (const auto& kv : slots)
      if (auto i = l.slot_of(kv.key)) held.insert(*i);
    std::map<int, revision> stale;
    const std::string dir = l.markers();
    for (const auto& kv : markers) {
      if (!kv.key.starts_with(dir)) continue;
      int i = -1;
      const std::string_view index = std::string_view(kv.key).substr(dir.size());
      const auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), i);
      if (ec != std::errc{} || end != index.data() + index.size() || i < 0 || i >= l.max) continue;
      if (!held.contains(i)) stale[i] = kv.mod_revision;
    }
    std::vector<free_slot> out;
    for (const auto& [i, rev] : stale) out.push_back({i, rev});
    for (int i = 0; i < l.max; ++i)
      if (!held.contains(i) && !stale.contains(i)) {
        out.push_back({i, 0});
        break;
      }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.slot < b.slot; });
    return out;
  }

  /// The slot key of slot `i`, if it exists.
  const key_value* slot_kv(const sema_layout& l, int i) const {
    for (const auto& kv : slots)
      if (l.slot_of(kv.key) == i) return &kv;
    return nullptr;
  }

  /// Whether `other` leads to the same wait (same kind, same watched key).
  bool same_wait(const sema_state& other) const {
    if (next.what != other.next.what) return false;
    if (next.what == rank_step::watch_slots) return true;
    return next.what == rank_step::watch_predecessor && next.predecessor == other.next.predecessor;
  }

  /// " (2 of 2 slots held, others waiting ahead)", for a busy message.
  std::string holders_text(const sema_layout& l) const {
    std::size_t taken = 0;
    for (const auto& kv : slots) taken += l.slot_of(kv.key) ? 1 : 0;
    return " (" + std::to_string(taken) + " of " + std::to_string(l.max) + " slots held" +
           (predecessor ? ", others waiting ahead" : "") + ")";
  }
};

/// A newcomer's next try while `waiters` wait, from the free slots `free`
/// (lowest first, more of them than waiters): the highest `waiters` of them
/// stay free (compared in the try), and we take one of the others, answered
/// as an index into `free`. Only the head of the line claims, one claim at a
/// time (the next waiter starts once the head's claim deleted its queue key),
/// always the lowest free slot it read: we leave that one to it when we have
/// a choice. Among the rest we take `hint` (the slot we last held) if it is
/// there, since no other newcomer names it; else `spread` (a number from our
/// lease and the try) picks one. Newcomers must not all name the same slot:
/// every try but one would fail, and those out of tries queue, so a line
/// once formed would keep itself long while most slots stay free. Which of
/// these we take never matters to FIFO or to at most N (see
/// semaphore_entry::next_free_try).
inline std::size_t newcomer_slot(const std::vector<int>& free, std::size_t waiters, int hint,
                                 std::uint64_t spread) {
  const std::size_t kept = free.size() - waiters;  // free[kept..] stay free
  const std::size_t low = waiters > 0 && kept > 1 ? 1 : 0;
  for (std::size_t j = low; j < kept; ++j)
    if (free[j] == hint) return j;
  return low + static_cast<std::size_t>(spread % (kept - low));
}

namespace sema_read_detail {

// The queue newest first, keys only; `before`: only keys created before it.
inline range_request queue_newest(const sema_layout& l, std::int64_t limit, revision before = 0) {
  auto r = range_request::prefix(l.queue());
  r.order = range_request::sort_order::descend;
  r.target = range_request::sort_target::create;
  r.keys_only = true;
  r.limit = limit;
  if (before > 1) r.max_create_revision = before - 1;
  return r;
}

inline range_request keys_of(std::string prefix) {
  auto r = range_request::prefix(std::move(prefix));
  r.keys_only = true;
  return r;
}

inline range_request own(const sema_layout& l) {
  range_request r;
  r.key = l.own_key();
  r.keys_only = true;
  return r;
}

inline void decide(sema_state& s, const sema_layout& l) {
  std::vector<key_value> queue;
  if (s.predecessor) queue.push_back(*s.predecessor);
  if (s.own) queue.push_back(*s.own);
  s.next = rank_waiter(make_semaphore_view(l.office, l.max, s.slots, queue), l.lease, l.own_key());
}

}  // namespace sema_read_detail

/// The reads that follow the enqueue put in one txn: our key, the two newest
/// waiters (ours, just created, and the one before it), the slots.
inline void add_entry_reads(std::vector<request_op>& ops, const sema_layout& l) {
  ops.emplace_back(sema_read_detail::own(l));
  ops.emplace_back(sema_read_detail::queue_newest(l, 2));
  ops.emplace_back(sema_read_detail::keys_of(l.slots()));
  ops.emplace_back(sema_read_detail::keys_of(l.markers()));
}

inline result<sema_state> parse_entry(const txn_response& r, std::size_t first,
                                      const sema_layout& l) {
  const auto *own = range_at(r, first), *newest = range_at(r, first + 1),
             *slots = range_at(r, first + 2);
  if (!own || !newest || !slots)
    return error{errc::internal, "semaphore txn answered without its reads"};
  sema_state s;
  s.at = r.header_revision;
  s.own = front(own);
  if (!s.own)
    return error{errc::internal, "semaphore txn did not show our own queue key " + l.own_key()};
  for (const auto& kv : newest->kvs)
    if (kv.create_revision < s.own->create_revision) {
      s.predecessor = kv;
      break;
    }
  s.slots = slots->kvs;
  if (const auto* markers = range_at(r, first + 3)) s.markers = markers->kvs;
  sema_read_detail::decide(s, l);
  return s;
}

/// A waiter's re-read: our key, the waiter just before us, the slots.
inline void add_place_reads(std::vector<request_op>& ops, const sema_layout& l, revision own_rev) {
  ops.emplace_back(sema_read_detail::own(l));
  ops.emplace_back(sema_read_detail::queue_newest(l, 1, own_rev));
  ops.emplace_back(sema_read_detail::keys_of(l.slots()));
  ops.emplace_back(sema_read_detail::keys_of(l.markers()));
}

inline result<sema_state> parse_place(const txn_response& r, std::size_t first,
                                      const sema_layout& l) {
  const auto *own = range_at(r, first), *before = range_at(r, first + 1),
             *slots = range_at(r, first + 2);
  if (!own || !before || !slots)
    return error{errc::internal, "semaphore txn answered without its reads"};
  sema_state s;
  s.at = r.header_revision;
  s.own = front(own);
  s.predecessor = front(before);
  s.slots = slots->kvs;
  if (const auto* markers = range_at(r, first + 3)) s.markers = markers->kvs;
  sema_read_detail::decide(s, l);
  return s;
}

/// Reads every slot (answer 0) and the queue, first in line first (answer 1).
inline txn_request status_txn(const sema_layout& l) {
  txn_request read;
  read.success.emplace_back(range_request::prefix(l.slots()));
  auto queue = range_request::prefix(l.queue());
  queue.order = range_request::sort_order::ascend;
  queue.target = range_request::sort_target::create;
  read.success.emplace_back(std::move(queue));
  return read;
}

/// Holders by slot and waiters in order, from the answer to status_txn.
inline result<semaphore_status> parse_status(const txn_response& r, const sema_layout& l) {
  const auto* slots = range_at(r, 0);
  const auto* waiters = range_at(r, 1);
  if (!slots || !waiters) return error{errc::internal, "status txn answered without its reads"};
  semaphore_status s;
  s.at = r.header_revision;
  for (const auto& kv : slots->kvs)
    if (auto i = l.slot_of(kv.key)) s.holders.push_back({*i, kv});
  std::sort(s.holders.begin(), s.holders.end(),
            [](const auto& a, const auto& b) { return a.slot < b.slot; });
  s.waiters = waiters->kvs;
  return s;
}

}  // namespace conch::detail
