// Schedule text: never crashes or hangs; bad input is a one-line error; good
// input round-trips through its canonical text, and its ticks move forward
// in UTC and across DST changes.
#include "conch/logic/schedule.hpp"

#include "fuzz_check.hpp"

#include <chrono>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace cd = conch::detail;
  using namespace std::chrono;
  const auto s = cd::parse_schedule(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!s) {
    CONCH_FUZZ_CHECK(s.error().code == conch::errc::invalid_argument);
    CONCH_FUZZ_CHECK(!s.error().message.empty() &&
                     s.error().message.find('\n') == std::string::npos);
    return 0;
  }
  const auto again = cd::parse_schedule(s->to_string());
  CONCH_FUZZ_CHECK(again.ok() && *again == *s && again->to_string() == s->to_string());

  static const cd::zone zones[] = {cd::zone::utc(), *cd::load_zone("America/New_York"),
                                   *cd::load_zone("Australia/Lord_Howe")};
  // Just before DST changes in New York and Lord Howe, and an ordinary day.
  static const system_clock::time_point afters[] = {
      system_clock::time_point(seconds(1710052200)),  // 2024-03-10 06:30 UTC
      system_clock::time_point(seconds(1730608200)),  // 2024-11-03 04:30 UTC
      system_clock::time_point(seconds(1712414700)),  // 2024-04-06 14:45 UTC
      system_clock::time_point(seconds(1705320000) + milliseconds(1)),
  };
  for (const auto& z : zones) {
    for (const auto after : afters) {
      const auto t = cd::next_tick(*s, after, z);
      if (!t) {
        CONCH_FUZZ_CHECK(t.error().code == conch::errc::invalid_argument);
        continue;
      }
      CONCH_FUZZ_CHECK(*t > after);
      const auto step = s->form == cd::schedule::form_t::every
                            ? system_clock::duration(milliseconds(1))
                            : system_clock::duration(seconds(1));
      const auto same = cd::next_tick(*s, *t - step, z);
      CONCH_FUZZ_CHECK(same.ok() && *same == *t);
      const auto later = cd::next_tick(*s, *t, z);
      CONCH_FUZZ_CHECK(!later.ok() || *later > *t);
    }
  }
  return 0;
}
