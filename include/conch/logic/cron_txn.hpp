// conch/logic/cron_txn.hpp — the writes of a tick, as txn values.
//
// Pure: these build requests; the recipe sends them. Keeping them here puts
// the whole at-most-once argument on one page (docs/cron.md states it):
//  - claim: create-if-absent on the tick's fire key, only while the job is
//    the version this daemon scheduled (a `cron rm` that commits first makes
//    every later claim fail), and only while no floor marker of the job lies
//    above the tick. The claim carries no lease: if it vanished with a dead
//    claimer, another daemon could claim the same tick again. The running key
//    it may take (lease-bound) only orders runs: at most once rests on the
//    fire key.
//  - running key (forbid, replace): the claim also creates the job's running
//    key, bound to the claimer's lease, and only if it is absent (forbid: a
//    tick that finds it held is claimed with its skipped result instead, one
//    txn); the result deletes it, only while it is still this run's (its
//    create revision). Two writes per tick, whatever the policy.
//  - result: only while the claim is still ours (its create revision).
//  - prune: raises the job's floor to the oldest kept tick *in the same txn*
//    that deletes the history below it, and only if nothing below it was
//    claimed since the pruner looked. So a fire key's absence never lets a
//    claim through on its own: a pruned tick lies below the floor.
#pragma once

#include "conch/policies/transport.hpp"

#include <string>

namespace conch::detail {

/// The compare "no floor marker of the job lies above `tick`": true when the
/// range of marker keys after `floor_dir + tick` is empty (etcd compares an
/// empty range as one absent key, create revision 0).
inline compare no_floor_above(const std::string& floor_dir, const std::string& tick) {
  compare c;
  c.key = floor_dir + tick;
  c.key.push_back('\0');  // the first key after floor_dir + tick
  c.range_end = prefix_end(floor_dir);
  c.what = compare::target::create;
  c.rel = compare::relation::equal;
  c.number = 0;
  return c;
}

/// The job's running key as a claim takes it: created if absent, bound to
/// the claimer's lease (forbid and replace).
struct running_take {
  std::string key;
  std::string value;  ///< the running record
  lease_id lease = 0;
};

/// The compares and put every claim of `tick` (fixed-width text) makes: the
/// fire key absent, the job unchanged, the tick at or above the job's floor.
/// On failure the txn reads the fire key: who holds the tick, if anyone.
inline txn_request claim_base(const std::string& fire_dir, const std::string& floor_dir,
                              const std::string& tick, std::string claim_value,
                              const std::string& job_key, revision job_mod_revision) {
  const std::string fire_key = fire_dir + tick;
  txn_request t;
  t.compares.push_back(compare::create_revision(fire_key) == 0);
  t.compares.push_back(compare::mod_revision(job_key) == job_mod_revision);
  t.compares.push_back(no_floor_above(floor_dir, tick));
  put_request put;
  put.key = fire_key;
  put.value = std::move(claim_value);
  t.success.emplace_back(std::move(put));
  range_request read;
  read.key = fire_key;
  t.failure.emplace_back(std::move(read));
  return t;
}

/// Claims `tick` (fixed-width text) of a job. Succeeds for at most one
/// writer per tick, ever: the fire key must be absent and the tick at or
/// above the job's floor. With `running`, it also takes the job's running
/// key, and only if no run holds it; the failure branch then reads the key
/// too (the fire key first, the running key second).
inline txn_request claim_txn(const std::string& fire_dir, const std::string& floor_dir,
                             const std::string& tick, std::string claim_value,
                             const std::string& job_key, revision job_mod_revision,
                             const running_take* running = nullptr) {
  txn_request t =
      claim_base(fire_dir, floor_dir, tick, std::move(claim_value), job_key, job_mod_revision);
  if (running == nullptr) return t;
  t.compares.push_back(compare::create_revision(running->key) == 0);
  put_request put;
  put.key = running->key;
  put.value = running->value;
  put.lease = running->lease;
  t.success.emplace_back(std::move(put));
  range_request read;
  read.key = running->key;
  t.failure.emplace_back(std::move(read));
  return t;
}

/// Claims `tick` and records its result in the same txn: a tick that may not
/// run (forbid, its job's previous run still running) is claimed — at most
/// once, as any claim — and recorded as skipped in one write.
inline txn_request claim_recorded_txn(const std::string& fire_dir, const std::string& floor_dir,
                                      const std::string& tick, std::string claim_value,
                                      const std::string& job_key, revision job_mod_revision,
                                      const std::string& runs_key, std::string result_value) {
  txn_request t =
      claim_base(fire_dir, floor_dir, tick, std::move(claim_value), job_key, job_mod_revision);
  put_request put;
  put.key = runs_key;
  put.value = std::move(result_value);
  t.success.emplace_back(std::move(put));
  return t;
}

/// Records a run's result, fenced by the claim's revision. With a
/// `running_key` held since `running_revision`, the same txn deletes it, and
/// only while it is still this run's: a newer run's key is never deleted
/// (the txn then fails as a whole, and the caller records on its own).
inline txn_request result_txn(const std::string& fire_key, revision claim_revision,
                              const std::string& runs_key, std::string result_value,
                              const std::string& running_key = {}, revision running_revision = 0) {
  txn_request t;
  t.compares.push_back(compare::create_revision(fire_key) == claim_revision);
  put_request put;
  put.key = runs_key;
  put.value = std::move(result_value);
  t.success.emplace_back(std::move(put));
  if (!running_key.empty()) {
    t.compares.push_back(compare::create_revision(running_key) == running_revision);
    delete_request del;
    del.key = running_key;
    t.success.emplace_back(std::move(del));
  }
  return t;
}

/// Raises the job's floor to `new_floor` and drops every claim and result
/// below it (fixed-width tick keys: key order is time order). Fenced by
/// `read_revision`, the revision the pruner chose `new_floor` at: a claim
/// made below it since then (a lagging daemon's first claim of an old tick,
/// whose run may be under way) makes the prune fail instead of deleting it.
inline txn_request prune_txn(const std::string& fire_dir, const std::string& runs_dir,
                             const std::string& floor_dir, const std::string& new_floor,
                             revision read_revision) {
  txn_request t;
  compare unchanged;
  unchanged.key = fire_dir;
  unchanged.range_end = fire_dir + new_floor;
  unchanged.what = compare::target::mod;
  unchanged.rel = compare::relation::less;
  unchanged.number = read_revision + 1;
  t.compares.push_back(std::move(unchanged));
  for (const auto* dir : {&fire_dir, &runs_dir, &floor_dir}) {
    delete_request del;
    del.key = *dir;
    del.range_end = *dir + new_floor;
    t.success.emplace_back(std::move(del));
  }
  put_request marker;
  marker.key = floor_dir + new_floor;  // the floor: the highest marker
  t.success.emplace_back(std::move(marker));
  return t;
}

}  // namespace conch::detail
