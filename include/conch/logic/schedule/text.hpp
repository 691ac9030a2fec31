// conch/logic/schedule/text.hpp — a schedule's canonical text.
//
// One spelling per schedule, so two daemons (or `conch cron ls`) show the same
// text for equal schedules, and `parse_schedule(s.to_string()) == s` always:
//   "0 */15 * * * *" -> "*/15 * * * *"     "@daily"      -> "0 0 * * *"
//   "0-30/10 9-17 * jan-mar mon-fri" -> "0-30/10 9-17 * 1-3 1-5"
//   "@every 90m" -> "@every 1h30m"
#pragma once

#include "conch/logic/duration.hpp"
#include "conch/logic/schedule/fields.hpp"

#include <string>

namespace conch::detail {

/// `{lo, lo+n, lo+2n, ...}` up to the field's end: what `*/n` means.
inline value_set star_values(cron_field f, int n) noexcept {
  const auto info = field_info(f);
  value_set out;
  for (int v = info.min; v <= info.step_end; v += n) out.add(v);
  return out;
}

/// `vals` as ranges and single values, e.g. `1-5,7,9-20/2`.
inline std::string value_list_text(value_set vals) {
  std::string out;
  auto append = [&out](const std::string& part) {
    if (!out.empty()) out += ',';
    out += part;
  };
  // One arithmetic progression of three or more values reads best as a stepped range.
  const int first = vals.next(0);
  const int count = std::popcount(vals.bits);
  if (count >= 3) {
    const int second = vals.next(first + 1);
    const int step = second - first;
    const int last = first + step * (count - 1);
    bool progression = step > 1 && last < 64;
    for (int v = first; progression && v <= last; v += step) progression = vals.has(v);
    if (progression)
      return std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(step);
  }
  for (int v = first; v >= 0;) {
    int end = v;
    while (vals.has(end + 1)) ++end;
    if (end - v >= 2) {
      append(std::to_string(v) + "-" + std::to_string(end));
    } else {
      append(std::to_string(v));
      if (end > v) append(std::to_string(end));
    }
    v = vals.next(end + 1);
  }
  return out;
}

/// One field's canonical text. `star` says whether the field must be spelled
/// starting with `*` (hour, day of month, day of week carry that meaning) and
/// `star_matters` whether it must *not* be otherwise.
inline std::string field_text(cron_field f, value_set vals, bool star, bool star_matters) {
  const auto info = field_info(f);
  if (star || !star_matters) {
    // The coarsest `*/n` the set contains; a `*` field always contains its minimum.
    for (int n = 1; n <= info.step_end - info.min + 1; ++n) {
      const value_set pattern = star_values(f, n);
      if ((pattern.bits & ~vals.bits) != 0) continue;
      if (!star && (pattern != vals || std::popcount(pattern.bits) < 2)) continue;
      std::string out = n == 1 ? "*" : "*/" + std::to_string(n);
      const value_set rest{vals.bits & ~pattern.bits};
      if (!rest.empty()) out += "," + value_list_text(rest);
      return out;
    }
  }
  return value_list_text(vals);
}

inline std::string schedule::to_string() const {
  if (form == form_t::every) return "@every " + format_duration(period);

  std::string dom = days_of_month.empty() && !dom_star
                        ? ""
                        : field_text(cron_field::day_of_month, days_of_month, dom_star, true);
  auto add_dom = [&dom](const std::string& part) { dom += (dom.empty() ? "" : ",") + part; };
  if (last_day) add_dom("L");
  if (last_weekday) add_dom("LW");
  for (int n = nearest_weekday.next(0); n >= 0; n = nearest_weekday.next(n + 1))
    add_dom(std::to_string(n) + "W");

  std::string dow = days_of_week.empty() && !dow_star
                        ? ""
                        : field_text(cron_field::day_of_week, days_of_week, dow_star, true);
  auto add_dow = [&dow](const std::string& part) { dow += (dow.empty() ? "" : ",") + part; };
  for (int d = last_of_weekday.next(0); d >= 0; d = last_of_weekday.next(d + 1))
    add_dow(std::to_string(d) + "L");
  for (int d = 0; d < 7; ++d) {
    const value_set nth = nth_weekday[static_cast<std::size_t>(d)];
    for (int k = nth.next(0); k >= 0; k = nth.next(k + 1))
      add_dow(std::to_string(d) + "#" + std::to_string(k));
  }

  std::string out;
  if (seconds != value_set{1}) out = field_text(cron_field::second, seconds, false, false) + " ";
  out += field_text(cron_field::minute, minutes, false, false) + " " +
         field_text(cron_field::hour, hours, hour_star, true) + " " + dom + " " +
         field_text(cron_field::month, months, false, false) + " " + dow;
  return out;
}

}  // namespace conch::detail
