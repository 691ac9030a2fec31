// conch/detail/cron_tick.hpp — a tick's three writes, sent: claim, result,
// prune. The txns themselves are in cron_txn.hpp; this adds what talking to
// etcd needs (an answer that never came, a short outage), for any transport.
#pragma once

#include <chrono>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_txn.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

namespace conch::detail {

/// Claims a tick: the claim's revision if we won; `errc::busy` if someone
/// else holds the tick or the job changed meanwhile. When the answer is lost
/// the txn may still have committed, so the key is read back: our claim value
/// (host, pid, lease, claim time) is ours alone. `Backoff` paces the reads;
/// `stop` ends them.
template <class Backoff, transport T>
result<revision> send_claim(T& t, const std::string& fire_key, const std::string& value, const std::string& job_key,
                            revision job_rev, std::stop_token stop) {
  auto r = t.txn(claim_txn(fire_key, value, job_key, job_rev), t.default_deadline());
  if (r) {
    if (!r->succeeded) return error{errc::busy, "tick taken"};
    return r->header_revision;
  }
  Backoff retry{};
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (std::chrono::steady_clock::now() < give_up) {
    range_request read;
    read.key = fire_key;
    auto seen = t.range(read, t.default_deadline());
    if (seen) {
      if (seen->kvs.empty()) return error{errc::unavailable, "tick not claimed: " + r.error().message};
      if (seen->kvs.front().value == value) return seen->kvs.front().create_revision;
      return error{errc::busy, "tick taken"};
    }
    if (!steady_clock_policy::sleep_until(std::chrono::steady_clock::now() + retry.next(), stop)) break;
  }
  return error{errc::unavailable, "tick claim unknown (etcd unreachable): " + r.error().message};
}

/// Records a run's result, fenced by its claim. Retried for a while (not
/// cut short by a shutdown): a run that happened must be told, even across
/// a short etcd outage.
template <class Backoff, transport T>
result<void> send_result(T& t, const std::string& fire_key, revision claim_rev, const std::string& runs_key,
                         const std::string& value) {
  Backoff retry{};
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  for (;;) {
    auto r = t.txn(result_txn(fire_key, claim_rev, runs_key, value), t.default_deadline());
    if (r) {
      if (!r->succeeded) return error{errc::failed_precondition, "the claim " + fire_key + " is gone"};
      return {};
    }
    if (std::chrono::steady_clock::now() >= give_up) return std::move(r).error();
    std::this_thread::sleep_for(retry.next());
  }
}

/// Keeps the newest `keep` ticks of `job` (0: all). Best effort: a failure
/// leaves the work to the next winner.
template <transport T>
void prune_history(T& t, const cron_job& job, std::size_t keep) {
  if (keep == 0) return;
  auto req = range_request::prefix(job.fire_dir);
  req.keys_only = true;
  auto r = t.range(req, t.default_deadline());
  if (!r) return;
  std::vector<std::string> ticks;
  ticks.reserve(r->kvs.size());
  for (const auto& kv : r->kvs) ticks.push_back(kv.key.substr(job.fire_dir.size()));
  if (auto cut = prune_cutoff(ticks, keep)) (void)t.txn(prune_txn(job.fire_dir, job.runs_dir, *cut), t.default_deadline());
}

}  // namespace conch::detail
