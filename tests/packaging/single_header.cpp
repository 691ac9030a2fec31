// Compiled with single_include/ as conch's only include directory: the single
// header conch/conch.hpp stands alone (plus the system libraries it names).
#include <conch/conch.hpp>
#include <iostream>
#include <string>

namespace {
conch::result<int> parse_count(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return conch::error{conch::errc::invalid_argument, "not a count: '" + text + "'"};
  return std::stoi(text);
}
}  // namespace

int main() {
  using namespace std::chrono_literals;
  auto good = parse_count("3");
  auto bad = parse_count("x");
  auto range = conch::range_request::prefix("conch/");
  // A little of the pure logic and a stock policy, so their templates are instantiated.
  auto every = conch::detail::parse_duration("1h30m");
  auto cron = conch::detail::parse_schedule("*/15 9-17 * * mon-fri");
  conch::fake_clock clock;
  auto start = clock.now();
  clock.advance(5s);
  bool ok = good && *good == 3 && !bad && bad.error() == conch::errc::invalid_argument &&
            range.range_end == "conch0" && every && *every == 90min && cron.ok() &&
            clock.now() - start == 5s;
  std::cout << (ok ? "single header ok" : "single header broken") << '\n';
  return ok ? 0 : 1;
}
