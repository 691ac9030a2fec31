// TEMPORARY stand-in used by semaphore.hpp until conch/detail/ranking.hpp
// exists; deleted when it does.
#pragma once

#include <cstddef>
#include <vector>

namespace conch::detail::interim {

// What a waiter does next.
struct sema_step {
  enum class kind { claim, watch_slots, watch_predecessor } what = kind::watch_slots;
  int slot = 0;  // claim: which free slot
};

// `ahead`: waiters before us (may be capped at max), `held[i]`: slot i taken.
inline sema_step sema_next(std::size_t ahead, const std::vector<bool>& held) {
  std::size_t free_seen = 0;
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (held[i]) continue;
    if (free_seen == ahead) return {sema_step::kind::claim, static_cast<int>(i)};
    ++free_seen;
  }
  return {ahead == 0 ? sema_step::kind::watch_slots : sema_step::kind::watch_predecessor, 0};
}

}  // namespace conch::detail::interim
