// conch/logic/duration.hpp — human durations for flags and `@every`.
//
// Grammar: one or more `<number><unit>` groups, or a single bare number that
// means seconds. Numbers are decimal, with an optional fraction; units are
// `ms`, `s`, `m`, `h`. The total must be a whole number of milliseconds.
//
//   parse_duration("500ms")  -> 500ms        parse_duration("1h30m") -> 5'400'000ms
//   parse_duration("1.5s")   -> 1'500ms      parse_duration("10")    -> 10'000ms
//   parse_duration("10x")    -> error: duration "10x": unknown unit "x" at position 3
//   format_duration(5'400'000ms) == "1h30m"  (parse_duration(format_duration(d)) == d)
//
// Errors are `errc::invalid_argument` with a one-line message naming the
// offending token and its 1-based position. No I/O, no allocation on success.
#pragma once

#include "conch/result.hpp"

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace conch::detail {

/// `text` quoted for an error message: control bytes escaped, long text cut,
/// so the message stays one readable line whatever the input.
inline std::string quoted(std::string_view text) {
  constexpr std::size_t max_shown = 80;
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_shown) out += "...";
  out += '"';
  return out;
}

/// Parses `text`; on failure `problem` says why without naming `text` itself,
/// so callers embedding a duration (e.g. `@every`) can word their own message.
inline bool parse_duration_into(std::string_view text, std::chrono::milliseconds& out,
                                std::string& problem) {
  using std::chrono::milliseconds;
  if (text.empty()) {
    problem = "empty";
    return false;
  }
  constexpr std::int64_t max_ms = std::numeric_limits<std::int64_t>::max() / 4;
  auto at = [](std::size_t i) { return " at position " + std::to_string(i + 1); };
  std::int64_t total = 0;
  std::size_t i = 0;
  bool bare_allowed = true;
  while (i < text.size()) {
    const std::size_t start = i;
    if (text[i] == '-' || text[i] == '+') {
      problem = std::string("sign ") + detail::quoted(text.substr(i, 1)) + at(i) +
                (text[i] == '-' ? " (durations cannot be negative)" : "");
      return false;
    }
    // The number: digits, optional fraction.
    std::int64_t whole = 0;
    std::int64_t frac = 0;
    std::int64_t frac_scale = 1;
    std::size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (++digits > 15) {
        problem =
            "number " + detail::quoted(text.substr(start, i + 1 - start)) + at(start) + " is too large";
        return false;
      }
      whole = whole * 10 + (text[i] - '0');
      ++i;
    }
    if (i < text.size() && text[i] == '.') {
      ++i;
      std::size_t frac_digits = 0;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        // Digits past the 9th cannot change a whole-millisecond total unless
        // they are non-zero, in which case the value is too fine anyway.
        if (frac_digits < 9) {
          frac = frac * 10 + (text[i] - '0');
          frac_scale *= 10;
        } else if (text[i] != '0') {
          problem = "number " + detail::quoted(text.substr(start, i + 1 - start)) + at(start) +
                    " is finer than a millisecond";
          return false;
        }
        ++frac_digits;
        ++i;
      }
      digits += frac_digits;
    }
    if (digits == 0) {
      problem = "expected a number" + std::string(i < text.size() ? " before " : "") +
                (i < text.size() ? detail::quoted(text.substr(i, 1)) : std::string()) + at(start);
      return false;
    }
    const std::string number(text.substr(start, i - start));
    // The unit.
    const std::size_t unit_start = i;
    while (i < text.size() &&
           ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
      ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    std::int64_t unit_ms = 0;
    if (unit.empty()) {
      if (i < text.size()) {
        problem = "unexpected " + detail::quoted(text.substr(i, 1)) + at(i);
        return false;
      }
      if (!bare_allowed) {
        problem = "number " + detail::quoted(number) + at(start) + " has no unit (ms, s, m, h)";
        return false;
      }
      unit_ms = 1000;  // a bare number means seconds
    } else if (unit == "ms") {
      unit_ms = 1;
    } else if (unit == "s") {
      unit_ms = 1000;
    } else if (unit == "m") {
      unit_ms = 60'000;
    } else if (unit == "h") {
      unit_ms = 3'600'000;
    } else {
      problem = "unknown unit " + detail::quoted(unit) + at(unit_start) + " (use ms, s, m, h)";
      return false;
    }
    bare_allowed = false;
    if (frac_scale > 1 && (frac * unit_ms) % frac_scale != 0) {
      problem = detail::quoted(text.substr(start, i - start)) + at(start) + " is finer than a millisecond";
      return false;
    }
    if (whole > max_ms / unit_ms) {
      problem = detail::quoted(text.substr(start, i - start)) + at(start) + " is too large";
      return false;
    }
    total += whole * unit_ms + frac * unit_ms / frac_scale;
    if (total > max_ms) {
      problem = detail::quoted(text.substr(start, i - start)) + at(start) + " makes the total too large";
      return false;
    }
  }
  out = milliseconds{total};
  return true;
}

/// Parses a human duration: `500ms`, `10s`, `2m`, `1h30m`, `1.5s`, or a bare
/// number of seconds. Zero is a valid duration; callers that need a positive
/// one check it themselves.
inline result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::chrono::milliseconds d{};
  std::string problem;
  if (!parse_duration_into(text, d, problem)) {
    return conch::error{errc::invalid_argument, "duration " + detail::quoted(text) + ": " + problem};
  }
  return d;
}

/// The shortest canonical spelling: `1h30m`, `1s500ms`, `0s`.
inline std::string format_duration(std::chrono::milliseconds d) {
  if (d.count() == 0) return "0s";
  std::string out = d.count() < 0 ? "-" : "";
  const std::uint64_t ms = d.count() < 0 ? 0 - static_cast<std::uint64_t>(d.count())
                                         : static_cast<std::uint64_t>(d.count());
  const std::uint64_t h = ms / 3'600'000, m = ms / 60'000 % 60, s = ms / 1000 % 60,
                      rest = ms % 1000;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (s) out += std::to_string(s) + "s";
  if (rest) out += std::to_string(rest) + "ms";
  return out;
}

}  // namespace conch::detail
