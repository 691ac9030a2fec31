#include "conch/policies/clock.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

static_assert(conch::clock_policy<conch::steady_clock_policy>);
static_assert(conch::clock_policy<conch::system_clock_policy>);
static_assert(conch::clock_policy<conch::fake_clock<>>);
static_assert(conch::clock_policy<conch::fake_clock<std::chrono::system_clock>>);
static_assert(conch::monotonic_clock_policy<conch::steady_clock_policy>);
static_assert(conch::monotonic_clock_policy<conch::fake_clock<>>);
static_assert(!conch::monotonic_clock_policy<conch::system_clock_policy>);
static_assert(!conch::monotonic_clock_policy<conch::fake_clock<std::chrono::system_clock>>);
static_assert(std::is_empty_v<conch::steady_clock_policy>);
static_assert(std::is_empty_v<conch::system_clock_policy>);

TEST_CASE("real clocks tell chrono's time and stop sleeping on request", "[clock]") {
  conch::steady_clock_policy steady;
  const auto before = std::chrono::steady_clock::now();
  CHECK(steady.now() >= before);
  CHECK(steady.sleep_until(steady.now() + 1ms, std::stop_token{}));

  std::stop_source stop;
  std::jthread stopper([&] { stop.request_stop(); });
  // A whole hour: only the stop request can end this sleep.
  CHECK_FALSE(steady.sleep_until(steady.now() + 1h, stop.get_token()));

  conch::system_clock_policy wall;
  CHECK(wall.sleep_until(wall.now() - 1s, std::stop_token{}));
}

TEST_CASE("conch::sleep_until waits on a bare chrono clock and stops on request", "[clock]") {
  const std::chrono::steady_clock chrono;
  const auto start = chrono.now();
  CHECK(conch::sleep_until(chrono, start + 2ms, std::stop_token{}));
  CHECK(chrono.now() >= start + 2ms);
  CHECK(conch::sleep_until(chrono, start - 1s, std::stop_token{}));  // already past

  std::stop_source stop;
  std::jthread stopper([&] { stop.request_stop(); });
  // A whole hour: only the stop request can end this sleep.
  CHECK_FALSE(conch::sleep_until(chrono, chrono.now() + 1h, stop.get_token()));
  std::stop_source stopped;
  stopped.request_stop();
  CHECK_FALSE(conch::sleep_until(chrono, chrono.now() + 1h, stopped.get_token()));
}

TEST_CASE("conch::sleep_until uses the clock's own wait when it has one", "[clock]") {
  conch::fake_clock<> clock;
  std::atomic<int> result{-1};
  std::jthread sleeper(
      [&, clock](std::stop_token s) { result = conch::sleep_until(clock, clock.now() + 1h, s); });
  REQUIRE(clock.await_sleepers(1));  // waiting on the fake clock, not in real time
  clock.advance(1h);
  sleeper.join();
  CHECK(result == 1);
}

TEST_CASE("fake clock copies share one time", "[clock]") {
  conch::fake_clock<> a;
  auto b = a;
  CHECK(a == b);
  const auto t0 = a.now();
  b.advance(3s);
  CHECK(a.now() - t0 == 3s);
  CHECK_FALSE(a == conch::fake_clock<>{});
}

TEST_CASE("fake clock starts at a documented instant", "[clock]") {
  conch::fake_clock<std::chrono::system_clock> wall;
  CHECK(std::chrono::system_clock::to_time_t(wall.now()) == 1767225600);  // 2026-01-01T00:00:00Z
  conch::fake_clock<> steady;
  CHECK(steady.now().time_since_epoch() == 24h);
}

TEST_CASE("fake clock advance wakes exactly the sleepers whose time has come", "[clock]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  std::atomic<int> woke_early{0}, woke_late{0};
  std::jthread early([&, clock] {
    if (clock.sleep_until(t0 + 5s, {})) ++woke_early;
  });
  std::jthread late([&, clock] {
    if (clock.sleep_until(t0 + 10s, {})) ++woke_late;
  });
  REQUIRE(clock.await_sleepers(2));
  clock.advance(4s);
  CHECK(clock.sleepers() == 2);  // nobody's time has come; both still asleep
  clock.advance(1s);
  early.join();
  CHECK(woke_early == 1);
  CHECK(clock.sleepers() == 1);
  CHECK(woke_late == 0);
  clock.advance(5s);
  late.join();
  CHECK(woke_late == 1);
}

TEST_CASE("fake clock sleeper returns false when stopped", "[clock]") {
  conch::fake_clock<> clock;
  bool result = true;
  std::jthread sleeper(
      [&, clock](std::stop_token stop) { result = clock.sleep_until(clock.now() + 1h, stop); });
  REQUIRE(clock.await_sleepers(1));
  sleeper.request_stop();
  sleeper.join();
  CHECK_FALSE(result);
  CHECK(clock.sleepers() == 0);
}

TEST_CASE("fake clock sleep_until a past time returns at once", "[clock]") {
  conch::fake_clock<> clock;
  CHECK(clock.sleep_until(clock.now(), {}));
  CHECK(clock.sleep_until(clock.now() - 1s, {}));
}

TEST_CASE("await_sleepers gives up after its real-time bound", "[clock]") {
  conch::fake_clock<> clock;
  CHECK_FALSE(clock.await_sleepers(1, 10ms));
}

TEST_CASE("fake clock timers fire in time order with now() at their own time", "[clock]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  std::vector<std::pair<int, std::chrono::steady_clock::duration>> fired;
  clock.schedule_at(t0 + 3s, [&] { fired.emplace_back(3, clock.now() - t0); });
  clock.schedule_at(t0 + 1s, [&] {
    fired.emplace_back(1, clock.now() - t0);
    // A timer scheduled from a timer fires within the same advance if due.
    clock.schedule_at(clock.now() + 1s, [&] { fired.emplace_back(2, clock.now() - t0); });
  });
  const auto never = clock.schedule_at(
      t0 + 2500ms, [&] { fired.emplace_back(99, std::chrono::steady_clock::duration{}); });
  CHECK(clock.timers() == 3);
  CHECK(clock.cancel(never));
  CHECK_FALSE(clock.cancel(never));

  clock.advance(10s);
  REQUIRE(fired.size() == 3);
  CHECK(fired[0] == std::pair{1, std::chrono::steady_clock::duration{1s}});
  CHECK(fired[1] == std::pair{2, std::chrono::steady_clock::duration{2s}});
  CHECK(fired[2] == std::pair{3, std::chrono::steady_clock::duration{3s}});
  CHECK(clock.now() - t0 == 10s);
  CHECK(clock.timers() == 0);
}

TEST_CASE("a timer already due fires on the next advance", "[clock]") {
  conch::fake_clock<> clock;
  int fired = 0;
  clock.schedule_at(clock.now() - 1s, [&] { ++fired; });
  CHECK(fired == 0);
  clock.advance(0s);
  CHECK(fired == 1);
}

TEST_CASE("fake steady clock refuses to go back; fake system clock may", "[clock]") {
  conch::fake_clock<> steady;
  CHECK_THROWS_AS(steady.set(steady.now() - 1s), std::invalid_argument);
  CHECK_THROWS_AS(steady.advance(-1s), std::invalid_argument);
  const auto later = steady.now() + 1min;
  steady.set(later);
  CHECK(steady.now() == later);

  conch::fake_clock<std::chrono::system_clock> wall;
  const auto t0 = wall.now();
  int fired = 0;
  wall.schedule_at(t0, [&] { ++fired; });
  wall.set(t0 - 1h);  // wall clock stepped back: the timer at t0 is in the future again
  CHECK(wall.now() == t0 - 1h);
  CHECK(fired == 0);
  wall.set(t0);
  CHECK(fired == 1);
}

TEST_CASE("monotonic check helpers accept the stock steady clocks", "[clock]") {
  STATIC_REQUIRE(conch::check_monotonic_clock_policy<conch::steady_clock_policy>());
  STATIC_REQUIRE(conch::check_monotonic_clock_policy<conch::fake_clock<>>());
  STATIC_REQUIRE(conch::check_clock_policy<conch::system_clock_policy>());
}
