// conch/detail/waiting.hpp — how a recipe waits on etcd: once, for every recipe.
//
// Election and semaphore wait the same way: create a key in a txn whose
// outcome may stay in doubt, re-read after a break, watch one thing from
// right after the revision it was read at, pause one backoff step on the
// clock policy between attempts, and name why a wait ended early. The
// observer and the session pause the same way too.
//
//   detail::waiting<session_type> io{session};
//   auto made = io.create(txn, key, value, lease, stop, give_up, retry);
//   ... io.watch_until(stream, stop, give_up, retry, [](const watch_batch& b) { ... });
#pragma once

#include "conch/logic/stop_union.hpp"
#include "conch/logic/txn_read.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <concepts>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

namespace conch::detail {

/// Failures worth another try: the cluster may come back, the history we
/// wanted can be re-read. Anything else (auth, a bad request) stays.
inline bool retryable(errc e) {
  return e == errc::unavailable || e == errc::timed_out || e == errc::internal ||
         e == errc::compacted;
}

/// What a recipe's wait can be told (basic_election::campaign_options).
template <class Backoff>
struct wait_options {
  bool nonblock = false;                               ///< errc::busy at once if we must wait
  std::optional<std::chrono::milliseconds> timeout{};  ///< errc::timed_out, our key removed
  std::stop_token stop{};                              ///< errc::cancelled, our key removed
  /// Paces the retries of this wait and of what follows it (proclaim,
  /// resign, release), copied fresh for each; empty: the session's.
  std::optional<Backoff> backoff{};
  /// After an unclean loss of the office (its holder's lease expired or was
  /// revoked, its key deleted by hand), return only this long after we first
  /// saw it, so the lost holder's work is gone first (logic/lock_delay.hpp).
  /// 0: at once. A clean resign hands over at once whatever this says.
  std::chrono::milliseconds lock_delay{0};
};

/// When a wait with `timeout` gives up (never, without one).
inline deadline give_up_at(std::optional<std::chrono::milliseconds> timeout) {
  return timeout ? std::chrono::steady_clock::now() + *timeout : deadline::max();
}

/// The deadline of one call: never past the transport's default, never much
/// past the caller's patience, but always a moment (500 ms): cutting a create
/// or a claim short would only leave its outcome in doubt.
inline deadline call_deadline(deadline transport_default, deadline give_up) {
  const deadline floor = std::chrono::steady_clock::now() + std::chrono::milliseconds{500};
  return std::min(transport_default, std::max(give_up, floor));
}

/// The real-time deadline for a call that must return by `local` on `clock`.
template <class Clock>
deadline real_deadline(const Clock& clock, typename Clock::time_point local) {
  auto left = local - clock.now();
  if (left < decltype(left)::zero()) left = decltype(left)::zero();
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
}

/// Sleeps one backoff step on `clock`; false when `stop` is requested or
/// `give_up` (real time) has passed.
template <class Clock, class Backoff>
bool pause(const Clock& clock, Backoff& retry, std::stop_token stop, deadline give_up) {
  using steady = std::chrono::steady_clock;
  const auto left = give_up - steady::now();
  if (left <= left.zero()) return false;
  const auto step = std::min(std::chrono::duration_cast<steady::duration>(retry.next()), left);
  const auto wake = clock.now() + std::chrono::duration_cast<typename Clock::duration>(step);
  return conch::sleep_until(clock, wake, std::move(stop)) && steady::now() < give_up;
}

/// Whether a transport's watch stream can be opened ahead of its first
/// next() (`start(deadline)` -> the revision it covers up to), as etcd's can.
template <class Stream>
concept startable_watch = requires(Stream& s, deadline d) {
  { s.start(d) } -> std::same_as<result<revision>>;
};

/// What a create-if-absent txn found. `response.succeeded`: we created the
/// key now. Otherwise `own` is the key as it stands, and `ours` says whether
/// it is our own earlier attempt (one whose answer was lost) rather than a
/// key someone else put under our lease.
struct created {
  txn_response response;
  bool ours = true;
  std::optional<key_value> own;
};

/// A recipe's waiting, bound to its session (for the transport, the clock,
/// the loss and its reason).
template <class Session>
class waiting {
 public:
  using backoff_type = typename Session::policies::backoff;

  explicit waiting(Session& s) : session_(s) {}

  auto& transport() const { return session_.transport(); }
  deadline call_deadline(deadline give_up) const {
    return detail::call_deadline(transport().default_deadline(), give_up);
  }
  bool pause(backoff_type& retry, std::stop_token stop, deadline give_up) const {
    return detail::pause(session_.clock(), retry, std::move(stop), give_up);
  }

  error lost_error() const { return error{errc::lost, "session lost: " + session_.lost_reason()}; }

  /// Names why a wait ended early: the session, the owner (`own`: "<what>
  /// cancelled"), or the clock ("gave up waiting for <waited_for> after Nms").
  error interrupted(error e, const std::stop_token& own,
                    std::optional<std::chrono::milliseconds> timeout, std::string_view what,
                    std::string_view waited_for) const {
    if (session_.lost()) return lost_error();
    if (e.code == errc::cancelled || own.stop_requested())
      return error{errc::cancelled, std::string(what) + " cancelled"};
    if (e.code == errc::timed_out && timeout)
      return error{errc::timed_out, "gave up waiting for " + std::string(waited_for) + " after " +
                                        std::to_string(timeout->count()) + "ms"};
    return e;
  }

  /// A txn that is safe to repeat (fenced: a second run fails its compare),
  /// retried until `d` while etcd is briefly unavailable (just restarted, a
  /// leader change, a channel still reconnecting).
  result<txn_response> retried_txn(const txn_request& t, deadline d, backoff_type retry) const {
    for (;;) {
      auto r = transport().txn(t, d);
      if (r || !retryable(r.error().code) || r.error().code == errc::compacted) return r;
      if (!pause(retry, session_.lost_token(), d)) return r;
    }
  }

  /// Gives up on a create whose outcome we never saw: removes `key` only if
  /// it carries exactly what we tried to write.
  void remove_in_doubt(const std::string& key, const std::string& value, lease_id lease,
                       const backoff_type& retry) const {
    if (session_.lost()) return;
    txn_request t;
    t.compares.push_back(compare::value(key) == value);
    t.compares.push_back(compare::lease(key) == lease);
    t.success.emplace_back(delete_request{key, {}, false});
    (void)retried_txn(t, transport().default_deadline(), retry);
  }

  /// Runs `t`, a create-if-absent of `key` (its first failure op reads
  /// `key`), until it answers. After a failure whose outcome we never saw,
  /// finding the key with our `value` and `lease` means our own attempt
  /// committed. Giving up (stop, `give_up`) removes what may have committed.
  result<created> create(const txn_request& t, const std::string& key, const std::string& value,
                         lease_id lease, const stop_union& stop, deadline give_up,
                         backoff_type retry) const {
    const backoff_type prototype = retry;
    bool in_doubt = false;  // an earlier attempt may have committed unseen
    for (;;) {
      auto r = transport().txn(t, call_deadline(give_up));
      if (r && r->succeeded) return created{std::move(*r), true, std::nullopt};
      if (r) {
        auto own = front(range_at(*r, 0));
        const bool ours = own && in_doubt && own->value == value && own->lease == lease;
        return created{std::move(*r), ours, std::move(own)};
      }
      if (r.error().code == errc::lease_not_found) return lost_error();
      if (!retryable(r.error().code)) return std::move(r).error();
      in_doubt = true;
      if (!pause(retry, stop.token(), give_up)) {
        remove_in_doubt(key, value, lease, prototype);
        return error{stop.stop_requested() ? errc::cancelled : errc::timed_out, r.error().message};
      }
    }
  }

  /// Follows `stream` until `changed(batch)` says a batch matters (ok), or
  /// until the stream broke or the history it needed was compacted (ok after
  /// one backoff step: re-read, the gap may hide the change). errc::timed_out
  /// at `give_up`, errc::cancelled on `stop`, what cannot be retried as it is.
  template <class Stream, class Changed>
  result<void> watch_until(Stream& stream, const stop_union& stop, deadline give_up,
                           backoff_type& retry, Changed changed) const {
    using steady = std::chrono::steady_clock;
    std::stop_callback cancel{stop.token(), [&] { stream.cancel(); }};
    for (;;) {
      auto batch = stream.next(std::min(give_up, steady::now() + std::chrono::minutes{10}));
      if (batch) {
        retry.reset();
        if (changed(*batch)) return {};
        continue;
      }
      const errc why = batch.error().code;
      if (why == errc::timed_out && steady::now() < give_up) continue;
      if (why == errc::timed_out || stop.stop_requested()) return std::move(batch).error();
      if (why != errc::compacted && !retryable(why) && why != errc::cancelled)
        return std::move(batch).error();
      if (why != errc::compacted && !pause(retry, stop.token(), give_up))
        return error{errc::timed_out, batch.error().message};
      return {};
    }
  }

 private:
  Session& session_;
};

}  // namespace conch::detail
