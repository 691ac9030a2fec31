// Schedule properties against an independent model: random schedules are
// generated as text together with the sets of values they mean (computed
// here, not by the parser), days are matched with std::chrono's calendar,
// and ticks are found by brute force, second by second (UTC) or minute by
// minute with the DST rule simulated directly (wall-time jobs: the first
// instant the clock shows a matching wall time it has never shown before;
// elapsed-time jobs: every instant whose wall time matches).
#include "conch/logic/schedule.hpp"

#include <absl/time/civil_time.h>
#include <absl/time/time.h>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <rapidcheck/catch.h>
#include <string>
#include <utility>
#include <vector>

namespace cd = conch::detail;
using namespace std::chrono;

namespace {

// ---- the model ----

struct model_field {
  std::string text;
  std::uint64_t values = 0;  // bit v: value v allowed (day of week: 0-6, Sunday 0)
  bool star = false;         // written starting with '*'
  bool allows(int v) const { return (values >> v) & 1U; }
};

struct model_schedule {
  std::array<model_field, 6> fields;  // second, minute, hour, day of month, month, day of week
  bool six_fields = true;
  bool last_day = false, last_weekday = false;
  std::vector<int> nearest;              // nW
  std::vector<int> last_of;              // dL
  std::vector<std::pair<int, int>> nth;  // d#k

  std::string text() const {
    std::string out;
    for (std::size_t i = six_fields ? 0 : 1; i < 6; ++i) out += fields[i].text + (i < 5 ? " " : "");
    return out;
  }
};

struct field_limits {
  int lo, hi, end;
};
constexpr std::array<field_limits, 6> limits{
    {{0, 59, 59}, {0, 59, 59}, {0, 23, 23}, {1, 31, 31}, {1, 12, 12}, {0, 7, 6}}};

std::string name_or_number(std::size_t field, int v) {
  static const char* months[] = {"jan", "Feb", "MAR", "apr", "May", "JUN",
                                 "jul", "Aug", "SEP", "oct", "Nov", "DEC"};
  static const char* days[] = {"sun", "Mon", "TUE", "wed", "Thu", "FRI", "sat"};
  if (field == 4 && *rc::gen::inRange(0, 3) == 0) return months[v - 1];
  if (field == 5 && v < 7 && *rc::gen::inRange(0, 3) == 0) return days[v];
  return std::to_string(v);
}

model_field gen_field(std::size_t field, int star_odds) {
  const auto [lo, hi, end] = limits[field];
  model_field f;
  // Day of week 7 is Sunday again.
  auto add = [&f, field](int v) { f.values |= std::uint64_t{1} << (field == 5 && v == 7 ? 0 : v); };
  if (*rc::gen::inRange(0, 100) < star_odds) {
    f.text = "*";
    f.star = true;
    for (int v = lo; v <= end; ++v) add(v);
    return f;
  }
  const int elements = *rc::gen::inRange(1, 4);
  for (int e = 0; e < elements; ++e) {
    std::string t;
    const int kind = *rc::gen::inRange(0, 6);
    const int step = *rc::gen::inRange(1, hi - lo + 2);
    int a = *rc::gen::inRange(lo, hi + 1);
    int b = *rc::gen::inRange(lo, hi + 1);
    if (a > b) std::swap(a, b);
    switch (kind) {
      case 0:
        t = "*";
        for (int v = lo; v <= end; ++v) add(v);
        break;
      case 1:
        t = "*/" + std::to_string(step);
        for (int v = lo; v <= end; v += step) add(v);
        break;
      case 2:
        t = name_or_number(field, a);
        add(a);
        break;
      case 3:
        t = name_or_number(field, a) + "-" + (b == 7 ? "7" : name_or_number(field, b));
        for (int v = a; v <= b; ++v) add(v);
        break;
      case 4:
        t = std::to_string(a) + "-" + std::to_string(b) + "/" + std::to_string(step);
        for (int v = a; v <= b; v += step) add(v);
        break;
      default:
        t = std::to_string(a) + "/" + std::to_string(step);
        for (int v = a; v <= std::max(a, end); v += step) add(v);
        break;
    }
    if (e == 0) f.star = kind <= 1;
    f.text += (e ? "," : "") + t;
  }
  return f;
}

// A random schedule; `dense` biases towards schedules that fire often, so a
// bounded brute-force scan finds their ticks.
model_schedule gen_schedule(bool allow_seconds, bool allow_extensions) {
  model_schedule m;
  m.six_fields = allow_seconds && *rc::gen::inRange(0, 2) == 0;
  m.fields[0] = m.six_fields ? gen_field(0, 30) : model_field{"0", 1, false};
  m.fields[1] = gen_field(1, 30);
  m.fields[2] = gen_field(2, 40);
  m.fields[3] = gen_field(3, 60);
  m.fields[4] = gen_field(4, 70);
  m.fields[5] = gen_field(5, 60);
  if (allow_extensions && *rc::gen::inRange(0, 4) == 0) {
    auto& dom = m.fields[3];
    auto& dow = m.fields[5];
    switch (*rc::gen::inRange(0, 5)) {
      case 0:
        m.last_day = true;
        dom.text += ",L";
        break;
      case 1:
        m.last_weekday = true;
        dom.text += ",LW";
        break;
      case 2: {
        const int n = *rc::gen::inRange(1, 32);
        m.nearest.push_back(n);
        dom.text += "," + std::to_string(n) + "W";
        break;
      }
      case 3: {
        const int d = *rc::gen::inRange(0, 7);
        m.last_of.push_back(d);
        dow.text += "," + std::to_string(d) + "L";
        break;
      }
      default: {
        const int d = *rc::gen::inRange(0, 7), k = *rc::gen::inRange(1, 6);
        m.nth.emplace_back(d, k);
        dow.text += "," + std::to_string(d) + "#" + std::to_string(k);
        break;
      }
    }
  }
  return m;
}

int weekday_of(year_month_day ymd) { return static_cast<int>(weekday(sys_days(ymd)).c_encoding()); }

bool model_day(const model_schedule& m, int y, unsigned mo, unsigned d) {
  const year_month_day ymd{year(y), month(mo), day(d)};
  const unsigned last =
      static_cast<unsigned>(year_month_day_last(year(y), month_day_last(month(mo))).day());
  const int wd = weekday_of(ymd);
  auto is_weekday = [&](unsigned x) {
    const int w = weekday_of(year_month_day{year(y), month(mo), day(x)});
    return w >= 1 && w <= 5;
  };
  bool dom = m.fields[3].allows(static_cast<int>(d)) || (m.last_day && d == last);
  if (m.last_weekday) {
    unsigned x = last;
    while (!is_weekday(x)) --x;
    dom = dom || d == x;
  }
  for (int n : m.nearest) {
    if (static_cast<unsigned>(n) > last) continue;
    // The Monday-Friday of the month closest to n.
    unsigned best = 0;
    for (unsigned x = 1; x <= last; ++x) {
      if (is_weekday(x) && (best == 0 || std::abs(int(x) - n) < std::abs(int(best) - n))) best = x;
    }
    dom = dom || d == best;
  }
  bool dow = m.fields[5].allows(wd);
  for (int l : m.last_of) dow = dow || (wd == l && d + 7 > last);
  for (auto [w, k] : m.nth) {
    int count = 0;
    for (unsigned x = 1; x <= d; ++x)
      count += weekday_of(year_month_day{year(y), month(mo), day(x)}) == w;
    dow = dow || (wd == w && count == k);
  }
  return m.fields[3].star || m.fields[5].star ? dom && dow : dom || dow;
}

bool model_matches(const model_schedule& m, int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return m.fields[0].allows(s) && m.fields[1].allows(mi) && m.fields[2].allows(h) &&
         m.fields[4].allows(static_cast<int>(mo)) && model_day(m, y, mo, d);
}

bool model_matches(const model_schedule& m, absl::CivilSecond c) {
  return model_matches(m, static_cast<int>(c.year()), static_cast<unsigned>(c.month()),
                       static_cast<unsigned>(c.day()), c.hour(), c.minute(), c.second());
}

bool model_fires_at_all(const model_schedule& m) {
  for (int y = 2000; y < 2400; ++y)
    for (unsigned mo = 1; mo <= 12; ++mo) {
      if (!m.fields[4].allows(static_cast<int>(mo))) continue;
      const unsigned last =
          static_cast<unsigned>(year_month_day_last(year(y), month_day_last(month(mo))).day());
      for (unsigned d = 1; d <= last; ++d)
        if (model_day(m, y, mo, d)) return true;
    }
  return false;
}

// First tick strictly after `after` (UTC), scanning second by second up to `horizon`.
std::optional<sys_seconds> model_next_utc(const model_schedule& m, sys_seconds after,
                                          seconds horizon) {
  for (sys_seconds t = after + 1s; t <= after + horizon; t += 1s) {
    const auto day_start = floor<days>(t);
    const hh_mm_ss hms{t - day_start};
    if (!m.fields[0].allows(static_cast<int>(hms.seconds().count())) ||
        !m.fields[1].allows(static_cast<int>(hms.minutes().count())) ||
        !m.fields[2].allows(static_cast<int>(hms.hours().count()))) {
      continue;
    }
    const year_month_day ymd{day_start};
    if (model_matches(m, int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()),
                      static_cast<int>(hms.hours().count()),
                      static_cast<int>(hms.minutes().count()),
                      static_cast<int>(hms.seconds().count()))) {
      return t;
    }
  }
  return std::nullopt;
}

// First tick strictly after `after` in zone `tz` for a five-field schedule,
// simulating the clock minute by minute from two days earlier.
std::optional<absl::Time> model_next_in_zone(const model_schedule& m, absl::Time after,
                                             const absl::TimeZone& tz, absl::Duration horizon) {
  const bool elapsed = m.fields[2].star;
  const absl::Time first =
      absl::FromUnixSeconds(absl::ToUnixSeconds(after) / 60 * 60) + absl::Minutes(1);
  std::optional<absl::CivilSecond> shown;  // the latest wall time shown so far
  for (absl::Time t = first - absl::Hours(48); t <= after + horizon; t += absl::Minutes(1)) {
    const absl::CivilSecond wall = tz.At(t).cs;
    if (t >= first) {
      if (elapsed) {
        if (model_matches(m, wall)) return t;
      } else {
        for (absl::CivilSecond c = shown ? *shown + 60 : wall; c <= wall; c += 60) {
          if (model_matches(m, c)) return t;
        }
      }
    }
    if (!shown || wall > *shown) shown = wall;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("schedule properties: the parser agrees with the model") {
  rc::prop("sets, never-fires verdict and canonical text", [] {
    const model_schedule m = gen_schedule(true, true);
    const auto s = cd::parse_schedule(m.text());
    if (!s) {
      RC_LOG() << s.error().message;
      RC_ASSERT(s.error().message.find("never fires") != std::string::npos);
      RC_ASSERT(!model_fires_at_all(m));
      return;
    }
    RC_ASSERT(s->seconds.bits == m.fields[0].values);
    RC_ASSERT(s->minutes.bits == m.fields[1].values);
    RC_ASSERT(s->hours.bits == m.fields[2].values);
    RC_ASSERT(s->days_of_month.bits == m.fields[3].values);
    RC_ASSERT(s->months.bits == m.fields[4].values);
    RC_ASSERT(s->days_of_week.bits == m.fields[5].values);
    RC_ASSERT(s->hour_star == m.fields[2].star);
    RC_ASSERT(s->dom_star == m.fields[3].star);
    RC_ASSERT(s->dow_star == m.fields[5].star);
    const auto again = cd::parse_schedule(s->to_string());
    RC_ASSERT(again.ok());
    RC_ASSERT(*again == *s);
    RC_ASSERT(again->to_string() == s->to_string());
  });
}

TEST_CASE("schedule properties: next tick equals a second-by-second scan (UTC)") {
  rc::prop("next_tick == brute force", [] {
    const model_schedule m = gen_schedule(true, true);
    const auto s = cd::parse_schedule(m.text());
    RC_PRE(s.ok());
    const sys_seconds after{
        seconds(*rc::gen::inRange<std::int64_t>(946684800, 4102444800))};  // 2000-2100
    const auto horizon = days(3);
    const auto want = model_next_utc(m, after, horizon);
    const auto got = cd::next_tick(*s, after + milliseconds(*rc::gen::inRange(0, 1000)));
    RC_TAG(want ? "tick within the scan" : "no tick within the scan");
    RC_ASSERT(got.ok());
    if (want) {
      RC_ASSERT(*got == *want);
    } else {
      RC_ASSERT(*got > after + horizon);
    }
  });
}

TEST_CASE(
    "schedule properties: next tick equals a minute-by-minute simulation of the DST rule "
    "(New York, Berlin, Lord Howe)") {
  const std::array<const char*, 3> names{"America/New_York", "Europe/Berlin",
                                         "Australia/Lord_Howe"};
  std::vector<cd::zone> zones;
  for (const char* n : names) zones.push_back(*cd::load_zone(n));
  rc::prop("next_tick == simulation near a DST change", [&] {
    const cd::zone& z = zones[*rc::gen::inRange<std::size_t>(0, zones.size())];
    model_schedule m = gen_schedule(false, false);
    // Hours around the changes (01:00-03:00) make the interesting cases common.
    if (*rc::gen::inRange(0, 2) == 0) {
      m.fields[2] = model_field{"1-3", 0b1110, false};
      if (*rc::gen::inRange(0, 2) == 0)
        m.fields[2] = model_field{"*/" + std::to_string(*rc::gen::inRange(1, 4)), 0, true};
      if (m.fields[2].star) {
        const int step = std::stoi(m.fields[2].text.substr(2));
        for (int h = 0; h < 24; h += step) m.fields[2].values |= std::uint64_t{1} << h;
      }
    }
    const auto s = cd::parse_schedule(m.text());
    RC_PRE(s.ok());
    // Just before or after one of the zone's offset changes in 2000-2037.
    absl::TimeZone::CivilTransition tr;
    const absl::Time year_start =
        absl::FromCivil(absl::CivilSecond(*rc::gen::inRange(2000, 2038), 1, 1), z.rules());
    RC_ASSERT(
        z.rules().NextTransition(year_start + absl::Hours(24 * *rc::gen::inRange(0, 300)), &tr));
    const absl::Time change = z.rules().At(tr.to).trans;
    // Several instants per case: one anywhere in a day and a half around the
    // change, the rest within an hour of it (inside a repeated hour, often).
    std::vector<int> offsets{*rc::gen::inRange(-36 * 3600, 12 * 3600),
                             *rc::gen::inRange(-4 * 3600, 0)};
    for (int i = 0; i < 6; ++i) offsets.push_back(*rc::gen::inRange(-3600, 3600));
    for (std::size_t i = 0; i < offsets.size(); ++i) {
      const absl::Time after = change + absl::Seconds(offsets[i]);
      RC_LOG() << m.text() << " in " << z.name() << " after " << absl::FormatTime(after, z.rules());
      const auto want = model_next_in_zone(m, after, z.rules(), absl::Hours(72));
      const auto got = cd::next_tick(*s, absl::ToChronoTime(after), z);
      RC_ASSERT(got.ok());
      const bool near_change = want && absl::AbsDuration(*want - change) <= absl::Hours(2);
      if (i + 1 == offsets.size()) {
        RC_TAG(m.fields[2].star ? "elapsed-time" : "wall-time", tr.from < tr.to ? "spring" : "fall",
               near_change ? "tick near the change" : "tick away from the change");
      }
      if (want) {
        RC_ASSERT(absl::FormatTime(absl::FromChrono(*got), z.rules()) ==
                  absl::FormatTime(*want, z.rules()));
      } else {
        RC_ASSERT(absl::FromChrono(*got) > after + absl::Hours(72));
      }
    }
  });
}

TEST_CASE("schedule properties: ticks are strictly increasing and none is skipped") {
  const std::array<const char*, 4> names{"UTC", "America/New_York", "Europe/Berlin",
                                         "Australia/Lord_Howe"};
  std::vector<cd::zone> zones;
  for (const char* n : names) zones.push_back(*cd::load_zone(n));
  rc::prop("next(t) > t, next(tick - 1s) == tick, next is monotone", [&] {
    const cd::zone& z = zones[*rc::gen::inRange<std::size_t>(0, zones.size())];
    const bool every = *rc::gen::inRange(0, 5) == 0;
    const std::string text = every
                                 ? "@every " + std::to_string(*rc::gen::inRange(1, 100'000)) + "ms"
                                 : gen_schedule(true, true).text();
    const auto s = cd::parse_schedule(text);
    RC_PRE(s.ok());
    const auto resolution = every ? duration_cast<system_clock::duration>(1ms)
                                  : duration_cast<system_clock::duration>(1s);
    const system_clock::time_point after{
        milliseconds(*rc::gen::inRange<std::int64_t>(946684800000, 4102444800000))};
    const auto t1 = cd::next_tick(*s, after, z);
    RC_ASSERT(t1.ok());
    RC_ASSERT(*t1 > after);
    const auto t2 = cd::next_tick(*s, *t1, z);
    RC_ASSERT(t2.ok());
    RC_ASSERT(*t2 > *t1);
    const auto again = cd::next_tick(*s, *t1 - resolution, z);
    RC_ASSERT(again.ok());
    RC_ASSERT(*again == *t1);
    // Any instant between `after` and the tick leads to the same tick.
    const auto span = duration_cast<milliseconds>(*t1 - after).count();
    const auto mid = after + milliseconds(*rc::gen::inRange<std::int64_t>(0, span));
    const auto t_mid = cd::next_tick(*s, mid, z);
    RC_ASSERT(t_mid.ok());
    RC_ASSERT(*t_mid == *t1);
  });
}
