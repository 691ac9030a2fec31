// conch/detail/semaphore_line.hpp — the line of waiters behind a semaphore.
//
// The protocol of basic_semaphore (semaphore.hpp tells how waiting works and
// logic/ranking.hpp who does what): enqueue, read our place, claim a free
// slot, watch what will change our place, and leave. The recipe validates
// and names errors; this holds the keys and talks to etcd.
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

/// One waiter's (or holder's) keys of one semaphore, and the protocol that
/// moves it from the queue to a slot. Used from one thread; its fields are
/// read by basic_semaphore.
template <class Session>
class semaphore_line {
 public:
  using policies = typename Session::policies;
  using backoff_type = typename policies::backoff;
  using fencing_type = typename policies::fencing;
  using gate_type = handover_gate<typename policies::clock::time_point>;

  semaphore_line(Session& s, sema_layout layout)
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
  // that fails reads the queue and the slots and names a free one next.
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
    // The waiters' heads claim the lowest free slots: we keep the highest
    // free for them (a claim in progress then fails no compare of ours), and
    // take one of those between, if any, else one below the kept ones.
    const std::size_t kept = free.size() - waiters;  // free[kept..] stay free
    const std::size_t low = std::min(waiters, kept - 1);
    const auto mine =
        low + static_cast<std::size_t>(pick(lease, tries, static_cast<int>(kept - low)));
    f.keep_free = {free[mine]};
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

  // `seen_at`: a revision at which our queue key was there (0: unknown).
  void guard_queue(bool on, revision seen_at = 0) {
    if (on == queue_guarded_) return;
    if (on)
      session_.guard_key(queue_key_, queue_rev_, seen_at);
    else
      session_.unguard_key(queue_key_);
    queue_guarded_ = on;
  }

  // Waits in line until we hold a slot.
  result<void> wait(sema_state seen, bool nonblock, const stop_union& stop, deadline give_up) {
    backoff_type retry = backoff_;
    for (;;) {
      if (stop.stop_requested()) return error{errc::cancelled, "stopped"};
      const auto& next = seen.next;
      if (next.what == rank_step::hold) return settle(seen);
      if (next.what == rank_step::gone || seen.own->create_revision != queue_rev_)
        return error{errc::lost, "our queue key " + queue_key_ +
                                     " was deleted while waiting for semaphore " + layout_.office +
                                     " (lease revoked or key removed)"};
      if (next.what == rank_step::claim) {
        const bool unread = std::exchange(unread_, false);
        auto now = sit_out_slot_delay(*this, seen, nonblock, stop, give_up);
        if (!now) return std::move(now).error();
        if (!*now) continue;  // `seen` is a fresh read after the delay
        if (auto done = take(seen, retry, stop, give_up, unread)) return std::move(*done);
        continue;
      }
      if (nonblock)
        return error{errc::busy, "semaphore " + layout_.office + " has no free slot for us" +
                                     seen.holders_text(layout_)};
      // From here on we wait: losing our queue key must end the wait at once.
      guard_queue(true, seen.at);
      if (auto w = watch_place(seen, retry, stop, give_up); !w) return w;
    }
  }

  // A claim of ours went through unseen (its answer was lost): the slot is ours.
  result<void> settle(const sema_state& seen) {
    const auto& next = seen.next;
    guard_queue(false);
    doubtful_slot_.clear();
    const key_value* mine = seen.slot_kv(layout_, next.slot);
    if (!mine) return error{errc::internal, "ranking named a slot that was not read"};
    // Only a policy that needs no answer (the token is the revision) can
    // name the token now; otherwise give the slot back rather than guess.
    auto token = fencing_.token({}, mine->create_revision);
    hold(next.slot, mine->key, mine->create_revision, token ? *token : 0, seen.at);
    if (seen.own)  // put after a first try whose answer was lost: we hold, so we leave the line
      (void)fenced_delete(queue_key_, seen.own->create_revision, transport().default_deadline());
    if (!token)
      return error{errc::unavailable,
                   "the answer to our claim of " + slot_key_ + " was lost, and with it the token"};
    return {};
  }

  // At the head with a free slot: claims it. A result ends the wait; nullopt
  // means `seen` holds a fresh read to act on.
  std::optional<result<void>> take(sema_state& seen, backoff_type& retry, const stop_union& stop,
                                   deadline give_up, bool unread = false) {
    guard_queue(false);  // the claim deletes our queue key: not a loss
    auto c = claim(seen.next.slot, give_up, unread);
    if (c && !*c) {
      if (spent_) spent_->cancel();  // held: the slots' watch must not go on hearing releases
      return result<void>{};
    }
    if (!c && holding())
      return result<void>{std::move(c).error()};  // held, but without a token: given back
    if (c) {
      seen = std::move(**c);
      return std::nullopt;
    }
    if (c.error().code == errc::lease_not_found) return result<void>{io_.lost_error()};
    if (!retryable(c.error().code)) return result<void>{std::move(c).error()};
    if (!io_.pause(retry, stop.token(), give_up))
      return result<void>{error{errc::timed_out, c.error().message}};
    auto again = read(stop, give_up);  // the claim may have committed: the read tells
    if (!again) return result<void>{std::move(again).error()};
    seen = std::move(*again);
    return std::nullopt;
  }

  // Watches what will change our place and leaves in `seen` what to do next:
  // a claim of the slot whose release the watch reported, or a fresh read.
  result<void> watch_place(sema_state& seen, backoff_type& retry, const stop_union& stop,
                           deadline give_up) {
    spent_.reset();
    const bool slots = seen.next.what == rank_step::watch_slots;
    watch_request w = slots ? watch_request::prefix(layout_.slots()) : watch_request{};
    if (!slots) w.key = seen.next.predecessor;
    w.no_put = true;
    auto stream = open_watch(w, seen, retry, stop, give_up);
    if (!stream) return std::move(stream).error();
    if (!stream->second) return {};  // `seen` changed before the watch was up: act on it
    const revision floor = *stream->second;
    std::optional<int> freed;
    bool told = false;
    auto changed = io_.watch_until(stream->first, stop, give_up, retry, [&](const watch_batch& b) {
      watch_events_ += b.events.size();
      for (const auto& e : b.events) {
        if (e.kv.mod_revision <= floor) continue;  // the read already showed it
        told = true;
        if (!slots || e.type != watch_event::kind::del) continue;
        if (auto i = layout_.slot_of(e.kv.key); i && (!freed || *i < *freed)) freed = i;
      }
      return told;
    });
    if (!changed) return changed;
    if (told && freed) {  // a released slot, and we are the head: claim it, no re-read
      spent_.emplace(std::move(stream->first));  // cancelled once claimed, not while we claim
      seen.next = rank_decision{rank_step::claim, 0, *freed, {}};
      unread_ = true;  // its marker is unread: the claim compares it (lock delay)
      return {};
    }
    stream->first.cancel();
    spent_.emplace(std::move(stream->first));
    auto after = read(stop, give_up);  // a waiter ahead left, or a gap that may hide a change
    if (!after) return std::move(after).error();
    seen = std::move(*after);
    return {};
  }

  // Opens the watch for `seen`'s wait so that it exists on the server before
  // we rely on it: created from "now" (etcd serves it from its synced set at
  // once) and acknowledged, then re-read only if anything was written since
  // `seen`. Answers the stream and the revision the wait has seen up to, or
  // no revision when the re-read changed the wait (then `seen` holds it).
  using stream_type = decltype(std::declval<typename policies::transport&>().watch(
      std::declval<const watch_request&>()));
  result<std::pair<stream_type, std::optional<revision>>> open_watch(watch_request w,
                                                                     sema_state& seen,
                                                                     backoff_type& retry,
                                                                     const stop_union& stop,
                                                                     deadline give_up) {
    w.start_revision = startable_watch<stream_type> ? 0 : seen.at + 1;
    auto stream = transport().watch(w);
    ++watches_;
    revision up_to = 0;
    if constexpr (startable_watch<stream_type>) {
      auto created = stream.start(io_.call_deadline(give_up));
      if (!created) {
        if (created.error().code == errc::lease_not_found) return io_.lost_error();
        if (!retryable(created.error().code)) return std::move(created).error();
        if (!io_.pause(retry, stop.token(), give_up))
          return error{errc::timed_out, created.error().message};
        return std::pair{std::move(stream), std::optional<revision>{}};  // try again
      }
      up_to = *created;
    }
    if (up_to != 0 && up_to <= seen.at) return std::pair{std::move(stream), std::optional{seen.at}};
    auto fresh = read(stop, give_up);  // a change that raced the watch's creation
    if (!fresh) return std::move(fresh).error();
    const bool same = fresh->same_wait(seen);
    seen = std::move(*fresh);
    if (!same) return std::pair{std::move(stream), std::optional<revision>{}};
    return std::pair{std::move(stream), std::optional{seen.at}};
  }

  // `marker`: a held marker to delete with `key` (a slot's, on a clean exit).
  result<void> fenced_delete(const std::string& key, revision created, deadline d,
                             const std::string& marker = {}) {
    txn_request t = fenced_release({key, created, 0});
    if (!marker.empty()) t.success.emplace_back(delete_request{marker, {}, false});
    auto r = io_.retried_txn(t, d, backoff_);
    if (!r) return std::move(r).error();
    return {};
  }
  std::string own_marker() const { return slot_marker(layout_.markers(), slot_); }

  // Gives our slot back, or leaves the queue (see basic_semaphore::release).
  result<void> release() {
    if (queue_key_.empty()) return {};
    if (!holding()) {
      withdraw();
      return {};
    }
    session_.unguard_key(slot_key_);
    auto r = session_.lost() ? result<void>{}
                             : fenced_delete(slot_key_, slot_rev_, transport().default_deadline(),
                                             own_marker());
    if (!r && r.error().code != errc::lease_not_found) {
      session_.guard_key(slot_key_, slot_rev_);  // still ours: the caller may retry
      return r;
    }
    forget();
    return {};
  }

  // Stops waiting: unguard, fenced delete of our queue key (best effort), forget.
  void withdraw() {
    if (queue_key_.empty()) return;
    guard_queue(false);
    if (holding()) {
      session_.unguard_key(slot_key_);
      if (!session_.lost())
        (void)fenced_delete(slot_key_, slot_rev_, transport().default_deadline(), own_marker());
    }
    if (!session_.lost() && queue_rev_ != 0)
      (void)fenced_delete(queue_key_, queue_rev_, transport().default_deadline());
    if (!session_.lost() &&
        !doubtful_slot_.empty()) {  // a claim whose answer we never saw: undo it if it won
      txn_request t;
      t.compares.push_back(compare::lease(doubtful_slot_) == layout_.lease);
      t.success.emplace_back(delete_request{doubtful_slot_, {}, false});
      if (auto i = layout_.slot_of(doubtful_slot_))
        t.success.emplace_back(delete_request{slot_marker(layout_.markers(), *i), {}, false});
      (void)transport().txn(t, transport().default_deadline());
    }
    forget();
  }
  void forget() {
    spent_.reset();
    session_.unclaim(queue_key_);
    queue_key_.clear();
    queue_rev_ = 0;
    queue_guarded_ = false;
    slot_key_.clear();
    slot_ = 0;
    slot_rev_ = 0;
    token_ = 0;
    slot_value_ = nullptr;
    doubtful_slot_.clear();
    unread_ = false;
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
