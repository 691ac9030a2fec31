// conch/logic/hex.hpp — lease ids as etcd's own recipes spell them in keys.
//
// Go's election and lock recipes name a contender's key with fmt's "%x" of the
// int64 lease id: lowercase, no leading zeros, a '-' for negatives. conch
// writes exactly that, and reads back only that canonical form, so one lease id
// has one spelling and a key decodes to at most one lease.
#pragma once

#include "conch/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace conch::detail {

inline std::string lease_hex(std::int64_t id) {
  static constexpr char digits[] = "0123456789abcdef";
  // Work in unsigned so that INT64_MIN has a magnitude.
  std::uint64_t magnitude =
      id < 0 ? 0 - static_cast<std::uint64_t>(id) : static_cast<std::uint64_t>(id);
  char buf[17];
  int at = 17;
  do {
    buf[--at] = digits[magnitude & 0xf];
    magnitude >>= 4;
  } while (magnitude != 0);
  std::string out = id < 0 ? "-" : "";
  out.append(buf + at, buf + 17);
  return out;
}

inline result<std::int64_t> parse_lease_hex(std::string_view text) {
  auto bad = [&](const char* why) {
    return error{errc::invalid_argument, "lease id \"" + std::string(text) + "\": " + why};
  };
  const bool negative = !text.empty() && text.front() == '-';
  std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty()) return bad("no hex digits");
  if (digits.size() > 16) return bad("more than 16 hex digits");
  if (digits.size() > 1 && digits.front() == '0') return bad("leading zero");
  std::uint64_t magnitude = 0;
  for (char c : digits) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return bad("not lowercase hex");
    magnitude = magnitude << 4 | static_cast<std::uint64_t>(v);
  }
  if (negative) {
    if (magnitude == 0) return bad("negative zero");
    if (magnitude > std::uint64_t{1} << 63) return bad("out of range");
    return static_cast<std::int64_t>(0 - magnitude);
  }
  if (magnitude > static_cast<std::uint64_t>(INT64_MAX)) return bad("out of range");
  return static_cast<std::int64_t>(magnitude);
}

}  // namespace conch::detail
