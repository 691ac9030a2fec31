// conch/logic/name_codec.hpp — office and job names as one path segment.
//
// A name becomes exactly one segment of a key: '%', '/', control bytes
// (< 0x20) and DEL are written as %XX (uppercase hex); every other byte,
// UTF-8 included, is kept. So "web" stays "web" (what `etcdctl elect -l
// conch/elect/web` expects), "a/b" becomes "a%2Fb", and no two names share a
// spelling. Decoding accepts only that canonical spelling, so each segment
// decodes to at most one name and a foreign key is an error, never a guess.
#pragma once

#include "conch/result.hpp"

#include <string>
#include <string_view>

namespace conch::detail {

constexpr bool name_byte_needs_escape(unsigned char c) noexcept {
  return c == '%' || c == '/' || c < 0x20 || c == 0x7f;
}

/// Text safe for a one-line message: control bytes and DEL as \xNN.
inline std::string printable(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

inline result<std::string> encode_name(std::string_view name) {
  if (name.empty()) return error{errc::invalid_argument, "name is empty"};
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  for (unsigned char c : name) {
    if (name_byte_needs_escape(c)) {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

inline result<std::string> decode_name(std::string_view segment) {
  auto bad = [&](const char* why) {
    return error{errc::invalid_argument, "name segment \"" + printable(segment) + "\": " + why};
  };
  if (segment.empty()) return bad("empty");
  auto nibble = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  std::string out;
  out.reserve(segment.size());
  for (std::size_t i = 0; i < segment.size(); ++i) {
    const auto c = static_cast<unsigned char>(segment[i]);
    if (c != '%') {
      if (name_byte_needs_escape(c)) return bad("unescaped '/', control byte or DEL");
      out += static_cast<char>(c);
      continue;
    }
    const bool room = i + 2 < segment.size();
    const int hi = room ? nibble(segment[i + 1]) : -1;
    const int lo = room ? nibble(segment[i + 2]) : -1;
    if (hi < 0 || lo < 0) return bad("'%' not followed by two uppercase hex digits");
    const auto decoded = static_cast<unsigned char>(hi << 4 | lo);
    if (!name_byte_needs_escape(decoded)) return bad("escapes a byte that is written plain");
    out += static_cast<char>(decoded);
    i += 2;
  }
  return out;
}

}  // namespace conch::detail
