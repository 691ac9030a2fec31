// conch/detail/cron_pruner.hpp — a cron daemon's history pruning, batched.
//
// Pruning is off the tick's path: the winner of a tick whose turn it is
// (one tick in prune_slack(keep) + 1, by a hash of its claim key) hands the
// job to the pruner, and the pruner's thread cuts the queued jobs' history
// once a second: one read txn (claims and result keys) and, when the history
// is over its bound, one prune txn per job (see cron_txn.hpp). A tick
// itself costs etcd its claim and its result only.
#pragma once

#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_prune.hpp"
#include "conch/logic/cron_txn.hpp"
#include "conch/policies/transport.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <variant>

namespace conch::detail {

/// Whether the tick claimed at `fire_key` is its job's turn to be pruned
/// after: one tick in `prune_slack(keep) + 1`, whichever daemon wins it.
inline bool prune_turn(const std::string& fire_key, std::size_t keep) {
  if (keep == 0) return false;
  return std::hash<std::string>{}(fire_key) % (prune_slack(keep) + 1) == 0;
}

/// Cuts `job`'s history back to `keep` ticks once it exceeds
/// `keep + prune_slack(keep)`, raising the job's floor in the same txn.
/// Best effort: a failure (or a claim made meanwhile below the new floor)
/// leaves the work to a later turn.
template <transport T>
void prune_history(T& t, const cron_job& job, std::size_t keep,
                   const std::function<void(const cron_job&, long)>& zombies = {}) {
  if (keep == 0) return;
  txn_request read;  // no compares, ranges only: a read, at one revision
  read.success.emplace_back(range_request::prefix(job.fire_dir));
  auto results_req = range_request::prefix(job.runs_dir);
  results_req.keys_only = true;
  read.success.emplace_back(std::move(results_req));
  auto r = t.txn(read, t.default_deadline());
  if (!r || r->responses.size() != 2) return;
  const auto* claims = std::get_if<range_response>(&r->responses[0]);
  const auto* results = std::get_if<range_response>(&r->responses[1]);
  if (!claims || !results) return;
  std::map<lease_id, bool> leases;
  auto alive = [&](lease_id id) {
    auto [it, fresh] = leases.try_emplace(id, true);  // unknown: may still run
    if (fresh)
      if (auto ttl = t.lease_time_to_live(id, t.default_deadline())) it->second = ttl->ttl > 0;
    return it->second;
  };
  const auto ticks = claimed_ticks_from(claims->kvs, job.fire_dir, results->kvs, job.runs_dir);
  if (zombies)  // claimed, no result, the claimer's lease gone (cron_history.hpp)
    zombies(job, std::count_if(ticks.begin(), ticks.end(), [&](const claimed_tick& c) {
              return !c.has_result && c.claimer != 0 && !alive(c.claimer);
            }));
  if (claims->kvs.size() <= keep + prune_slack(keep)) return;
  if (auto floor = prune_floor(ticks, keep, prune_slack(keep), alive))
    (void)t.txn(prune_txn(job.fire_dir, job.runs_dir, job.floor_dir, *floor, r->header_revision),
                t.default_deadline());
}

/// The jobs whose turn to be pruned came, and the thread that prunes them.
template <transport T>
class cron_pruner {
 public:
  using job_ptr = std::shared_ptr<const cron_job>;

  /// `zombies` is told, per job pruned, how many zombie claims its history holds.
  cron_pruner(T& t, std::size_t keep, std::function<void(const cron_job&, long)> zombies = {},
              std::chrono::milliseconds every = std::chrono::seconds{1})
      : transport_(t), keep_(keep), every_(every), zombies_(std::move(zombies)) {}
  cron_pruner(const cron_pruner&) = delete;
  cron_pruner& operator=(const cron_pruner&) = delete;
  ~cron_pruner() { stop(); }

  /// Queues `job` (once, however many turns came meanwhile); starts the thread.
  void add(job_ptr job) {
    std::lock_guard lock{mutex_};
    if (stopped_) return;
    queued_[job->name()] = std::move(job);
    if (!thread_.joinable() && !stopped_)
      thread_ = std::jthread([this](std::stop_token s) { loop(std::move(s)); });
  }

  /// Joins the thread, then prunes what is still queued (the turns of the
  /// last results). Nothing is queued afterwards.
  void stop() {
    {
      std::lock_guard lock{mutex_};
      stopped_ = true;
    }
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
    std::map<std::string, job_ptr> rest;
    {
      std::lock_guard lock{mutex_};
      rest.swap(queued_);
    }
    for (const auto& [name, job] : rest) prune_history(transport_, *job, keep_, zombies_);
  }

 private:
  void loop(std::stop_token stop) {
    while (!stop.stop_requested()) {
      std::map<std::string, job_ptr> batch;
      {
        std::unique_lock lock{mutex_};
        (void)wake_.wait_for(lock, stop, every_, [] { return false; });
        if (stop.stop_requested()) return;  // stop() prunes what is queued
        batch.swap(queued_);
      }
      for (const auto& [name, job] : batch) prune_history(transport_, *job, keep_, zombies_);
    }
  }

  T& transport_;
  std::size_t keep_;
  std::chrono::milliseconds every_;
  std::function<void(const cron_job&, long)> zombies_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::map<std::string, job_ptr> queued_;
  bool stopped_ = false;
  std::jthread thread_;  // last: joined first
};

}  // namespace conch::detail
