// conch/logic/schedule/parse.hpp — cron text to a `schedule`.
//
// See schedule.hpp for the accepted language. Every error is
// `errc::invalid_argument` with one line that quotes the schedule and names
// the offending token and the field it is in, e.g.
//   schedule "*/0 * * * *": step 0 at field 1 (minute)
#pragma once

#include "conch/logic/duration.hpp"
#include "conch/logic/schedule/fields.hpp"
#include "conch/result.hpp"

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conch::detail {

/// Whether any date of a full 400-year Gregorian cycle (after which the
/// calendar, weekdays included, repeats exactly) satisfies the day and month
/// fields. If none does, the schedule can never fire.
inline bool fires_on_some_day(const schedule& s) noexcept {
  for (std::int64_t y = 2000; y < 2400; ++y) {
    for (int m = s.months.next(1); m > 0; m = s.months.next(m + 1)) {
      const int last = days_in_month(y, m);
      for (int d = 1; d <= last; ++d) {
        if (day_matches(s, y, m, d)) return true;
      }
    }
  }
  return false;
}

namespace schedule_parsing {

inline std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

inline int name_value(cron_field f, std::string_view word) {
  static constexpr const char* months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                           "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  static constexpr const char* days[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
  const std::string w = upper(word);
  if (f == cron_field::month) {
    for (int i = 0; i < 12; ++i)
      if (w == months[i]) return i + 1;
  } else if (f == cron_field::day_of_week) {
    for (int i = 0; i < 7; ++i)
      if (w == days[i]) return i;
  }
  return -1;
}

/// Parses one field into `s`; returns the problem (without position) or "".
class field_parser {
 public:
  field_parser(cron_field f, std::string_view text, schedule& s)
      : f_(f), info_(field_info(f)), text_(text), s_(s) {}

  std::string run() {
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = text_.find(',', start);
      const std::string_view element = text_.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      if (element.empty()) return "empty list element in " + detail::quoted(text_);
      if (auto problem = element_(element); !problem.empty()) return problem;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return "";
  }

 private:
  bool is_day_of_month() const { return f_ == cron_field::day_of_month; }
  bool is_day_of_week() const { return f_ == cron_field::day_of_week; }

  void add_(int v) {
    if (is_day_of_week() && v == 7) v = 0;
    values_().add(v);
  }
  value_set& values_() {
    switch (f_) {
      case cron_field::second:
        return s_.seconds;
      case cron_field::minute:
        return s_.minutes;
      case cron_field::hour:
        return s_.hours;
      case cron_field::day_of_month:
        return s_.days_of_month;
      case cron_field::month:
        return s_.months;
      case cron_field::day_of_week:
        return s_.days_of_week;
    }
    return s_.seconds;
  }

  // Reads a number or a name at pos_; value in `out`. Returns the problem or "".
  std::string value_(std::string_view el, int& out) {
    const std::size_t start = pos_;
    if (pos_ < el.size() && std::isdigit(static_cast<unsigned char>(el[pos_]))) {
      std::int64_t v = 0;
      while (pos_ < el.size() && std::isdigit(static_cast<unsigned char>(el[pos_]))) {
        if (v < 1'000'000) v = v * 10 + (el[pos_] - '0');
        ++pos_;
      }
      if (v < info_.min || v > info_.max) {
        return detail::quoted(el.substr(start, pos_ - start)) + " out of range " +
               std::to_string(info_.min) + "-" + std::to_string(info_.max);
      }
      out = static_cast<int>(v);
      return "";
    }
    while (pos_ < el.size() && std::isalpha(static_cast<unsigned char>(el[pos_]))) ++pos_;
    std::string_view word = el.substr(start, pos_ - start);
    if (word.empty()) {
      return pos_ < el.size()
                 ? "unexpected " + detail::quoted(el.substr(pos_, 1)) + " in " + detail::quoted(el)
                 : "missing value in " + detail::quoted(el);
    }
    int v = name_value(f_, word);
    // `FRIL`: a weekday name glued to `L`.
    if (v < 0 && is_day_of_week() && word.size() > 1 &&
        (word.back() == 'L' || word.back() == 'l') &&
        name_value(f_, word.substr(0, word.size() - 1)) >= 0) {
      --pos_;
      v = name_value(f_, word.substr(0, word.size() - 1));
    }
    if (v < 0) {
      if (f_ == cron_field::month || is_day_of_week())
        return "unknown name " + detail::quoted(word);
      return detail::quoted(word) + " is not a number";
    }
    out = v;
    return "";
  }

  std::string step_(std::string_view el, int& step) {
    const std::size_t start = pos_;
    std::int64_t v = 0;
    while (pos_ < el.size() && std::isdigit(static_cast<unsigned char>(el[pos_]))) {
      if (v < 1'000'000) v = v * 10 + (el[pos_] - '0');
      ++pos_;
    }
    const std::string_view digits = el.substr(start, pos_ - start);
    if (digits.empty()) {
      return "step " + detail::quoted(el.substr(start)) + " is not a number";
    }
    if (pos_ < el.size())
      return "unexpected " + detail::quoted(el.substr(pos_)) + " after step in " +
             detail::quoted(el);
    if (v == 0) return "step 0";
    const int span = info_.max - info_.min + 1;
    if (v > span)
      return "step " + std::string(digits) + " larger than the field's range " +
             std::to_string(info_.min) + "-" + std::to_string(info_.max);
    step = static_cast<int>(v);
    return "";
  }

  std::string element_(std::string_view el) {
    pos_ = 0;
    const std::string up = upper(el);
    if (el == "?" && (is_day_of_month() || is_day_of_week())) el = "*";
    if (el[0] == '*') {
      int step = 1;
      if (el.size() > 1) {
        if (el[1] != '/') return "unexpected " + detail::quoted(el.substr(1)) + " after \"*\"";
        pos_ = 2;
        if (auto p = step_(el, step); !p.empty()) return p;
      }
      for (int v = info_.min; v <= info_.step_end; v += step) add_(v);
      return "";
    }
    if (is_day_of_month() && (up == "L" || up == "LW")) {
      (up == "L" ? s_.last_day : s_.last_weekday) = true;
      return "";
    }
    int lo = 0;
    if (auto p = value_(el, lo); !p.empty()) return p;
    if (pos_ == el.size()) {
      add_(lo);
      return "";
    }
    const char next = static_cast<char>(std::toupper(static_cast<unsigned char>(el[pos_])));
    if (next == 'W' || next == 'L' || next == '#') return extension_(el, lo, next);
    int hi = lo;
    int step = 1;
    if (el[pos_] == '-') {
      ++pos_;
      if (auto p = value_(el, hi); !p.empty()) return p;
      if (is_day_of_week() && hi == 0 && lo > 0) hi = 7;  // FRI-SUN
      if (hi < lo) return "range " + detail::quoted(el.substr(0, pos_)) + " runs backwards";
      if (pos_ < el.size() && el[pos_] != '/')
        return "unexpected " + detail::quoted(el.substr(pos_)) + " in " + detail::quoted(el);
    } else if (el[pos_] == '/') {
      hi = info_.step_end;  // `5/15`: from 5 to the field's end
      if (lo > hi) hi = lo;
    } else {
      return "unexpected " + detail::quoted(el.substr(pos_)) + " in " + detail::quoted(el);
    }
    if (pos_ < el.size()) {
      ++pos_;  // the '/'
      if (auto p = step_(el, step); !p.empty()) return p;
    }
    for (int v = lo; v <= hi; v += step) add_(v);
    return "";
  }

  // `15W` (day of month), `5L` and `5#3` (day of week).
  std::string extension_(std::string_view el, int value, char kind) {
    ++pos_;
    const int weekday = value == 7 ? 0 : value;
    if (kind == 'W' && is_day_of_month() && pos_ == el.size()) {
      s_.nearest_weekday.add(value);
      return "";
    }
    if (kind == 'L' && is_day_of_week() && pos_ == el.size()) {
      s_.last_of_weekday.add(weekday);
      return "";
    }
    if (kind == '#' && is_day_of_week()) {
      std::int64_t k = 0;
      const std::size_t start = pos_;
      while (pos_ < el.size() && std::isdigit(static_cast<unsigned char>(el[pos_]))) {
        if (k < 1000) k = k * 10 + (el[pos_] - '0');
        ++pos_;
      }
      if (pos_ != el.size() || pos_ == start)
        return "\"#\" needs a number 1-5 in " + detail::quoted(el);
      if (k < 1 || k > 5)
        return "occurrence " + detail::quoted(el.substr(start)) + " out of range 1-5 in " +
               detail::quoted(el);
      s_.nth_weekday[static_cast<std::size_t>(weekday)].add(static_cast<int>(k));
      return "";
    }
    const bool right_field = kind == 'W' ? is_day_of_month() : is_day_of_week();
    if (right_field)
      return "unexpected " + detail::quoted(el.substr(pos_)) + " in " + detail::quoted(el);
    return "\"" + std::string(1, kind) + "\" after a value is only allowed in the " +
           (kind == 'W' ? "day-of-month" : "day-of-week") + " field (" + detail::quoted(el) + ")";
  }

  cron_field f_;
  cron_field_info info_;
  std::string_view text_;
  schedule& s_;
  std::size_t pos_ = 0;
};

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

inline std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

/// `@every DURATION` into `s`: the problem, or "" when it parsed.
inline std::string parse_every(const std::vector<std::string_view>& fields, schedule& s) {
  if (fields.size() != 2)
    return fields.size() == 1
               ? "@every needs a duration, e.g. \"@every 10m\""
               : "unexpected " + detail::quoted(fields[2]) + " after the @every duration";
  std::string problem;
  if (!parse_duration_into(fields[1], s.period, problem))
    return "@every duration " + detail::quoted(fields[1]) + ": " + problem;
  if (s.period.count() <= 0)
    return "@every duration " + detail::quoted(fields[1]) + " must be greater than zero";
  s.form = schedule::form_t::every;
  return {};
}

/// The five fields a macro stands for (`@daily` -> "0 0 * * *"), or nullptr.
inline const char* macro_expansion(const std::string& upper_macro) {
  const std::string& m = upper_macro;
  return m == "@YEARLY" || m == "@ANNUALLY"  ? "0 0 1 1 *"
         : m == "@MONTHLY"                   ? "0 0 1 * *"
         : m == "@WEEKLY"                    ? "0 0 * * 0"
         : m == "@DAILY" || m == "@MIDNIGHT" ? "0 0 * * *"
         : m == "@HOURLY"                    ? "0 * * * *"
                                             : nullptr;
}

/// Five or six cron fields into `s`: the problem, or "" when they parsed.
inline std::string parse_cron_fields(const std::vector<std::string_view>& fields, schedule& s) {
  if (fields.size() != 5 && fields.size() != 6) {
    return "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with seconds "
           "first), got " +
           std::to_string(fields.size());
  }
  const std::size_t skip = fields.size() == 5 ? 1 : 0;  // without a seconds field, second 0
  if (skip) s.seconds.add(0);
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto f = static_cast<cron_field>(i + skip);
    if (auto problem = field_parser(f, fields[i], s).run(); !problem.empty()) {
      return problem + " at field " + std::to_string(i + 1) + " (" + field_info(f).name + ")";
    }
    const bool star = fields[i][0] == '*' || fields[i][0] == '?';
    if (f == cron_field::hour) s.hour_star = star;
    if (f == cron_field::day_of_month) s.dom_star = star;
    if (f == cron_field::day_of_week) s.dow_star = star;
  }
  if (!fires_on_some_day(s))
    return "never fires: no date matches its day-of-month, month and day-of-week fields";
  return {};
}

}  // namespace schedule_parsing

/// Parses a schedule (see schedule.hpp for the language).
inline result<schedule> parse_schedule(std::string_view text) {
  using namespace schedule_parsing;
  auto fail = [&text](const std::string& problem) {
    return conch::error{errc::invalid_argument,
                        "schedule " + detail::quoted(text) + ": " + problem};
  };
  const std::vector<std::string_view> fields = split_fields(text);
  if (fields.empty()) return fail("empty");

  schedule s;
  if (fields[0][0] != '@') {
    if (auto problem = parse_cron_fields(fields, s); !problem.empty()) return fail(problem);
    return s;
  }
  const std::string macro = upper(fields[0]);
  if (macro == "@EVERY") {
    if (auto problem = parse_every(fields, s); !problem.empty()) return fail(problem);
    return s;
  }
  const char* expansion = macro_expansion(macro);
  if (!expansion) {
    return fail(
        "unknown macro " + detail::quoted(fields[0]) +
        " (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every)");
  }
  if (fields.size() > 1)
    return fail("unexpected " + detail::quoted(fields[1]) + " after " + detail::quoted(fields[0]));
  return parse_schedule(expansion);
}

}  // namespace conch::detail
