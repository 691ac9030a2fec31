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
// How waiting works, with no herd (the ranking is detail/ranking.hpp): an
// acquire first tries to take a free slot in one txn, when that delays nobody
// in line (nobody waits, or more slots are free than waiters and the txn
// keeps one free for each); otherwise it enqueues in one txn that also reads
// the waiter just ahead of it and the slots. The head of the queue takes the lowest free slot in one txn that
// also deletes its queue key and compares that the queue key is still ours;
// with every slot held, the head watches the slots, and every other waiter
// watches only the waiter just ahead of it. Each watch is created from "now"
// and acknowledged before the waiter relies on it (so etcd serves it at once,
// not after its 100 ms resync), then re-read only if something was written
// since the waiter's last read. A release thus wakes the head (one event),
// which claims the released slot without a re-read; its claim deletes its
// queue key and wakes the next (one event): O(1) watch events per release
// whatever the queue length, and each read is O(N) whatever the queue length.
//
// Lock delay: the claim of slot i also puts its held marker `held/.../<i>`
// (logic/lock_delay.hpp) and release deletes it with the slot key, in the
// same txns. A holder lost uncleanly leaves its marker; with
// `acquire_options::lock_delay`, the head claims that slot only that long
// after it first saw the stale marker, and takes a cleanly freed slot first.
//
// A semaphore object is used from one thread; only `acquire_options::stop`
// and the session's loss interrupt it from elsewhere.
#pragma once

#include "conch/detail/semaphore_line.hpp"
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
    /// After an unclean loss of a slot (its holder's lease expired or was
    /// revoked, its key deleted by hand), claim it only this long after we
    /// first saw it, so the lost holder's work is gone first; a cleanly
    /// released slot is taken before one in its delay (logic/lock_delay.hpp).
    /// 0: at once. A clean release hands over at once whatever this says.
    std::chrono::milliseconds lock_delay{0};
  };

  /// `prefix` is the namespace ("conch/"), `name` the semaphore, `max` its
  /// number of slots. A name or size that cannot be a key (an empty name,
  /// max outside 1..1,000,000) fails acquire with errc::invalid_argument.
  basic_semaphore(session_type& s, std::string_view prefix, std::string_view name, int max)
      : session_(s), line_(s, {std::string(prefix), std::string(name), max, {}, 0}) {
    static_assert(check_transport_policy<transport_type>());
    auto office = detail::semaphore_office(prefix, name, max);
    if (office)
      line_.layout_.office = std::move(*office);
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
    if (!queue_key().empty())
      return error{errc::failed_precondition, "semaphore " + office() + " is already " +
                                                  (holding() ? "held" : "being waited for") +
                                                  " by this object"};
    if (session_.lost()) return line_.io_.lost_error();
    const lease_id lease = session_.lease();
    if (lease == 0)
      return error{errc::failed_precondition,
                   "acquiring semaphore " + office() + " needs a started session"};
    std::string key = detail::queue_key(office(), lease);
    if (!session_.claim(key))
      return error{errc::failed_precondition,
                   "another semaphore on this session already waits for or holds " + office() +
                       " (key " + key + ")"};
    line_.backoff_ = o.backoff.value_or(session_.backoff());
    line_.layout_.lease = lease;
    line_.queue_key_ = std::move(key);
    line_.value_ = std::move(value);
    line_.slot_value_ = std::move(o.slot_value);
    line_.gate_ = typename detail::semaphore_line<session_type>::gate_type{o.lock_delay};

    detail::stop_union stop{o.stop, session_.lost_token()};
    const deadline give_up = detail::give_up_at(o.timeout);
    auto seen = line_.enqueue(lease, stop, give_up);
    if (!seen) {
      if (holding())
        line_.withdraw();  // taken on entry, but without a token: given back
      else
        line_.forget();
      return interrupted(std::move(seen).error(), o);
    }
    if (holding()) return {};  // a free slot and nobody waiting: taken on entry
    auto held = line_.wait(std::move(*seen), o.nonblock, stop, give_up);
    if (!held) {
      line_.withdraw();
      return interrupted(std::move(held).error(), o);
    }
    return {};
  }

  /// Gives our slot back (a fenced delete: compare the token, with the slot's
  /// held marker), so the next waiter holds at once, with no lock delay: call
  /// it once the work done while holding has stopped. Or leaves the queue if
  /// we were waiting. Nothing to do when neither.
  result<void> release() { return line_.release(); }

  bool holding() const noexcept { return line_.holding(); }
  /// Our slot index (0-based), meaningful while holding.
  int slot() const noexcept { return line_.slot_; }
  /// Our fencing token, per the fencing policy (by default our slot key's
  /// create_revision); 0 when not holding.
  std::int64_t token() const noexcept { return line_.token_; }
  /// What our writes compare to stay fenced (see guarded_txn), while holding.
  fence held() const { return {slot_key(), line_.slot_rev_, token()}; }
  /// Our slot key (empty when not holding) and queue key (empty when neither).
  const std::string& slot_key() const noexcept { return line_.slot_key_; }
  const std::string& queue_key() const noexcept { return line_.queue_key_; }
  const std::string& name() const noexcept { return line_.layout_.name; }
  int max() const noexcept { return line_.layout_.max; }
  /// `<prefix>sema/<name>/max=<N>/`: every key of this semaphore lives under it
  /// (empty if the name or size cannot be a key).
  const std::string& office() const noexcept { return line_.layout_.office; }
  semaphore_stats stats() const noexcept {
    return {line_.reads_.load(), line_.watches_.load(), line_.watch_events_.load()};
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
  error interrupted(error e, const acquire_options& o) const {
    return line_.io_.interrupted(std::move(e), o.stop, o.timeout,
                                 "waiting for semaphore " + office(), "semaphore " + office());
  }

  session_type& session_;
  detail::semaphore_line<session_type> line_;
  std::optional<error> bad_office_;
};

}  // namespace conch
