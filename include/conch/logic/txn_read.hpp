// conch/logic/txn_read.hpp — reading the answers of a txn's range operations.
#pragma once

#include "conch/policies/transport.hpp"

#include <cstddef>
#include <optional>
#include <variant>

namespace conch::detail {

/// The `i`-th answer of `r` if it is a range answer; null otherwise.
inline const range_response* range_at(const txn_response& r, std::size_t i) {
  return i < r.responses.size() ? std::get_if<range_response>(&r.responses[i]) : nullptr;
}

/// The first key a range answer returned, if any.
inline std::optional<key_value> front(const range_response* r) {
  if (!r || r->kvs.empty()) return std::nullopt;
  return r->kvs.front();
}

}  // namespace conch::detail
