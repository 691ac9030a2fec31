// conch/logic/duration.hpp — human durations for flags and `@every`.
//
// Grammar: absl::ParseDuration's — one or more `<number><unit>` groups, numbers
// decimal with an optional fraction, units `ms`, `s`, `m`, `h` (and `us`, `ns`)
// — or a single bare number that means seconds. No sign: a duration is never
// negative. The total must be a whole number of milliseconds.
//
//   parse_duration("500ms")  -> 500ms        parse_duration("1h30m") -> 5'400'000ms
//   parse_duration("1.5s")   -> 1'500ms      parse_duration("10")    -> 10'000ms
//   parse_duration("10x")    -> error: duration "10x": not a number with a unit (...)
//   format_duration(5'400'000ms) == "1h30m"  (parse_duration(format_duration(d)) == d)
//
// Errors are `errc::invalid_argument` with a one-line message quoting the text.
#pragma once

#include "conch/result.hpp"

#include <absl/time/time.h>
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
/// The grammar is absl::ParseDuration's (which also knows `us` and `ns`),
/// less signs and `inf`, plus a bare number meaning seconds.
inline bool parse_duration_into(std::string_view text, std::chrono::milliseconds& out,
                                std::string& problem) {
  constexpr std::int64_t max_ms = std::numeric_limits<std::int64_t>::max() / 4;
  if (text.empty()) {
    problem = "empty";
    return false;
  }
  if (text.front() == '-' || text.front() == '+') {
    problem = "sign " + detail::quoted(text.substr(0, 1)) + " at position 1" +
              (text.front() == '-' ? " (durations cannot be negative)" : "");
    return false;
  }
  std::string spelled(text);
  if (spelled.find_first_not_of("0123456789.") == std::string::npos)
    spelled += 's';  // bare: seconds
  absl::Duration d;
  if (spelled == "inf" || !absl::ParseDuration(spelled, &d)) {
    problem = "not a number with a unit (ms, s, m, h, as in 1h30m), nor a bare number of seconds";
    return false;
  }
  if (d > absl::Milliseconds(max_ms)) {
    problem = "too large";
    return false;
  }
  if (d % absl::Milliseconds(1) != absl::ZeroDuration()) {
    problem = "finer than a millisecond";
    return false;
  }
  out = std::chrono::milliseconds{absl::ToInt64Milliseconds(d)};
  return true;
}

/// Parses a human duration: `500ms`, `10s`, `2m`, `1h30m`, `1.5s`, or a bare
/// number of seconds. Zero is a valid duration; callers that need a positive
/// one check it themselves.
inline result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::chrono::milliseconds d{};
  std::string problem;
  if (!parse_duration_into(text, d, problem)) {
    return conch::error{errc::invalid_argument,
                        "duration " + detail::quoted(text) + ": " + problem};
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
