// conch/detail/cron_tick.hpp — a tick's writes, sent: claim and result
// (pruning, batched off the tick's path, is in cron_pruner.hpp).
// The txns themselves are in logic/cron_txn.hpp; this adds what talking to
// etcd needs (an answer that never came, a short outage), for any transport.
//
// Both go through the daemon's txn_batcher: claims and results of ticks in
// flight at once share one etcd write, each still answered as if sent alone.
//
// Outcomes are resolved, never guessed: a claim whose answer was lost is
// sent again until etcd says who holds the tick (the claim value — host,
// pid, lease, claim time — is ours alone, so a resend that finds it knows
// the first one landed); a result is retried until written or until its
// claim is proven gone.
#pragma once

#include "conch/detail/txn_batcher.hpp"
#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_txn.hpp"
#include "conch/logic/records.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <chrono>
#include <cstddef>
#include <stop_token>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace conch::detail {

/// Waits `d` of real time unless `stop` comes first (false then).
inline bool cron_pause(std::chrono::nanoseconds d, std::stop_token stop) {
  return conch::sleep_until(steady_clock_policy{},
                            std::chrono::steady_clock::now() +
                                std::chrono::duration_cast<std::chrono::steady_clock::duration>(d),
                            std::move(stop));
}

/// A pause paced by a copy of `retry`: false once `stop` comes.
template <class Backoff>
auto cron_pacing(Backoff retry, std::stop_token stop) {
  return [retry = std::move(retry), stop = std::move(stop)]() mutable {
    return cron_pause(retry.next(), stop);
  };
}

/// Who holds a job's running key, as a failed claim or hold read it.
struct running_holder {
  running_record record{};
  revision created = 0;  ///< the key's create revision: which run holds it
  revision seen_at = 0;  ///< the revision it was read at
};

/// What one claim txn's answer says: ours (at a revision), someone else's or
/// refused (`errc::busy`), the job's running key held (`errc::failed_precondition`,
/// with the holder in `held`: a claim that takes the key, see claim_txn), or
/// no answer (any other error). The failure branch reads the fire key first.
inline result<revision> read_claim_answer(const result<txn_response>& r, const std::string& value,
                                          running_holder* held = nullptr) {
  if (!r) return r.error();
  if (r->succeeded) return r->header_revision;
  auto read = [&](std::size_t i) -> const key_value* {
    const auto* seen =
        i < r->responses.size() ? std::get_if<range_response>(&r->responses[i]) : nullptr;
    return seen && !seen->kvs.empty() ? &seen->kvs.front() : nullptr;
  };
  if (const auto* fire = read(0)) {
    // A resend of a claim that had landed finds our own value.
    if (fire->value == value) return fire->create_revision;
    return error{errc::busy, "tick taken"};
  }
  if (const auto* running = read(1); running && held) {
    *held = {.record = decode_record<running_record>(running->value).value_or(running_record{}),
             .created = running->create_revision,
             .seen_at = r->header_revision};
    return error{errc::failed_precondition, "the job's previous run holds it"};
  }
  return error{errc::busy, "tick refused: below the job's floor, or the job changed"};
}

/// Whether etcd refused a request before ordering it, so it was not and
/// will never be applied: overloaded ("too many requests"), out of space
/// (the NOSPACE alarm), or not allowed. Any other failure leaves it in doubt.
inline bool refused_unapplied(const error& e) {
  return e.code == errc::permission_denied || e.code == errc::unauthenticated ||
         e.code == errc::invalid_argument ||
         e.message.find("too many requests") != std::string::npos ||
         e.message.find("database space exceeded") != std::string::npos;
}

/// Claims a tick: the claim's revision if we won; `errc::busy` if someone
/// else holds it, it lies below the job's floor or the job changed;
/// `errc::failed_precondition` if the claim takes the job's running key and
/// a run holds it (who, in `held`); `errc::lease_not_found` if the lease the
/// claim binds that key to is gone. An unanswered txn is sent again (the
/// same value, so it is recognized) until answered; `errc::cancelled` when
/// `stop` ends that first: the tick is then undecided and the caller must
/// say so. While every send so far was refused unapplied, nothing of ours
/// can land: once `late()`, the claim is dropped (`errc::timed_out`) instead
/// of holding a worker for a stale tick.
template <class Backoff, txn_sender T, class Late>
result<revision> send_claim(T& t, const txn_request& claim, const std::string& value,
                            std::stop_token stop, Backoff retry, Late&& late,
                            running_holder* held = nullptr) {
  bool in_doubt = false;
  for (;;) {
    auto r = read_claim_answer(t.txn(claim, t.default_deadline()), value, held);
    if (r || r.error().code == errc::busy || r.error().code == errc::failed_precondition ||
        r.error().code == errc::lease_not_found)
      return r;
    in_doubt = in_doubt || !refused_unapplied(r.error());
    if (!in_doubt && late())
      return error{errc::timed_out, "refused until late: " + r.error().message};
    if (!cron_pause(retry.next(), stop))
      return error{errc::cancelled, "claim undecided at shutdown: " + r.error().message};
  }
}

/// Records a run's result, fenced by its claim: retried until written, or
/// until the claim is proven gone (`errc::failed_precondition`), or until
/// `stop` (`errc::cancelled`, with the last error).
template <class Backoff, txn_sender T>
result<void> send_result(T& t, const txn_request& result_write, const std::string& fire_key,
                         std::stop_token stop, Backoff retry) {
  for (;;) {
    auto r = t.txn(result_write, t.default_deadline());
    if (r) {
      if (!r->succeeded)
        return error{errc::failed_precondition, "the claim " + fire_key + " is gone"};
      return {};
    }
    if (!cron_pause(retry.next(), stop))
      return error{errc::cancelled, "gave up at shutdown: " + r.error().message};
  }
}

}  // namespace conch::detail
