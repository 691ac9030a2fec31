// conch/etcd/deadline.hpp — conch deadlines (steady clock) as gRPC
// deadlines (gRPC's C++ API takes system_clock time points).
#pragma once

#include "conch/policies/transport.hpp"

#include <chrono>

namespace conch::detail {

inline std::chrono::system_clock::time_point to_grpc_deadline(deadline d) {
  const auto now = std::chrono::steady_clock::now();
  if (d <= now) return std::chrono::system_clock::now();
  // "Forever" (or anything past a day) must not overflow on conversion.
  if (d - now > std::chrono::hours(24)) return std::chrono::system_clock::time_point::max();
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(d - now);
}

}  // namespace conch::detail
