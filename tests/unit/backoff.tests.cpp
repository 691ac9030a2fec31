#include "conch/policies/backoff.hpp"

#include <catch2/catch.hpp>
#include <limits>
#include <rapidcheck/catch.h>
#include <vector>

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

static_assert(conch::backoff_policy<conch::exponential_backoff>);
static_assert(conch::backoff_policy<conch::constant_backoff>);
static_assert(conch::backoff_policy<conch::no_backoff>);
static_assert(std::is_empty_v<conch::no_backoff>);

namespace {
/// Always draws the largest value: every delay sits at its ceiling.
std::uint64_t top() { return std::numeric_limits<std::uint64_t>::max(); }
std::uint64_t bottom() { return 0; }
}  // namespace

TEST_CASE("exponential backoff ceilings double up to the cap", "[backoff]") {
  // max() % (bound + 1) is bound only when bound + 1 divides max() + 1, so read the ceilings
  // directly.
  conch::exponential_backoff b{{.initial = 100ms, .cap = 1s, .multiplier = 2.0}, bottom};
  std::vector<ms> ceilings;
  for (int i = 0; i < 6; ++i) {
    ceilings.push_back(b.ceiling());
    CHECK(b.next() == 0ms);  // bottom() draws the lower end of [0, ceiling]
  }
  CHECK(ceilings == std::vector<ms>{100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms});
  b.reset();
  CHECK(b.ceiling() == 100ms);
}

TEST_CASE("exponential backoff draws uniformly from [0, ceiling]", "[backoff]") {
  std::uint64_t value = 0;
  conch::exponential_backoff b{{.initial = 100ms, .cap = 1s}, [&] { return value; }};
  value = 100;  // 100 % 101
  CHECK(b.next() == 100ms);
  value = 201;  // 201 % 201 == 0 at ceiling 200
  CHECK(b.next() == 0ms);
  value = 57;
  CHECK(b.next() == 57ms);
}

TEST_CASE("exponential backoff clamps nonsense options", "[backoff]") {
  conch::exponential_backoff shrinking{{.initial = 500ms, .cap = 1s, .multiplier = 0.5}, top};
  CHECK(shrinking.ceiling() == 500ms);
  (void)shrinking.next();
  CHECK(shrinking.ceiling() == 500ms);  // multiplier below 1 is taken as 1

  conch::exponential_backoff inverted{{.initial = 5s, .cap = 1s}, top};
  CHECK(inverted.ceiling() == 1s);

  conch::exponential_backoff negative{{.initial = -5s, .cap = -1s}, top};
  CHECK(negative.next() == 0ms);

  conch::exponential_backoff huge{{.initial = 1ms,
                                   .cap = ms{std::numeric_limits<std::int64_t>::max() / 2},
                                   .multiplier = 1e300},
                                  bottom};
  (void)huge.next();
  CHECK(huge.ceiling() == ms{std::numeric_limits<std::int64_t>::max() / 2});
}

TEST_CASE("exponential backoff: every delay lies within [0, min(cap, initial*m^n)]", "[backoff]") {
  rc::prop("bounded by the ceiling sequence", [](std::uint64_t seed) {
    const auto initial = ms{*rc::gen::inRange(0, 2000)};
    const auto cap = ms{*rc::gen::inRange(0, 60000)};
    const double mult = *rc::gen::element(1.0, 1.5, 2.0, 3.0);
    std::mt19937_64 engine{seed};
    conch::exponential_backoff b{{.initial = initial, .cap = cap, .multiplier = mult},
                                 [&] { return engine(); }};
    double ceiling = static_cast<double>(std::min(initial, cap).count());
    for (int n = 0; n < 40; ++n) {
      const auto d = b.next();
      RC_ASSERT(d >= 0ms);
      RC_ASSERT(static_cast<double>(d.count()) <= ceiling);
      ceiling = std::min(ceiling * mult, static_cast<double>(cap.count()));
    }
  });
}

TEST_CASE("copies of a default backoff jitter independently", "[backoff]") {
  conch::exponential_backoff proto{{.initial = 1000s, .cap = 1000s}};
  auto a = proto, b = proto;
  std::vector<ms> from_a, from_b;
  for (int i = 0; i < 8; ++i) {
    from_a.push_back(a.next());
    from_b.push_back(b.next());
  }
  CHECK(from_a != from_b);  // 8 draws from [0, 1e6] colliding: probability ~1e-48
}

TEST_CASE("constant and no backoff", "[backoff]") {
  conch::constant_backoff c{250ms};
  CHECK(c.next() == 250ms);
  CHECK(c.next() == 250ms);
  CHECK(conch::constant_backoff{}.next() == 1s);
  CHECK(conch::constant_backoff{-1s}.next() == 0ms);
  conch::no_backoff none;
  CHECK(none.next() == 0ms);
}

TEST_CASE("reset-after-stable: a child that ran stable_after restarts the sequence", "[backoff]") {
  conch::exponential_backoff b{{.initial = 100ms, .cap = 10s}, bottom};
  (void)conch::next_restart_delay(b, 1s);
  (void)conch::next_restart_delay(b, 59s);
  CHECK(b.ceiling() == 400ms);  // two quick deaths: the sequence continues
  (void)conch::next_restart_delay(b, 60s);
  CHECK(b.ceiling() == 200ms);  // reset, then one step
  (void)conch::next_restart_delay(b, 5s, 5s);
  CHECK(b.ceiling() == 200ms);  // custom stable_after
  (void)conch::next_restart_delay(b, 4999ms, 5s);
  CHECK(b.ceiling() == 400ms);
}
