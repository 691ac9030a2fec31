// The daemon's plan of next ticks, on plain chrono time points (no clock).
#include "conch/logic/cron_agenda.hpp"

#include <catch2/catch.hpp>
#include <chrono>

using namespace std::chrono_literals;
using tp = std::chrono::sys_time<std::chrono::milliseconds>;
using conch::detail::cron_agenda;
using conch::detail::is_stale_tick;
using conch::detail::resume_point;

TEST_CASE("the agenda wakes at the earliest planned tick", "[cron]") {
  cron_agenda<tp> a;
  CHECK_FALSE(a.earliest());
  a.plan("b", tp{5s});
  a.plan("a", tp{3s});
  CHECK(a.earliest() == tp{3s});
  a.plan("a", tp{9s});  // replanning replaces
  CHECK(a.earliest() == tp{5s});
  CHECK(a.size() == 2);
  a.drop("b");
  CHECK(a.earliest() == tp{9s});
  a.drop("nobody");
  CHECK(a.size() == 1);
}

TEST_CASE("take_due hands out due ticks in order and forgets them", "[cron]") {
  cron_agenda<tp> a;
  a.plan("c", tp{7s});
  a.plan("a", tp{2s});
  a.plan("b", tp{2s});
  CHECK(a.take_due(tp{1s}).empty());
  auto due = a.take_due(tp{2s});
  REQUIRE(due.size() == 2);
  CHECK(due[0].job == "a");
  CHECK(due[1].job == "b");
  CHECK(due[0].tick == tp{2s});
  CHECK_FALSE(a.planned("a"));
  CHECK(a.planned("c") == tp{7s});
  CHECK(a.earliest() == tp{7s});
}

TEST_CASE("counting resumes from the later of tick and now: no late burst", "[cron]") {
  CHECK(resume_point(tp{10s}, tp{10s + 20ms}) == tp{10s + 20ms});
  CHECK(resume_point(tp{10s}, tp{9s}) == tp{10s});  // woke early (clock stepped back)
  // A daemon stalled for a minute on an @every 1s job: the next plan starts
  // after now, so the 59 missed ticks are never fired late.
  auto every_second = [](tp after) { return std::chrono::floor<std::chrono::seconds>(after) + 1s; };
  CHECK(every_second(resume_point(tp{10s}, tp{70s + 300ms})) == tp{71s});
}

TEST_CASE("a tick is shed once its successor is due", "[cron]") {
  // @every 1s: tick 10s, successor 11s.
  CHECK_FALSE(is_stale_tick(tp{10s}, tp{11s}));
  CHECK_FALSE(is_stale_tick(tp{10s + 999ms}, tp{11s}));
  CHECK(is_stale_tick(tp{11s}, tp{11s}));
  CHECK(is_stale_tick(tp{95s}, tp{11s}));  // an overloaded daemon 84 s behind runs nothing stale
}
