// TEMPORARY stand-ins used by session.hpp until conch/fwd.hpp and
// conch/detail/lease_deadline.hpp exist; deleted when they do.
#pragma once

#include <algorithm>
#include <chrono>

namespace conch {
struct default_policies;
}

namespace conch::detail::interim {

inline std::chrono::milliseconds default_margin(std::chrono::seconds ttl) {
  return std::min<std::chrono::milliseconds>(std::chrono::seconds{1}, ttl / 10);
}
inline std::chrono::milliseconds keepalive_interval(std::chrono::seconds ttl) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(ttl) / 3;
}

}  // namespace conch::detail::interim

