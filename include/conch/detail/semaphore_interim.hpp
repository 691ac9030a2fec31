// TEMPORARY stand-ins used by semaphore.hpp until conch/detail/keys.hpp and
// conch/detail/ranking.hpp exist; deleted when they do.
#pragma once

#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conch/detail/hex.hpp"

namespace conch::detail::interim {

// `<prefix>sema/<name>/max=<N>/`
inline std::string sema_prefix(std::string_view prefix, std::string_view name, std::size_t max) {
  return std::string(prefix) + "sema/" + std::string(name) + "/max=" + std::to_string(max) + "/";
}
inline std::string sema_slots(const std::string& base) { return base + "slot/"; }
inline std::string sema_queue(const std::string& base) { return base + "queue/"; }
inline std::string sema_slot_key(const std::string& base, std::size_t i) { return sema_slots(base) + std::to_string(i); }
inline std::string sema_queue_key(const std::string& base, long long lease) {
  return sema_queue(base) + lease_hex(lease);
}
inline std::optional<std::size_t> sema_slot_index(const std::string& base, std::string_view key) {
  const std::string slots = sema_slots(base);
  if (key.substr(0, slots.size()) != slots) return std::nullopt;
  key.remove_prefix(slots.size());
  if (key.empty() || (key.size() > 1 && key.front() == '0')) return std::nullopt;
  std::size_t i = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), i);
  if (ec != std::errc{} || end != key.data() + key.size()) return std::nullopt;
  return i;
}

// What a waiter does next.
struct sema_step {
  enum class kind { claim, watch_slots, watch_predecessor } what = kind::watch_slots;
  std::size_t slot = 0;  // claim: which free slot
};

// `ahead`: waiters before us (may be capped at `max`), `held[i]`: slot i taken.
inline sema_step sema_next(std::size_t ahead, const std::vector<bool>& held) {
  std::size_t free_seen = 0;
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (held[i]) continue;
    if (free_seen == ahead) return {sema_step::kind::claim, i};
    ++free_seen;
  }
  return {ahead == 0 ? sema_step::kind::watch_slots : sema_step::kind::watch_predecessor, 0};
}

}  // namespace conch::detail::interim
