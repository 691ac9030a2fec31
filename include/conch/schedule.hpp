// conch/schedule.hpp — cron schedules and their ticks, for host applications.
//
//   auto s = conch::parse_schedule("*/15 9-17 * * mon-fri");          // result<schedule>
//   auto z = conch::load_zone("Europe/Berlin");                      // result<zone>
//   auto t = conch::next_tick(*s, std::chrono::system_clock::now(), *z);  // result<time_point>
//   s->to_string();                                                  // "*/15 9-17 * * 1-5"
//
// The language, the DST rules and the errors are described in
// conch/logic/schedule.hpp. Pure logic: the only I/O is abseil reading a time
// zone's rules on first load.
#pragma once

#include "conch/logic/schedule.hpp"

namespace conch {

using detail::load_zone;
using detail::next_tick;
using detail::parse_schedule;
using detail::schedule;
using detail::zone;

}  // namespace conch
