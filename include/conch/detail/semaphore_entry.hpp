// conch/detail/semaphore_entry.hpp — a semaphore waiter's keys, and its way in.
//
// The first half of semaphore_line (semaphore.hpp tells the protocol): the
// keys one waiter (or holder) has, entering the line (a free slot taken at
// once, or a queue key), reading its place, and holding a slot. The wait in
// line and the way out are semaphore_line's (semaphore_line.hpp).
#pragma once

#include "conch/detail/lock_delay.hpp"
#include "conch/detail/waiting.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/lock_delay.hpp"
#include "conch/logic/semaphore_read.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/policies/fencing.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace conch::detail {

/// One waiter's (or holder's) keys of one semaphore, and how it enters the
/// line. Used from one thread; its fields are read by basic_semaphore.
template <class Session>
class semaphore_entry {
 public:
  using policies = typename Session::policies;
  using backoff_type = typename policies::backoff;
  using fencing_type = typename policies::fencing;
  using gate_type = handover_gate<typename policies::clock::time_point>;
  using stream_type = decltype(std::declval<typename policies::transport&>().watch(
      std::declval<const watch_request&>()));

  semaphore_entry(Session& s, sema_layout layout)
      : session_(s), io_(s), backoff_(s.backoff()), layout_(std::move(layout)) {}

  auto& transport() { return session_.transport(); }
  bool holding() const noexcept { return slot_rev_ != 0; }

  // Enters the line: takes a free slot at once when nobody waits (enter_free),
  // else puts our queue key (if absent) and reads our place and the slots, in
  // one txn. holding() tells which.
  result<sema_state> enqueue(lease_id lease, const stop_union& stop, deadline give_up) {
    spent_.reset();
    auto first = enter_free(lease, give_up);
    if (first && *first) return std::move(**first);
    const bool in_doubt = !first;  // enter_free may have committed unseen
    if (!first && first.error().code == errc::lease_not_found) return io_.lost_error();
    if (!first && !retryable(first.error().code)) return std::move(first).error();
    const auto& l = layout_;
    txn_request t;
    t.compares.push_back(compare::create_revision(queue_key_) == 0);
    t.success.emplace_back(put_request{queue_key_, value_, lease});
    add_entry_reads(t.success, l);
    range_request mine;
    mine.key = queue_key_;
    t.failure.emplace_back(mine);
    auto made = io_.create(t, queue_key_, value_, lease, stop, give_up, backoff_);
    if (!made) return std::move(made).error();
    if (made->response.succeeded) {
      auto s = parse_entry(made->response, 1, l);
      if (!s) return std::move(s).error();
      queue_rev_ = s->own->create_revision;
      return s;
    }
    if (made->ours ||
        (in_doubt && made->own && made->own->value == value_ && made->own->lease == lease)) {
      queue_rev_ = made->own->create_revision;  // our own earlier attempt did commit
      return read(stop, give_up);
    }
    return error{errc::failed_precondition,
                 "semaphore " + layout_.office +
                     " already has a waiter under this session's lease (" + queue_key_ +
                     ") that this object did not create"};
  }

  // The first tries of an acquire: take a free slot in one txn while that
  // delays nobody in line — nobody waits, or (after a read) more slots are
  // free than waiters and the txn keeps one free for each of them. The first
  // try names the slot we last held (else one picked by our lease); a try
  // that fails reads the queue and the slots and names a free one next
  // (newcomer_slot: the one we last held again, if it may be taken).
  // Answers nullopt when we must queue. An error's outcome is in doubt: the
  // slot may be ours unseen (a later read, or withdraw, settles it).
  result<std::optional<sema_state>> enter_free(lease_id lease, deadline give_up) {
    const auto& l = layout_;
    free_try f{{hint_ >= 0 && hint_ < l.max ? hint_ : pick(lease, 0, l.max)}, 1};
    for (int tries = 1;; ++tries) {
      std::size_t fencing_ops = 0;
      auto r = transport().txn(free_txn(f, lease, fencing_ops), io_.call_deadline(give_up));
      const int i = f.keep_free.front();
      if (!r) {
        doubtful_slot_ = slot_key(l.office, i);
        return std::move(r).error();
      }
      if (r->succeeded) {
        auto token = read_token(fencing_, *r, fencing_ops, r->header_revision);
        hold(i, slot_key(l.office, i), r->header_revision, token ? *token : 0, r->header_revision);
        if (!token) return std::move(token).error();
        sema_state s;
        s.at = r->header_revision;
        s.next = rank_decision{rank_step::hold, 0, i, {}};
        return std::optional{std::move(s)};
      }
      if (tries == max_free_tries || !next_free_try(*r, lease, tries, f))
        return std::optional<sema_state>{};
    }
  }

  // Each try that fails reads the slots for the next: cheaper than queueing
  // while more slots are free than waiters (the only case that tries again).
  static constexpr int max_free_tries = 6;

  // Slots that must be free (the first is the one we take), and a bound on
  // the queue: every waiter was created before `queue_before` (1: none).
  struct free_try {
    std::vector<int> keep_free;
    revision queue_before = 1;
  };

  txn_request free_txn(const free_try& f, lease_id lease, std::size_t& fencing_ops) const {
    const auto& l = layout_;
    const int i = f.keep_free.front();
    const std::string key = slot_key(l.office, i);
    txn_request t;
    compare no_newcomer = compare::create_revision(l.queue()) < f.queue_before;
    no_newcomer.range_end = prefix_end(l.queue());
    t.compares.push_back(std::move(no_newcomer));
    for (int j : f.keep_free)
      t.compares.push_back(compare::create_revision(slot_key(l.office, j)) == 0);
    const std::string marker = slot_marker(l.markers(), i);
    // With a lock delay, a slot whose held marker is left was lost uncleanly:
    // not taken here (the line sits out its delay).
    if (gate_.enabled()) t.compares.push_back(compare::create_revision(marker) == 0);
    t.success.emplace_back(put_request{key, slot_value_ ? slot_value_(i) : value_, lease});
    t.success.emplace_back(put_request{marker, lease_hex(l.lease), 0});
    fencing_ops = add_acquire_ops(t, fencing_, {key, fencing_counter_key(l.prefix, key)});
    auto waiting = range_request::prefix(l.queue());
    waiting.count_only = true;
    t.failure.emplace_back(std::move(waiting));
    auto slots = range_request::prefix(l.slots());
    slots.keys_only = true;
    t.failure.emplace_back(std::move(slots));
    if (gate_.enabled()) {
      auto markers = range_request::prefix(l.markers());
      markers.keys_only = true;
      t.failure.emplace_back(std::move(markers));
    }
    return t;
  }

  // From a failed try's reads: the next try, if more slots are free than waiters.
  bool next_free_try(const txn_response& r, lease_id lease, int tries, free_try& f) const {
    const auto& l = layout_;
    const auto *queue = range_at(r, 0), *held = range_at(r, 1);
    if (!queue || !held) return false;
    std::vector<bool> taken(static_cast<std::size_t>(l.max), false);
    for (const auto& kv : held->kvs)
      if (auto j = l.slot_of(kv.key)) taken[static_cast<std::size_t>(*j)] = true;
    if (const auto* markers = range_at(r, 2)) {  // read with a lock delay: skip unclean losses
      sema_state marked;
      marked.markers = markers->kvs;
      for (const auto& m : marked.free_slots(l))
        if (m.stale) taken[static_cast<std::size_t>(m.slot)] = true;
    }
    std::vector<int> free;
    for (int j = 0; j < l.max; ++j)
      if (!taken[static_cast<std::size_t>(j)]) free.push_back(j);
    const auto waiters = static_cast<std::size_t>(std::max<std::int64_t>(queue->count, 0));
    if (free.size() <= waiters) return false;
    // FIFO and at most N hold whichever slot newcomer_slot names: the try
    // compares that no waiter came after this read and that the highest
    // `waiters` free slots are still free, so once we took ours at least as
    // many slots stay free as there are waiters (fewer if some claimed since):
    // we delay nobody in line. Slot keys are created only if absent.
    const std::size_t kept = free.size() - waiters;  // free[kept..] stay free
    const auto spread = static_cast<std::uint64_t>(pick(lease, tries, l.max));
    f.keep_free = {free[newcomer_slot(free, waiters, hint_, spread)]};
    f.keep_free.insert(f.keep_free.end(), free.begin() + static_cast<std::ptrdiff_t>(kept),
                       free.end());
    f.queue_before = r.header_revision + 1;
    return true;
  }

  // A slot index below `n` from our lease and the try: newcomers seldom pick alike.
  static int pick(lease_id lease, int tries, int n) {
    std::uint64_t x = static_cast<std::uint64_t>(lease) +
                      0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(tries + 1);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<int>((x ^ (x >> 31)) % static_cast<std::uint64_t>(std::max(n, 1)));
  }

  // Reads our place and the slots at one revision, retrying transient failures.
  result<sema_state> read(const stop_union& stop, deadline give_up) {
    txn_request t;
    add_place_reads(t.success, layout_, queue_rev_);
    backoff_type retry = backoff_;
    for (;;) {
      if (stop.stop_requested()) return error{errc::cancelled, "stopped"};
      ++reads_;
      auto r = transport().txn(t, io_.call_deadline(give_up));
      if (r) return parse_place(*r, 0, layout_);
      if (r.error().code == errc::lease_not_found) return io_.lost_error();
      if (!retryable(r.error().code)) return std::move(r).error();
      if (!io_.pause(retry, stop.token(), give_up))
        return error{stop.stop_requested() ? errc::cancelled : errc::timed_out, r.error().message};
    }
  }

  // The claim txn: our queue key is still ours and slot `i` is free → create
  // slot `i` with our lease, put its held marker (no lease: it outlives an
  // unclean loss) and delete our queue key. On a lost race it answers with a
  // fresh read of our place instead. `unread`: the slot's release was seen on
  // the watch, not read; with a lock delay the claim then also compares that
  // its held marker is gone (a clean release), else the read tells the delay.
  result<std::optional<sema_state>> claim(int i, deadline give_up, bool unread = false) {
    const auto& l = layout_;
    const std::string key = slot_key(l.office, i);
    txn_request t;
    t.compares.push_back(compare::create_revision(queue_key_) == queue_rev_);
    t.compares.push_back(compare::create_revision(key) == 0);
    if (unread && gate_.enabled())
      t.compares.push_back(compare::create_revision(slot_marker(l.markers(), i)) == 0);
    t.success.emplace_back(
        put_request{key, slot_value_ ? slot_value_(i) : value_, session_.lease()});
    t.success.emplace_back(delete_request{queue_key_, {}, false});
    t.success.emplace_back(put_request{slot_marker(l.markers(), i), lease_hex(l.lease), 0});
    const std::size_t fencing_ops =
        add_acquire_ops(t, fencing_, {key, fencing_counter_key(l.prefix, key)});
    add_place_reads(t.failure, l, queue_rev_);
    auto r = transport().txn(t, io_.call_deadline(give_up));
    if (!r) {
      doubtful_slot_ = key;  // it may have committed: a later read (or withdraw) settles it
      return std::move(r).error();
    }
    doubtful_slot_.clear();
    if (!r->succeeded) {
      auto s = parse_place(*r, 0, l);
      if (!s) return std::move(s).error();
      return std::optional<sema_state>{std::move(*s)};
    }
    auto token = read_token(fencing_, *r, fencing_ops, r->header_revision);
    hold(i, key, r->header_revision, token ? *token : 0, r->header_revision);
    if (!token) return std::move(token).error();
    return std::optional<sema_state>{};
  }

  // `seen_at`: a revision at which the slot key was ours (0: unknown).
  void hold(int i, std::string key, revision create_revision, std::int64_t token,
            revision seen_at) {
    slot_ = i;
    hint_ = i;
    slot_key_ = std::move(key);
    slot_rev_ = create_revision;
    token_ = token;
    session_.guard_key(slot_key_, slot_rev_, seen_at);
  }

  Session& session_;
  waiting<Session> io_;
  backoff_type backoff_;  // the prototype: each operation paces its retries with a copy
  sema_layout layout_;
  std::string value_;
  std::string queue_key_;
  revision queue_rev_ = 0;
  bool queue_guarded_ = false;
  std::string slot_key_;
  int slot_ = 0;
  revision slot_rev_ = 0;
  std::int64_t token_ = 0;
  std::function<std::string(int)> slot_value_;
  std::string doubtful_slot_;         // a slot our last claim may have taken unseen
  gate_type gate_{};                  // the lock delay of this acquire
  std::optional<stream_type> spent_;  // a cancelled watch, destroyed off the handoff's path
  int hint_ = -1;        // the slot enter_free tries: the one we last held (-1: none yet)
  bool unread_ = false;  // the next claim's slot was freed on the watch, its marker unread
  [[no_unique_address]] fencing_type fencing_{};
  std::atomic<std::uint64_t> reads_{0}, watches_{0}, watch_events_{0};
};

}  // namespace conch::detail
