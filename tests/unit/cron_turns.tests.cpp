// When a daemon that is not first for a tick takes its turn
// (logic/cron_turns.hpp), on a fake clock.
#include "conch/logic/cron_turns.hpp"

#include "conch/policies/clock.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>

using namespace std::chrono_literals;
using conch::detail::cron_pace;
using conch::detail::cron_turn;
using conch::detail::cron_turn_cap;
using conch::detail::cron_turn_step;

TEST_CASE("the first daemon claims on time; the next ones a step apart when no queue waits",
          "[cron]") {
  CHECK(cron_turn(0, 5000, 3ms, 10s) == 0ms);
  CHECK(cron_turn(1, 0, 3ms, 10s) == cron_turn_step);
  CHECK(cron_turn(2, 0, 3ms, 10s) == 2 * cron_turn_step);
}

TEST_CASE("a turn waits out the first daemon's likely queue, at most the cap", "[cron]") {
  // 1,000 ticks ahead at 2 ms each: the first daemon reaches this one ~2 s in.
  CHECK(cron_turn(1, 1000, 2ms, 10s) == cron_turn_step + 2s);
  CHECK(cron_turn(2, 1000, 2ms, 10s) == 2 * (cron_turn_step + 2s));
  // The turn grows with the tick's place in the burst...
  CHECK(cron_turn(1, 10, 2ms, 10s) < cron_turn(1, 100, 2ms, 10s));
  // ...but a dead daemon's ticks wait no longer than the cap, however long the queue.
  CHECK(cron_turn(1, 100'000, 2ms, 10s) == 10s);
  CHECK(cron_turn(3, 1'000'000'000, 1s, 10s) == 10s);
  CHECK(cron_turn(1'000'000, 0, 1ms, 10s) == 10s);
}

TEST_CASE("the cap is half a job's period, between a step and ten seconds", "[cron]") {
  CHECK(cron_turn_cap(1s) == 500ms);
  CHECK(cron_turn_cap(60s) == 10s);
  CHECK(cron_turn_cap(100ms) == cron_turn_step);
  // An @every 1s tick is never deferred past its successor (when it would be shed).
  CHECK(cron_turn(2, 100'000, 5ms, cron_turn_cap(1s)) < 1s);
}

TEST_CASE("the pace is measured only while a backlog waits", "[cron]") {
  conch::fake_clock<> clock;
  cron_pace<conch::fake_clock<>::time_point> pace{1ms};
  CHECK(pace.per_tick() == 1ms);  // nothing measured yet
  // Idle takes (nothing left queued) tell arrivals, not pace.
  pace.took(clock.now(), 0);
  clock.advance(500ms);
  pace.took(clock.now(), 0);
  CHECK(pace.per_tick() == 1ms);
  // A backlog worked through at 4 ms a tick.
  for (std::size_t left = 100; left-- > 0;) {
    clock.advance(4ms);
    pace.took(clock.now(), left);
  }
  CHECK(pace.per_tick() == 4ms);
  // The pool goes idle, and a later tick comes long after: not a sample.
  clock.advance(30s);
  pace.took(clock.now(), 3);
  CHECK(pace.per_tick() == 4ms);
  // The pace follows a slower backlog, step by step.
  for (std::size_t left = 50; left-- > 0;) {
    clock.advance(8ms);
    pace.took(clock.now(), left + 1);
  }
  CHECK(pace.per_tick() > 7ms);
  CHECK(pace.per_tick() <= 8ms);
}
