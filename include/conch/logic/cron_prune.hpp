// conch/logic/cron_prune.hpp — what a pruner reads of a job's history, as
// the claimed ticks `prune_floor` (cron_history.hpp) decides on. Pure.
#pragma once

#include "conch/logic/cron_history.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/records.hpp"
#include "conch/policies/transport.hpp"

#include <set>
#include <string>
#include <vector>

namespace conch::detail {

/// The claimed ticks of one job in key (= time) order, from its claims and
/// the keys of its results.
inline std::vector<claimed_tick> claimed_ticks_from(const std::vector<key_value>& claims,
                                                    const std::string& fire_dir,
                                                    const std::vector<key_value>& results,
                                                    const std::string& runs_dir) {
  std::set<std::string> resulted;
  for (const auto& kv : results)
    if (kv.key.size() > runs_dir.size()) resulted.insert(kv.key.substr(runs_dir.size()));
  std::vector<claimed_tick> out;
  out.reserve(claims.size());
  for (const auto& kv : claims) {
    if (kv.key.size() <= fire_dir.size()) continue;
    claimed_tick c;
    c.tick = kv.key.substr(fire_dir.size());
    c.has_result = resulted.contains(c.tick);
    if (auto rec = decode_record<claim_record>(kv.value))
      if (auto id = parse_lease_hex(rec->lease)) c.claimer = *id;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace conch::detail
