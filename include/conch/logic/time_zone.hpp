// conch/logic/time_zone.hpp — a loaded IANA time zone for cron jobs.
//
// The one piece of schedule math that touches the file system: abseil reads
// the zone's rules from the system tz database (tzdata) on first load and
// caches them for the life of the process.
//
//   auto z = load_zone("Europe/Berlin");
//   if (!z) std::cerr << z.error().message << '\n';  // unknown time zone "Europe/Berlinn"
#pragma once

#include "conch/logic/duration.hpp"
#include "conch/result.hpp"

#include <absl/time/time.h>
#include <string>
#include <string_view>

namespace conch::detail {

/// A time zone by IANA name ("America/New_York", "UTC"). Cheap to copy.
class zone {
 public:
  /// UTC: no offsets, no transitions.
  zone() : tz_(absl::UTCTimeZone()), name_("UTC") {}
  static zone utc() { return zone(); }

  /// The IANA name it was loaded by ("UTC" for the default).
  const std::string& name() const noexcept { return name_; }
  const absl::TimeZone& rules() const noexcept { return tz_; }

  friend bool operator==(const zone& a, const zone& b) { return a.name_ == b.name_; }

 private:
  friend result<zone> load_zone(std::string_view name);
  zone(absl::TimeZone tz, std::string name) : tz_(tz), name_(std::move(name)) {}

  absl::TimeZone tz_;
  std::string name_;
};

/// Loads an IANA zone by name. An empty name means UTC. Unknown names (or a
/// missing tz database) give `errc::invalid_argument`.
inline result<zone> load_zone(std::string_view name) {
  if (name.empty()) return zone::utc();
  // Zone names are relative paths inside the tz database; refuse anything
  // that could reach outside it before abseil touches the file system.
  const bool suspicious = name.front() == '/' || name.find("..") != std::string_view::npos ||
                          name.find('\0') != std::string_view::npos;
  absl::TimeZone tz;
  if (suspicious || !absl::LoadTimeZone(std::string(name), &tz)) {
    return conch::error{errc::invalid_argument,
                        "unknown time zone " + detail::quoted(name) +
                            " (use an IANA name like \"Europe/Berlin\" or \"UTC\")"};
  }
  return zone(tz, std::string(name));
}

}  // namespace conch::detail
