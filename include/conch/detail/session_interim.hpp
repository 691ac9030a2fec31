// TEMPORARY stand-ins used by session.hpp until conch/fwd.hpp and
// conch/detail/lease_deadline.hpp exist; deleted when they do.
#pragma once

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

#include <cstdio>
#include <string>
#include <string_view>

namespace conch::detail::interim {

// `<prefix>elect/<name>/` and `<office><lease hex>` (etcd's own layout).
inline std::string election_office(std::string_view prefix, std::string_view name) {
  return std::string(prefix) + "elect/" + std::string(name) + "/";
}
inline std::string lease_hex(long long lease) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(lease));
  return buf;
}

}  // namespace conch::detail::interim
