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

  // Puts our queue key (if absent) and reads our place and the slots, in one txn.
  result<sema_state> enqueue(lease_id lease, const stop_union& stop, deadline give_up) {
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
    if (made->ours) {
      queue_rev_ = made->own->create_revision;  // our own earlier attempt did commit
      return read(stop, give_up);
    }
    return error{errc::failed_precondition,
                 "semaphore " + layout_.office +
                     " already has a waiter under this session's lease (" + queue_key_ +
                     ") that this object did not create"};
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
  // fresh read of our place instead.
  result<std::optional<sema_state>> claim(int i, deadline give_up) {
    const auto& l = layout_;
    const std::string key = slot_key(l.office, i);
    txn_request t;
    t.compares.push_back(compare::create_revision(queue_key_) == queue_rev_);
    t.compares.push_back(compare::create_revision(key) == 0);
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
        auto now = sit_out_slot_delay(*this, seen, nonblock, stop, give_up);
        if (!now) return std::move(now).error();
        if (!*now) continue;  // `seen` is a fresh read after the delay
        if (auto done = take(seen, retry, stop, give_up)) return std::move(*done);
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
    if (!token)
      return error{errc::unavailable,
                   "the answer to our claim of " + slot_key_ + " was lost, and with it the token"};
    return {};
  }

  // At the head with a free slot: claims it. A result ends the wait; nullopt
  // means `seen` holds a fresh read to act on.
  std::optional<result<void>> take(sema_state& seen, backoff_type& retry, const stop_union& stop,
                                   deadline give_up) {
    guard_queue(false);  // the claim deletes our queue key: not a loss
    auto c = claim(seen.next.slot, give_up);
    if (c && !*c) return result<void>{};
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

  // Watches what will change our place, from right after the revision we read
  // it at, and leaves a fresh read of it in `seen`.
  result<void> watch_place(sema_state& seen, backoff_type& retry, const stop_union& stop,
                           deadline give_up) {
    watch_request w;
    if (seen.next.what == rank_step::watch_slots)
      w = watch_request::prefix(layout_.slots());
    else
      w.key = seen.next.predecessor;
    w.start_revision = seen.at + 1;
    w.no_put = true;
    auto stream = transport().watch(w);
    ++watches_;
    // One re-read, so a change that raced the watch's creation is acted on now.
    auto fresh = read(stop, give_up);
    if (!fresh) return std::move(fresh).error();
    const bool same = fresh->same_wait(seen);
    seen = std::move(*fresh);
    if (!same) return {};
    auto changed = io_.watch_until(stream, stop, give_up, retry, [&](const watch_batch& b) {
      watch_events_ += b.events.size();
      return !b.events.empty();
    });
    if (!changed) return changed;  // else re-read: the change (or a gap that may hide it)
    auto after = read(stop, give_up);
    if (!after) return std::move(after).error();
    seen = std::move(*after);
    return {};
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
  std::string doubtful_slot_;  // a slot our last claim may have taken unseen
  gate_type gate_{};           // the lock delay of this acquire
  [[no_unique_address]] fencing_type fencing_{};
  std::atomic<std::uint64_t> reads_{0}, watches_{0}, watch_events_{0};
};

}  // namespace conch::detail
