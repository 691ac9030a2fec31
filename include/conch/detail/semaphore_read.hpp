// conch/detail/semaphore_read.hpp — what a semaphore waiter reads, and what it means.
//
// A waiter's whole decision rests on one consistent read: its own queue key
// (still there, same create_revision?), how many waiters are ahead of it (only
// up to N matters: with N or more ahead there is no slot for it), the waiter
// just ahead (the one key it would watch), and which slots are taken (and
// whether one is already its own, from a claim whose answer was lost). These
// helpers build those reads as txn ops and turn the answer into a
// `sema_state`; no I/O here.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "conch/detail/keys.hpp"
#include "conch/detail/semaphore_interim.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

namespace conch::detail {

inline const range_response* range_at(const txn_response& r, std::size_t i) {
  return i < r.responses.size() ? std::get_if<range_response>(&r.responses[i]) : nullptr;
}
inline std::optional<key_value> front(const range_response* r) {
  if (!r || r->kvs.empty()) return std::nullopt;
  return r->kvs.front();
}

/// Where one semaphore's keys live.
struct sema_layout {
  std::string prefix, name;  ///< the namespace ("conch/") and the semaphore's name
  int max = 1;
  std::string office;        ///< `<prefix>sema/<name>/max=<N>/`
  lease_id lease = 0;        ///< ours: tells our own slot apart

  std::string slots() const { return slot_dir(office); }
  std::string queue() const { return queue_dir(office); }
  /// The slot index of `key` if it is one of this semaphore's slot keys.
  std::optional<int> slot_of(std::string_view key) const {
    auto k = decode_key<semaphore_slot_key>(prefix, key);
    if (!k || k->name != name || k->max != max) return std::nullopt;
    return k->slot;
  }
};

/// One consistent read of a waiter's place.
struct sema_state {
  struct owned_slot {
    int index = 0;
    key_value kv;
  };
  revision at = 0;
  std::optional<key_value> own;          ///< our queue key
  std::size_t ahead = 0;                 ///< waiters before us, counted up to max
  std::optional<key_value> predecessor;  ///< the waiter just before us
  std::vector<bool> held;                ///< held[i]: slot i is taken
  std::optional<owned_slot> mine;        ///< a slot under our lease

  interim::sema_step next() const { return interim::sema_next(ahead, held); }

  /// Whether `other` leads to the same wait (same kind, same watched key).
  bool same_wait(const sema_state& other) const {
    const auto a = next(), b = other.next();
    if (mine || other.mine || a.what != b.what) return false;
    if (a.what == interim::sema_step::kind::claim) return false;
    if (a.what == interim::sema_step::kind::watch_slots) return true;
    return predecessor && other.predecessor && predecessor->key == other.predecessor->key &&
           predecessor->create_revision == other.predecessor->create_revision;
  }

  /// " (2 of 2 slots held, 3 waiting ahead)", for a busy message.
  std::string holders_text() const {
    std::size_t taken = 0;
    for (bool h : held) taken += h ? 1 : 0;
    std::string s = " (" + std::to_string(taken) + " of " + std::to_string(held.size()) + " slots held";
    if (ahead > 0) s += ", " + std::to_string(ahead) + (ahead >= held.size() ? " or more" : "") + " waiting ahead";
    return s + ")";
  }
};

namespace sema_read_detail {

inline range_request queue_by_create(const sema_layout& l, range_request::sort_order order, std::int64_t limit,
                                     revision before = 0) {
  auto r = range_request::prefix(l.queue());
  r.order = order;
  r.target = range_request::sort_target::create;
  r.keys_only = true;
  r.limit = limit;
  if (before > 1) r.max_create_revision = before - 1;
  return r;
}

inline range_request slots(const sema_layout& l) {
  auto r = range_request::prefix(l.slots());
  r.keys_only = true;
  return r;
}

inline void read_slots(sema_state& s, const range_response& slots, const sema_layout& l) {
  s.held.assign(static_cast<std::size_t>(l.max), false);
  for (const auto& kv : slots.kvs) {
    auto i = l.slot_of(kv.key);
    if (!i) continue;  // not a slot of this semaphore: never ours to count
    s.held[static_cast<std::size_t>(*i)] = true;
    if (l.lease != 0 && kv.lease == l.lease) s.mine = sema_state::owned_slot{*i, kv};
  }
}

}  // namespace sema_read_detail

/// The reads that follow the enqueue put in one txn: our key, the first
/// max+1 waiters, the last two (ours and the one before), the slots.
inline void add_entry_reads(std::vector<request_op>& ops, const sema_layout& l, const std::string& own_key) {
  range_request own;
  own.key = own_key;
  ops.emplace_back(own);
  ops.emplace_back(sema_read_detail::queue_by_create(l, range_request::sort_order::ascend,
                                                     static_cast<std::int64_t>(l.max) + 1));
  ops.emplace_back(sema_read_detail::queue_by_create(l, range_request::sort_order::descend, 2));
  ops.emplace_back(sema_read_detail::slots(l));
}

inline result<sema_state> parse_entry(const txn_response& r, std::size_t first, const sema_layout& l,
                                      const std::string& own_key) {
  const auto *own = range_at(r, first), *oldest = range_at(r, first + 1), *newest = range_at(r, first + 2),
             *slots = range_at(r, first + 3);
  if (!own || !oldest || !newest || !slots) return error{errc::internal, "semaphore txn answered without its reads"};
  sema_state s;
  s.at = r.header_revision;
  s.own = front(own);
  if (!s.own) return error{errc::internal, "semaphore txn did not show our own queue key " + own_key};
  const revision mine = s.own->create_revision;
  std::size_t ahead = 0;
  bool found = false;
  for (const auto& kv : oldest->kvs) {
    if (kv.create_revision < mine) ++ahead;
    else found = true;
  }
  s.ahead = found ? ahead : static_cast<std::size_t>(l.max) + 1;  // not among the first max+1: at least that many ahead
  for (const auto& kv : newest->kvs)
    if (kv.create_revision < mine) {
      s.predecessor = kv;
      break;
    }
  sema_read_detail::read_slots(s, *slots, l);
  return s;
}

/// A waiter's re-read: our key, up to max waiters before us, the one just
/// before us, the slots.
inline void add_place_reads(std::vector<request_op>& ops, const sema_layout& l, const std::string& own_key,
                            revision own_rev) {
  range_request own;
  own.key = own_key;
  ops.emplace_back(own);
  ops.emplace_back(sema_read_detail::queue_by_create(l, range_request::sort_order::ascend,
                                                     static_cast<std::int64_t>(l.max), own_rev));
  ops.emplace_back(sema_read_detail::queue_by_create(l, range_request::sort_order::descend, 1, own_rev));
  ops.emplace_back(sema_read_detail::slots(l));
}

inline result<sema_state> parse_place(const txn_response& r, std::size_t first, const sema_layout& l) {
  const auto *own = range_at(r, first), *ahead = range_at(r, first + 1), *before = range_at(r, first + 2),
             *slots = range_at(r, first + 3);
  if (!own || !ahead || !before || !slots) return error{errc::internal, "semaphore txn answered without its reads"};
  sema_state s;
  s.at = r.header_revision;
  s.own = front(own);
  s.ahead = ahead->kvs.size();
  s.predecessor = front(before);
  sema_read_detail::read_slots(s, *slots, l);
  return s;
}

}  // namespace conch::detail
