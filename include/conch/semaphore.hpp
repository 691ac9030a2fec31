// conch/semaphore.hpp — at most N holders, served first come first served.
//
// Layout under `<prefix>sema/<name>/max=<N>/` (a different N is a different
// semaphore, so two conventions never share slots):
//   slot/<i>          i < N, created-if-absent with the holder's lease: at most
//                     N holders by construction; the value is the holder record
//   queue/<lease hex> one per waiter, with the waiter's lease, FIFO by
//                     create_revision
// The token of a holder comes from the fencing policy: by default its slot
// key's create_revision, strictly increasing per slot across successions
// (counter_fencing: a dense counter per slot, bumped in the claiming txn).
//
//   conch::session s{transport};
//   if (auto r = s.start(); !r) return fail(r.error());
//   conch::semaphore pool{s, "conch/", "encoders", 4};
//   if (auto r = pool.acquire(record_json); !r) return fail(r.error());
//   encode(pool.slot(), pool.token(), s.lost_token());  // stop when the session is lost
//   (void)pool.release();                               // fenced delete: the next waiter holds now
//
// How waiting works, with no herd (the ranking is detail/ranking.hpp): a
// waiter enqueues in one txn that also reads the waiter just ahead of it and
// the slots. The head of the queue takes the lowest free slot in one txn that
// also deletes its queue key and compares that the queue key is still ours;
// with every slot held, the head watches the slots, and every other waiter
// watches only the waiter just ahead of it. Each watch starts right after the
// revision its state was read at, so nothing is missed, and is followed by one
// re-read so a change that raced the watch's creation is acted on at once. A
// release thus wakes the head (one event), whose claim deletes its queue key
// and wakes the next (one event): O(1) watch events per release whatever the
// queue length, and each read is O(N) whatever the queue length.
//
// A semaphore object is used from one thread; only `acquire_options::stop`
// and the session's loss interrupt it from elsewhere.
#pragma once

#include "conch/detail/waiting.hpp"
#include "conch/fwd.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/semaphore_read.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/fencing.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"
#include "conch/session.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conch {

/// What a semaphore did on the wire: lets tests and benchmarks see the cost
/// of waiting (watch events per release) without instrumenting etcd.
struct semaphore_stats {
  std::uint64_t reads = 0;         ///< state reads (txns that only read)
  std::uint64_t watches = 0;       ///< watches opened while waiting
  std::uint64_t watch_events = 0;  ///< events delivered on those watches
};

template <class P>
class basic_semaphore {
  static_assert(check_policy_bundle<P>());

 public:
  using policies = P;
  using session_type = basic_session<P>;
  using transport_type = typename P::transport;
  using clock_type = typename P::clock;
  using fencing_type = typename P::fencing;
  using backoff_type = typename P::backoff;

  struct acquire_options {
    bool nonblock = false;  ///< errc::busy at once if no slot is ours now
    std::optional<std::chrono::milliseconds> timeout{};  ///< errc::timed_out, our queue key removed
    std::stop_token stop{};                              ///< errc::cancelled, our queue key removed
    /// The value of our slot key, made once we know which slot is ours (a
    /// holder record naming its slot); empty: the queue value.
    std::function<std::string(int slot)> slot_value{};
    /// Paces the retries of this acquire and of the release that follows,
    /// copied fresh for each; empty: the session's.
    std::optional<backoff_type> backoff{};
  };

  /// `prefix` is the namespace ("conch/"), `name` the semaphore, `max` its
  /// number of slots. A name or size that cannot be a key (an empty name,
  /// max outside 1..1,000,000) fails acquire with errc::invalid_argument.
  basic_semaphore(session_type& s, std::string_view prefix, std::string_view name, int max)
      : session_(s),
        io_(s),
        backoff_(s.backoff()),
        layout_{std::string(prefix), std::string(name), max, {}, 0} {
    static_assert(check_transport_policy<transport_type>());
    auto office = detail::semaphore_office(prefix, name, max);
    if (office)
      layout_.office = std::move(*office);
    else
      bad_office_ = std::move(office).error();
  }
  basic_semaphore(const basic_semaphore&) = delete;
  basic_semaphore& operator=(const basic_semaphore&) = delete;
  /// Leaves: a fenced delete of our slot or queue key, whichever we have.
  ~basic_semaphore() { (void)release(); }

  /// Waits in line with `value` (the holder record) and returns once we hold
  /// a slot. Errors: errc::busy (nonblock, no slot for us now),
  /// errc::timed_out, errc::cancelled (our queue key removed in all three),
  /// errc::lost (the session was lost, or our queue key vanished while
  /// waiting), errc::failed_precondition (already waiting or holding: this
  /// object, or another semaphore of this name and size on this session),
  /// errc::invalid_argument (a name or size that cannot be a key).
  result<void> acquire(std::string value, acquire_options o = {}) {
    if (bad_office_) return error{errc::invalid_argument, "semaphore: " + bad_office_->message};
    if (!queue_key_.empty())
      return error{errc::failed_precondition, "semaphore " + office() + " is already " +
                                                  (holding() ? "held" : "being waited for") +
                                                  " by this object"};
    if (session_.lost()) return io_.lost_error();
    const lease_id lease = session_.lease();
    if (lease == 0)
      return error{errc::failed_precondition,
                   "acquiring semaphore " + office() + " needs a started session"};
    backoff_ = o.backoff.value_or(session_.backoff());
    layout_.lease = lease;
    std::string key = detail::queue_key(office(), lease);
    if (!session_.claim(key))
      return error{errc::failed_precondition,
                   "another semaphore on this session already waits for or holds " + office() +
                       " (key " + key + ")"};
    queue_key_ = std::move(key);
    value_ = std::move(value);
    slot_value_ = std::move(o.slot_value);

    detail::stop_union stop{o.stop, session_.lost_token()};
    const deadline give_up =
        o.timeout ? std::chrono::steady_clock::now() + *o.timeout : deadline::max();
    auto seen = enqueue(lease, stop, give_up);
    if (!seen) {
      forget();
      return interrupted(std::move(seen).error(), o);
    }
    auto held = wait(std::move(*seen), o.nonblock, stop, give_up);
    if (!held) {
      withdraw();
      return interrupted(std::move(held).error(), o);
    }
    return {};
  }

  /// Gives our slot back (a fenced delete: compare the token), so the next
  /// waiter holds at once; or leaves the queue if we were waiting. Nothing to
  /// do when neither.
  result<void> release() {
    if (queue_key_.empty()) return {};
    if (!holding()) {
      withdraw();
      return {};
    }
    session_.unguard_key(slot_key_);
    auto r = session_.lost() ? result<void>{}
                             : fenced_delete(slot_key_, slot_rev_, transport().default_deadline());
    if (!r && r.error().code != errc::lease_not_found) {
      session_.guard_key(slot_key_, slot_rev_);  // still ours: the caller may retry
      return r;
    }
    forget();
    return {};
  }

  bool holding() const noexcept { return slot_rev_ != 0; }
  /// Our slot index (0-based), meaningful while holding.
  int slot() const noexcept { return slot_; }
  /// Our fencing token, per the fencing policy (by default our slot key's
  /// create_revision); 0 when not holding.
  std::int64_t token() const noexcept { return token_; }
  /// What our writes compare to stay fenced (see guarded_txn), while holding.
  fence held() const { return {slot_key_, slot_rev_, token_}; }
  /// Our slot key (empty when not holding) and queue key (empty when neither).
  const std::string& slot_key() const noexcept { return slot_key_; }
  const std::string& queue_key() const noexcept { return queue_key_; }
  const std::string& name() const noexcept { return layout_.name; }
  int max() const noexcept { return layout_.max; }
  /// `<prefix>sema/<name>/max=<N>/`: every key of this semaphore lives under it
  /// (empty if the name or size cannot be a key).
  const std::string& office() const noexcept { return layout_.office; }
  semaphore_stats stats() const noexcept {
    return {reads_.load(), watches_.load(), watch_events_.load()};
  }

  /// Holders and waiters of the semaphore `name` of size `max`, read at one revision.
  static result<semaphore_status> status(transport_type& t, std::string_view prefix,
                                         std::string_view name, int max,
                                         std::optional<deadline> d = {}) {
    auto office = detail::semaphore_office(prefix, name, max);
    if (!office) return error{errc::invalid_argument, "semaphore: " + office.error().message};
    const detail::sema_layout l{std::string(prefix), std::string(name), max, std::move(*office), 0};
    auto r = t.txn(detail::status_txn(l), d ? *d : t.default_deadline());
    if (!r) return std::move(r).error();
    return detail::parse_status(*r, l);
  }

 private:
  transport_type& transport() { return session_.transport(); }

  error interrupted(error e, const acquire_options& o) const {
    return io_.interrupted(std::move(e), o.stop, o.timeout, "waiting for semaphore " + office(),
                           "semaphore " + office());
  }

  // Puts our queue key (if absent) and reads our place and the slots, in one txn.
  result<detail::sema_state> enqueue(lease_id lease, const detail::stop_union& stop,
                                     deadline give_up) {
    const auto& l = layout_;
    txn_request t;
    t.compares.push_back(compare::create_revision(queue_key_) == 0);
    t.success.emplace_back(put_request{queue_key_, value_, lease});
    detail::add_entry_reads(t.success, l);
    range_request mine;
    mine.key = queue_key_;
    t.failure.emplace_back(mine);
    auto made = io_.create(t, queue_key_, value_, lease, stop, give_up, backoff_);
    if (!made) return std::move(made).error();
    if (made->response.succeeded) {
      auto s = detail::parse_entry(made->response, 1, l);
      if (!s) return std::move(s).error();
      queue_rev_ = s->own->create_revision;
      return s;
    }
    if (made->ours) {
      queue_rev_ = made->own->create_revision;  // our own earlier attempt did commit
      return read(stop, give_up);
    }
    return error{errc::failed_precondition,
                 "semaphore " + office() + " already has a waiter under this session's lease (" +
                     queue_key_ + ") that this object did not create"};
  }

  // Reads our place and the slots at one revision, retrying transient failures.
  result<detail::sema_state> read(const detail::stop_union& stop, deadline give_up) {
    txn_request t;
    detail::add_place_reads(t.success, layout_, queue_rev_);
    backoff_type retry = backoff_;
    for (;;) {
      if (stop.stop_requested()) return error{errc::cancelled, "stopped"};
      ++reads_;
      auto r = transport().txn(t, io_.call_deadline(give_up));
      if (r) return detail::parse_place(*r, 0, layout_);
      if (r.error().code == errc::lease_not_found) return io_.lost_error();
      if (!detail::retryable(r.error().code)) return std::move(r).error();
      if (!io_.pause(retry, stop.token(), give_up))
        return error{stop.stop_requested() ? errc::cancelled : errc::timed_out, r.error().message};
    }
  }

  // The claim txn: our queue key is still ours and slot `i` is free → create
  // slot `i` with our lease and delete our queue key. On a lost race it
  // answers with a fresh read of our place instead.
  result<std::optional<detail::sema_state>> claim(int i, deadline give_up) {
    const auto& l = layout_;
    const std::string key = detail::slot_key(l.office, i);
    txn_request t;
    t.compares.push_back(compare::create_revision(queue_key_) == queue_rev_);
    t.compares.push_back(compare::create_revision(key) == 0);
    t.success.emplace_back(
        put_request{key, slot_value_ ? slot_value_(i) : value_, session_.lease()});
    t.success.emplace_back(delete_request{queue_key_, {}, false});
    const std::size_t fencing_ops =
        add_acquire_ops(t, fencing_, {key, detail::fencing_counter_key(l.prefix, key)});
    detail::add_place_reads(t.failure, l, queue_rev_);
    auto r = transport().txn(t, io_.call_deadline(give_up));
    if (!r) {
      doubtful_slot_ = key;  // it may have committed: a later read (or withdraw) settles it
      return std::move(r).error();
    }
    doubtful_slot_.clear();
    if (!r->succeeded) {
      auto s = detail::parse_place(*r, 0, l);
      if (!s) return std::move(s).error();
      return std::optional<detail::sema_state>{std::move(*s)};
    }
    auto token = read_token(fencing_, *r, fencing_ops, r->header_revision);
    hold(i, key, r->header_revision, token ? *token : 0, r->header_revision);
    if (!token) return std::move(token).error();
    return std::optional<detail::sema_state>{};
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
  result<void> wait(detail::sema_state seen, bool nonblock, const detail::stop_union& stop,
                    deadline give_up) {
    backoff_type retry = backoff_;
    for (;;) {
      if (stop.stop_requested()) return error{errc::cancelled, "stopped"};
      const auto& next = seen.next;
      if (next.what == detail::rank_step::hold) return settle(seen);
      if (next.what == detail::rank_step::gone || seen.own->create_revision != queue_rev_)
        return error{errc::lost, "our queue key " + queue_key_ +
                                     " was deleted while waiting for semaphore " + office() +
                                     " (lease revoked or key removed)"};
      if (next.what == detail::rank_step::claim) {
        if (auto done = take(seen, retry, stop, give_up)) return std::move(*done);
        continue;
      }
      if (nonblock)
        return error{errc::busy, "semaphore " + office() + " has no free slot for us" +
                                     seen.holders_text(layout_)};
      // From here on we wait: losing our queue key must end the wait at once.
      guard_queue(true, seen.at);
      if (auto w = watch_place(seen, retry, stop, give_up); !w) return w;
    }
  }

  // A claim of ours went through unseen (its answer was lost): the slot is ours.
  result<void> settle(const detail::sema_state& seen) {
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
  std::optional<result<void>> take(detail::sema_state& seen, backoff_type& retry,
                                   const detail::stop_union& stop, deadline give_up) {
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
    if (!detail::retryable(c.error().code)) return result<void>{std::move(c).error()};
    if (!io_.pause(retry, stop.token(), give_up))
      return result<void>{error{errc::timed_out, c.error().message}};
    auto again = read(stop, give_up);  // the claim may have committed: the read tells
    if (!again) return result<void>{std::move(again).error()};
    seen = std::move(*again);
    return std::nullopt;
  }

  // Watches what will change our place, from right after the revision we read
  // it at, and leaves a fresh read of it in `seen`.
  result<void> watch_place(detail::sema_state& seen, backoff_type& retry,
                           const detail::stop_union& stop, deadline give_up) {
    watch_request w;
    if (seen.next.what == detail::rank_step::watch_slots)
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

  result<void> fenced_delete(const std::string& key, revision created, deadline d) {
    auto r = io_.retried_txn(fenced_release({key, created, 0}), d, backoff_);
    if (!r) return std::move(r).error();
    return {};
  }

  // Stops waiting: unguard, fenced delete of our queue key (best effort), forget.
  void withdraw() {
    if (queue_key_.empty()) return;
    guard_queue(false);
    if (holding()) {
      session_.unguard_key(slot_key_);
      if (!session_.lost())
        (void)fenced_delete(slot_key_, slot_rev_, transport().default_deadline());
    }
    if (!session_.lost() && queue_rev_ != 0)
      (void)fenced_delete(queue_key_, queue_rev_, transport().default_deadline());
    if (!session_.lost() &&
        !doubtful_slot_.empty()) {  // a claim whose answer we never saw: undo it if it won
      txn_request t;
      t.compares.push_back(compare::lease(doubtful_slot_) == layout_.lease);
      t.success.emplace_back(delete_request{doubtful_slot_, {}, false});
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

  session_type& session_;
  detail::waiting<session_type> io_;
  backoff_type backoff_;  // the prototype: each operation paces its retries with a copy
  detail::sema_layout layout_;
  std::optional<error> bad_office_;
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
  [[no_unique_address]] fencing_type fencing_{};
  std::atomic<std::uint64_t> reads_{0}, watches_{0}, watch_events_{0};
};

}  // namespace conch
