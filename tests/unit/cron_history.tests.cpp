// Claim/zombie classification, history pruning and the UTF-8 tail of cron runs.
#include "conch/logic/cron_history.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>
#include <string>
#include <vector>

using conch::detail::classify_run;
using conch::detail::prune_cutoff;
using conch::detail::run_state;
using conch::detail::utf8_tail;

TEST_CASE("a claimed tick is done, running or a zombie", "[cron]") {
  CHECK(classify_run(true, true) == run_state::done);
  CHECK(classify_run(true, false) == run_state::done);  // claimer died after recording
  CHECK(classify_run(false, true) == run_state::running);
  CHECK(classify_run(false, false) == run_state::zombie);
  CHECK(std::string(to_string(run_state::zombie)) == "zombie");
}

TEST_CASE("pruning keeps the newest ticks and cuts before the oldest kept", "[cron]") {
  const std::vector<std::string> ticks{"t1", "t2", "t3", "t4", "t5"};
  CHECK_FALSE(prune_cutoff(ticks, 5));
  CHECK_FALSE(prune_cutoff(ticks, 100));
  CHECK_FALSE(prune_cutoff(ticks, 0));  // unbounded
  CHECK(prune_cutoff(ticks, 4) == "t2");
  CHECK(prune_cutoff(ticks, 1) == "t5");
  CHECK_FALSE(prune_cutoff({}, 3));
}

TEST_CASE("pruning leaves exactly min(n, keep) ticks", "[cron]") {
  rc::prop("count after pruning", [](unsigned n8, unsigned k8) {
    const std::size_t n = n8 % 300, keep = 1 + k8 % 150;
    std::vector<std::string> ticks;
    for (std::size_t i = 0; i < n; ++i) {
      auto s = std::to_string(1000000 + i);  // fixed width: key order = time order
      ticks.push_back(s);
    }
    auto cut = prune_cutoff(ticks, keep);
    std::size_t left = n;
    if (cut)
      left = static_cast<std::size_t>(ticks.end() - std::find(ticks.begin(), ticks.end(), *cut));
    RC_ASSERT(left == std::min(n, keep));
  });
}

TEST_CASE("the UTF-8 tail is the last bytes, cut on a character boundary", "[cron]") {
  CHECK(utf8_tail("hello", 4096) == "hello");
  CHECK(utf8_tail("0123456789", 4) == "6789");
  // "é" is two bytes; a cut through it drops the orphaned continuation byte.
  CHECK(utf8_tail("ab\xC3\xA9xy", 3) == "xy");
  CHECK(utf8_tail("ab\xC3\xA9xy", 4) == "\xC3\xA9xy");
  // Bytes that are not UTF-8 become '?', so the record stays valid JSON text.
  CHECK(utf8_tail("a\xFF"
                  "b\xC0\xAF",
                  10) == "a?b??");
  CHECK(utf8_tail("\xED\xA0\x80", 10) == "???");  // a surrogate
  CHECK(utf8_tail("\xF0\x9F\x98\x80", 10) == "\xF0\x9F\x98\x80");
  std::string big(10000, 'x');
  big += "END";
  auto t = utf8_tail(big, 4096);
  CHECK(t.size() == 4096);
  CHECK(t.substr(t.size() - 3) == "END");
}

TEST_CASE("the UTF-8 tail never exceeds its cap and is valid UTF-8", "[cron]") {
  rc::prop("bounded", [](const std::string& s, unsigned c) {
    const std::size_t cap = c % 64;
    auto t = utf8_tail(s, cap);
    RC_ASSERT(t.size() <= cap);
    RC_ASSERT(utf8_tail(t, cap) == t);  // already clean: a fixed point
  });
}
