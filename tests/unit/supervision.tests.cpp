// The supervision core's decisions on a fake clock: SIGKILL timing, restart or
// finish, backoff reset after a stable child, exit-code mapping.
#include "conch/logic/supervision.hpp"

#include "conch/policies/clock.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>

using namespace std::chrono_literals;
using conch::detail::after_exit;
using conch::detail::child_status;
using conch::detail::exit_context;
using conch::detail::restart_rule;

namespace {

using clock_type = conch::fake_clock<>;

/// Doubles from 100 ms up to 1.6 s: a deterministic backoff to observe resets.
struct doubling_backoff {
  std::chrono::milliseconds current{0};
  std::chrono::milliseconds next() {
    current = current == 0ms ? 100ms : std::min<std::chrono::milliseconds>(current * 2, 1600ms);
    return current;
  }
  void reset() { current = 0ms; }
};

}  // namespace

TEST_CASE("exit code: the child's own code, or 128 + signal", "[supervision]") {
  CHECK(exit_code_of(child_status::exited(0)) == 0);
  CHECK(exit_code_of(child_status::exited(3)) == 3);
  CHECK(exit_code_of(child_status::exited(255)) == 255);
  CHECK(exit_code_of(child_status::signalled(SIGTERM)) == 143);
  CHECK(exit_code_of(child_status::signalled(SIGKILL)) == 137);
  CHECK(exit_code_of(child_status::signalled(SIGINT)) == 130);
}

TEST_CASE("kill sequence: SIGKILL exactly kill-after past the first SIGTERM", "[supervision]") {
  clock_type clock;
  conch::detail::kill_sequence<clock_type::time_point> seq{5s};
  CHECK_FALSE(seq.started());
  CHECK_FALSE(seq.kill_due(clock.now()));
  CHECK_FALSE(seq.kill_at());

  auto t0 = clock.now();
  CHECK(seq.start(t0));
  CHECK(seq.kill_at() == t0 + 5s);

  clock.advance(4999ms);
  CHECK_FALSE(seq.kill_due(clock.now()));
  // A second stop request does not postpone the SIGKILL.
  CHECK_FALSE(seq.start(clock.now()));
  clock.advance(1ms);
  CHECK(seq.kill_due(clock.now()));
  CHECK(seq.kill_at() == t0 + 5s);
}

TEST_CASE("kill sequence: kill-after zero kills at once", "[supervision]") {
  clock_type clock;
  conch::detail::kill_sequence<clock_type::time_point> seq{0s};
  seq.start(clock.now());
  CHECK(seq.kill_due(clock.now()));
}

TEST_CASE("after exit: finish without --restart, whatever the child did", "[supervision]") {
  restart_rule off{};
  CHECK(decide_after_exit(off, {}, 1s).next == after_exit::step::finish);
  CHECK(decide_after_exit(off, {}, 1h).next == after_exit::step::finish);
}

TEST_CASE("after exit: --restart restarts while holding, never after a stop or a loss",
          "[supervision]") {
  restart_rule on{.enabled = true};
  CHECK(decide_after_exit(on, {}, 1s) == after_exit{after_exit::step::restart, false});
  CHECK(decide_after_exit(on, {.stop_requested = true}, 1s).next == after_exit::step::finish);
  CHECK(decide_after_exit(on, {.lost = true}, 1s).next == after_exit::step::finish);
  CHECK(conch::detail::may_start_child({}));
  CHECK_FALSE(conch::detail::may_start_child({.stop_requested = true}));
  CHECK_FALSE(conch::detail::may_start_child({.lost = true}));
}

TEST_CASE("after exit: a child that ran stable_after (60 s default) resets the backoff",
          "[supervision]") {
  restart_rule on{.enabled = true};
  CHECK(on.stable_after == 60s);
  CHECK_FALSE(decide_after_exit(on, {}, 59999ms).reset_backoff);
  CHECK(decide_after_exit(on, {}, 60s).reset_backoff);
  restart_rule shortened{.enabled = true, .stable_after = 2s};
  CHECK_FALSE(decide_after_exit(shortened, {}, 1999ms).reset_backoff);
  CHECK(decide_after_exit(shortened, {}, 2s).reset_backoff);
}

TEST_CASE("restart schedule on the fake clock: delays grow, reset after a stable run",
          "[supervision]") {
  clock_type clock;
  conch::detail::restart_schedule<doubling_backoff> plan{{}, {.enabled = true}};

  // A child that crashes after 1 s each time: 100, 200, 400, 800, 1600, 1600 ms.
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 6; ++i) {
    auto started = clock.now();
    clock.advance(1s);
    auto d = plan.delay_after({}, clock.now() - started);
    REQUIRE(d);
    delays.push_back(*d);
    clock.advance(*d);
  }
  CHECK(delays ==
        std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms, 800ms, 1600ms, 1600ms});

  // One that runs 60 s starts the sequence over...
  auto started = clock.now();
  clock.advance(60s);
  CHECK(plan.delay_after({}, clock.now() - started) == 100ms);
  // ...and the next quick crash continues from there.
  started = clock.now();
  clock.advance(10ms);
  CHECK(plan.delay_after({}, clock.now() - started) == 200ms);

  // After a stop request nothing restarts.
  CHECK_FALSE(plan.delay_after({.stop_requested = true}, 1s));
  CHECK_FALSE(plan.delay_after({.lost = true}, 2h));
}

TEST_CASE("watchdog renewals only when the local deadline moved", "[supervision]") {
  clock_type clock;
  using tp = clock_type::time_point;
  auto d = clock.now() + 10s;
  CHECK(conch::detail::watchdog_needs_renewal<tp>(std::nullopt, d));
  CHECK_FALSE(conch::detail::watchdog_needs_renewal<tp>(d, d));
  CHECK(conch::detail::watchdog_needs_renewal<tp>(d, d + 3s));
}
