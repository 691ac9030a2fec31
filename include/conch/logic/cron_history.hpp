// conch/logic/cron_history.hpp — what a tick's claim and result say, and
// which ticks fall out of a job's history. Pure: no I/O, no transport.
//
// A tick T of job NAME leaves up to two keys: the claim `cron/fire/NAME/T`
// (written once, by the single winner, without a lease so that a dead
// claimer cannot free the tick for a second run) and the result
// `cron/runs/NAME/T` (written by the winner when its run ends). The claimer's
// lease id lives inside the claim so a reader can tell a run in flight from a
// zombie: claimed, no result, and the claimer's lease is gone.
#pragma once

#include "conch/policies/transport.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conch::detail {

/// Where one claimed tick stands.
enum class run_state {
  done,     ///< the result is recorded
  running,  ///< no result yet, and the claimer's lease is alive
  zombie,   ///< no result, and the claimer's lease is gone: never rerun
  skipped,  ///< the result says the tick was not run (its job's previous run was running)
};

inline const char* to_string(run_state s) noexcept {
  switch (s) {
    case run_state::done:
      return "done";
    case run_state::running:
      return "running";
    case run_state::zombie:
      return "zombie";
    case run_state::skipped:
      return "skipped";
  }
  return "unknown";
}

/// A claim whose value cannot be read names no lease, so it can never be
/// shown alive: without a result it is a zombie.
constexpr run_state classify_run(bool has_result, bool claimer_alive) noexcept {
  if (has_result) return run_state::done;
  return claimer_alive ? run_state::running : run_state::zombie;
}

/// History kept per job: the newest `keep` claimed ticks. Given the claimed
/// ticks of one job in ascending order (the fixed-width tick encoding makes
/// key order time order), returns the oldest tick that stays, or nothing when
/// the history is within bounds. Everything strictly before it — claims and
/// results alike — can then go with one range delete per directory.
/// `keep == 0` means unbounded.
inline std::optional<std::string> prune_cutoff(const std::vector<std::string>& ascending_ticks,
                                               std::size_t keep) {
  if (keep == 0 || ascending_ticks.size() <= keep) return std::nullopt;
  return ascending_ticks[ascending_ticks.size() - keep];
}

/// One claimed tick as a pruner sees it.
struct claimed_tick {
  std::string tick;         ///< fixed-width tick text
  bool has_result = false;  ///< its result is recorded
  lease_id claimer = 0;     ///< the claimer's lease; 0 when the claim is unreadable
};

/// The job's new floor: the oldest tick that stays once the history is cut
/// back to `keep` ticks, or nothing when there is nothing to cut. Pruning
/// waits until the history exceeds `keep + slack` (amortized: one prune txn
/// per `slack + 1` ticks), and never passes an unresulted claim whose
/// claimer `alive(lease)` says may still run: the floor stops at it, so its
/// result can still be recorded. `ascending` is in tick order.
template <class Alive>
std::optional<std::string> prune_floor(const std::vector<claimed_tick>& ascending, std::size_t keep,
                                       std::size_t slack, Alive&& alive) {
  if (keep == 0 || ascending.size() <= keep + slack) return std::nullopt;
  const std::size_t cut = ascending.size() - keep;
  std::size_t stop = cut;
  for (std::size_t i = 0; i < cut; ++i)
    if (!ascending[i].has_result && ascending[i].claimer != 0 && alive(ascending[i].claimer)) {
      stop = i;
      break;
    }
  if (stop == 0) return std::nullopt;  // nothing below the floor to drop
  return ascending[stop].tick;
}

/// The slack `prune_floor` allows over `keep`: a tenth, so a long history is
/// pruned once per keep/10 ticks and a short one at every tick.
constexpr std::size_t prune_slack(std::size_t keep) noexcept { return keep / 10; }

/// The last `cap` bytes of a child's output, safe to embed in a JSON record:
/// the cut never splits a UTF-8 sequence and any byte that is not valid UTF-8
/// becomes '?', so the result is valid UTF-8 of at most `cap` bytes.
inline std::string utf8_tail(std::string_view out, std::size_t cap) {
  if (out.size() > cap) {
    out.remove_prefix(out.size() - cap);
    // Skip continuation bytes a cut may have orphaned.
    std::size_t skip = 0;
    while (skip < out.size() && skip < 3 && (static_cast<unsigned char>(out[skip]) & 0xC0) == 0x80)
      ++skip;
    out.remove_prefix(skip);
  }
  std::string clean;
  clean.reserve(out.size());
  std::size_t i = 0;
  while (i < out.size()) {
    const auto c = static_cast<unsigned char>(out[i]);
    std::size_t len = c < 0x80           ? 1
                      : (c >> 5) == 0x6  ? 2
                      : (c >> 4) == 0xE  ? 3
                      : (c >> 3) == 0x1E ? 4
                                         : 0;
    bool ok = len != 0 && i + len <= out.size();
    for (std::size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(out[i + k]) & 0xC0) == 0x80;
    if (ok && len > 1) {
      // Reject overlong forms, surrogates and code points past U+10FFFF.
      const auto c1 = static_cast<unsigned char>(out[i + 1]);
      if (len == 2) ok = c >= 0xC2;
      if (len == 3) ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
      if (len == 4) ok = !(c == 0xF0 && c1 < 0x90) && c <= 0xF4 && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      clean.append(out.substr(i, len));
      i += len;
    } else {
      clean.push_back('?');
      ++i;
    }
  }
  return clean;
}

}  // namespace conch::detail
