// conch/detail/semaphore_line.hpp — the line of waiters behind a semaphore.
//
// The protocol of basic_semaphore (semaphore.hpp tells how waiting works and
// logic/ranking.hpp who does what): enqueue, read our place, claim a free
// slot, watch what will change our place, and leave. The recipe validates
// and names errors; this holds the keys and talks to etcd. Entering the
// line and the keys are semaphore_entry's (semaphore_entry.hpp).
#pragma once

#include "conch/detail/lock_delay.hpp"
#include "conch/detail/semaphore_entry.hpp"
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

/// semaphore_entry, and the protocol that moves it from the queue to a slot
/// and out again. Used from one thread.
template <class Session>
class semaphore_line : public semaphore_entry<Session> {
  using base = semaphore_entry<Session>;

 public:
  using base::backoff_;
  using base::claim;
  using base::doubtful_slot_;
  using base::fencing_;
  using base::gate_;
  using base::hold;
  using base::holding;
  using base::io_;
  using base::layout_;
  using base::queue_guarded_;
  using base::queue_key_;
  using base::queue_rev_;
  using base::read;
  using base::session_;
  using base::slot_;
  using base::slot_key_;
  using base::slot_rev_;
  using base::slot_value_;
  using base::spent_;
  using base::token_;
  using base::transport;
  using base::unread_;
  using base::value_;
  using base::watch_events_;
  using base::watches_;
  using typename base::backoff_type;
  using typename base::gate_type;
  using typename base::policies;
  using typename base::stream_type;

  semaphore_line(Session& s, sema_layout layout) : base(s, std::move(layout)) {}

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
};

}  // namespace conch::detail
