// conch/logic/cron_txn.hpp — the three writes of a tick, as txn values.
//
// Pure: these build requests; the recipe sends them. Keeping them here puts
// the whole at-most-once argument on one page:
//  - claim: create-if-absent on the tick's fire key, and only while the job is
//    the version this daemon scheduled (a `cron rm` that commits first makes
//    every later claim fail, whatever a daemon's watch has seen so far). The
//    claim carries no lease: if it vanished with a dead claimer, another
//    daemon could claim the same tick again.
//  - result: only while the claim is still ours (its create revision).
//  - prune: the history before the oldest kept tick, claims and results alike.
#pragma once

#include <string>

#include "conch/policies/transport.hpp"

namespace conch::detail {

/// Claims a tick. Succeeds for exactly one writer per fire key.
inline txn_request claim_txn(const std::string& fire_key, std::string claim_value,
                             const std::string& job_key, revision job_mod_revision) {
  txn_request t;
  t.compares.push_back(compare::create_revision(fire_key) == 0);
  t.compares.push_back(compare::mod_revision(job_key) == job_mod_revision);
  put_request put;
  put.key = fire_key;
  put.value = std::move(claim_value);
  t.success.emplace_back(std::move(put));
  range_request read;
  read.key = fire_key;  // on failure: who holds the tick, if anyone
  t.failure.emplace_back(std::move(read));
  return t;
}

/// Records a run's result, fenced by the claim's revision.
inline txn_request result_txn(const std::string& fire_key, revision claim_revision,
                              const std::string& runs_key, std::string result_value) {
  txn_request t;
  t.compares.push_back(compare::create_revision(fire_key) == claim_revision);
  put_request put;
  put.key = runs_key;
  put.value = std::move(result_value);
  t.success.emplace_back(std::move(put));
  return t;
}

/// Drops every claim and result of a job older than `oldest_kept_tick`
/// (fixed-width tick keys: key order is time order).
inline txn_request prune_txn(const std::string& fire_dir, const std::string& runs_dir,
                             const std::string& oldest_kept_tick) {
  txn_request t;
  for (const auto* dir : {&fire_dir, &runs_dir}) {
    delete_request del;
    del.key = *dir;
    del.range_end = *dir + oldest_kept_tick;
    t.success.emplace_back(std::move(del));
  }
  return t;
}

}  // namespace conch::detail
