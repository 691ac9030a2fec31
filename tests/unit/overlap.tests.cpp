// The invariant harness's pure logic: interval analysis (how many at once,
// excess stretches, windows, tokens), the seeded fault plan, the interval log
// lines and the exit verdicts. No processes, no clock.
#include "invariant/overlap.hpp"

#include "invariant/exit_verdict.hpp"
#include "invariant/fault_plan.hpp"
#include "invariant/log_record.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>
#include <set>

using namespace conch::invariant;

namespace {
interval iv(nanos start, nanos end, std::int64_t token = 0, int slot = 0,
            std::string holder = "h") {
  return {.holder = std::move(holder), .token = token, .slot = slot, .start = start, .end = end};
}
}  // namespace

TEST_CASE("overlap: concurrency counts half-open intervals", "[invariant][overlap]") {
  CHECK(max_concurrency({}) == 0);
  CHECK(max_concurrency({iv(0, 10)}) == 1);
  CHECK(max_concurrency({iv(0, 10), iv(10, 20)}) == 1);  // touching is not overlapping
  CHECK(max_concurrency({iv(0, 10), iv(9, 20)}) == 2);
  CHECK(max_concurrency({iv(0, 10), iv(2, 8), iv(3, 4), iv(5, 6)}) == 3);
  CHECK(max_concurrency({iv(5, 5), iv(5, 5)}) == 0);  // empty intervals never run
  CHECK(alive_at({iv(0, 10), iv(5, 15)}, 0) == 1);
  CHECK(alive_at({iv(0, 10), iv(5, 15)}, 7) == 2);
  CHECK(alive_at({iv(0, 10), iv(5, 15)}, 10) == 1);
  CHECK(alive_at({iv(0, 10), iv(5, 15)}, 15) == 0);
}

TEST_CASE("overlap: excess stretches are maximal, with peak and members", "[invariant][overlap]") {
  // capacity 1: [0,10) and [8,12) overlap on [8,10); [20,30) with [25,26) on [25,26)
  auto s = excess_stretches({iv(0, 10), iv(8, 12), iv(20, 30), iv(25, 26)}, 1);
  REQUIRE(s.size() == 2);
  CHECK(s[0].begin == 8);
  CHECK(s[0].end == 10);
  CHECK(s[0].peak == 2);
  CHECK(s[0].members == std::vector<std::size_t>{0, 1});
  CHECK(s[1].begin == 25);
  CHECK(s[1].length() == 1);
  CHECK(s[1].members == std::vector<std::size_t>{2, 3});

  // capacity 2: three at once only on [4,6); a fourth joins inside the stretch
  auto t = excess_stretches({iv(0, 10), iv(2, 8), iv(4, 6), iv(5, 7)}, 2);
  REQUIRE(t.size() == 1);
  CHECK(t[0].begin == 4);
  CHECK(t[0].end == 7);
  CHECK(t[0].peak == 4);
  CHECK(t[0].members == std::vector<std::size_t>{0, 1, 2, 3});

  // a handover inside a stretch (one ends as another starts) does not split it
  auto u = excess_stretches({iv(2, 3), iv(2, 4), iv(3, 4)}, 1);
  REQUIRE(u.size() == 1);
  CHECK(u[0].begin == 2);
  CHECK(u[0].end == 4);
  CHECK(u[0].members == std::vector<std::size_t>{0, 1, 2});

  CHECK(excess_stretches({iv(0, 10), iv(10, 20), iv(20, 30)}, 1).empty());
  CHECK(excess_stretches({iv(0, 10), iv(0, 10)}, 2).empty());
}

TEST_CASE("overlap: excess stretches agree with a brute-force count",
          "[invariant][overlap][property]") {
  rc::prop("inside a stretch > capacity alive, outside <= capacity; stretches never touch", [] {
    const int capacity = *rc::gen::inRange(1, 4);
    const auto raw = *rc::gen::container<std::vector<std::pair<int, int>>>(
        rc::gen::pair(rc::gen::inRange(0, 60), rc::gen::inRange(1, 20)));
    std::vector<interval> xs;
    for (auto [start, len] : raw) xs.push_back(iv(start, start + len));
    const auto stretches = excess_stretches(xs, capacity);
    for (nanos t = 0; t < 90; ++t) {
      const bool inside = std::any_of(stretches.begin(), stretches.end(),
                                      [&](const stretch& s) { return s.begin <= t && t < s.end; });
      RC_ASSERT(inside == (alive_at(xs, t) > capacity));
    }
    for (std::size_t i = 1; i < stretches.size(); ++i)
      RC_ASSERT(stretches[i - 1].end < stretches[i].begin);
    int most = 0;
    for (nanos t = 0; t < 90; ++t) most = std::max(most, alive_at(xs, t));
    RC_ASSERT(max_concurrency(xs) == most);
  });
}

TEST_CASE("overlap: windows excuse stretches they contain; the bound limits their length",
          "[invariant][overlap]") {
  const std::vector<interval> xs{iv(0, 100), iv(90, 200), iv(300, 400), iv(350, 500)};
  // stretches: [90,100) and [350,400)
  SECTION("no window: both unexcused") {
    auto r = judge_overlap(xs, 1, {}, 1000);
    CHECK(r.stretches.size() == 2);
    CHECK(r.unexcused == std::vector<std::size_t>{0, 1});
    CHECK_FALSE(r.ok());
  }
  SECTION("a window around each: ok") {
    auto r = judge_overlap(xs, 1, {{80, 120, "revoke a"}, {340, 400, "freeze b"}}, 1000);
    CHECK(r.unexcused.empty());
    CHECK(r.ok());
    CHECK(r.longest == 50);
    CHECK(r.max_concurrency == 2);
  }
  SECTION("a window that closes before the stretch ends does not excuse it") {
    auto r = judge_overlap(xs, 1, {{80, 120, "a"}, {340, 399, "b"}}, 1000);
    CHECK(r.unexcused == std::vector<std::size_t>{1});
  }
  SECTION("a window opened after the stretch began does not excuse it") {
    auto r = judge_overlap(xs, 1, {{80, 120, "a"}, {351, 500, "b"}}, 1000);
    CHECK(r.unexcused == std::vector<std::size_t>{1});
  }
  SECTION("touching windows merge, so a stretch across both is excused") {
    auto r = judge_overlap(xs, 1, {{80, 120, "a"}, {300, 370, "b"}, {370, 410, "c"}}, 1000);
    CHECK(r.unexcused.empty());
  }
  SECTION("a stretch longer than the bound fails even inside a window") {
    auto r = judge_overlap(xs, 1, {{0, 1000, "a"}}, 5);  // stretches of 10 and 50
    CHECK(r.unexcused.empty());
    CHECK(r.too_long == std::vector<std::size_t>{0, 1});
    CHECK_FALSE(r.ok());
  }
  SECTION("within capacity nothing needs excusing") {
    auto r = judge_overlap(xs, 2, {}, 0);
    CHECK(r.stretches.empty());
    CHECK(r.ok());
  }
}

TEST_CASE("overlap: merged windows and the causes near a stretch", "[invariant][overlap]") {
  auto m = merge_windows({{50, 60, "c"}, {0, 10, "a"}, {5, 20, "b"}});
  REQUIRE(m.size() == 2);
  CHECK(m[0].begin == 0);
  CHECK(m[0].end == 20);
  CHECK(m[0].cause == "a; b");
  CHECK(m[1].cause == "c");
  stretch s{.begin = 15, .end = 18, .peak = 2, .members = {}};
  CHECK(causes_near(s, {{0, 10, "a"}, {5, 20, "b"}, {50, 60, "c"}}) ==
        std::vector<std::string>{"b"});
}

TEST_CASE("overlap: tokens strictly increase per slot, in order of start", "[invariant][tokens]") {
  CHECK(
      token_breaks({iv(0, 10, 5, 0), iv(10, 20, 9, 0), iv(0, 10, 6, 1), iv(10, 20, 7, 1)}).empty());
  // slots are independent: slot 1's tokens may be below slot 0's
  CHECK(token_breaks({iv(0, 10, 50, 0), iv(5, 15, 7, 1)}).empty());
  auto b = token_breaks({iv(0, 10, 5, 0, "a"), iv(10, 20, 5, 0, "b")});  // equal is not an increase
  REQUIRE(b.size() == 1);
  CHECK(b[0].earlier == 0);
  CHECK(b[0].later == 1);
  // order of start decides, not order in the log
  auto c = token_breaks({iv(20, 30, 3, 0, "late"), iv(0, 10, 8, 0, "early")});
  REQUIRE(c.size() == 1);
  CHECK(c[0].earlier == 1);
  CHECK(c[0].later == 0);
}

TEST_CASE("overlap: longest handover from an end to the next start", "[invariant][overlap]") {
  const std::vector<interval> xs{iv(0, 10), iv(13, 20), iv(50, 60)};
  CHECK(longest_handover(xs, 0, 100) == 30);  // 20 -> 50
  CHECK(longest_handover(xs, 0, 15) == 3);    // only the end at 10 counts
  CHECK(longest_handover(xs, 55, 100) == 0);  // the end at 60 has no successor
}

TEST_CASE("fault plan: the same seed gives the same plan; another seed another",
          "[invariant][plan]") {
  const plan_options o{.duration = 20'000 * ms};
  auto a = plan_faults(7, o), b = plan_faults(7, o), c = plan_faults(8, o);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].at == b[i].at);
    CHECK(a[i].kind == b[i].kind);
    CHECK(a[i].pick == b[i].pick);
    CHECK(a[i].freeze_for == b[i].freeze_for);
  }
  bool differs = a.size() != c.size();
  for (std::size_t i = 0; !differs && i < a.size(); ++i)
    differs = a[i].at != c[i].at || a[i].kind != c[i].kind;
  CHECK(differs);
}

TEST_CASE("fault plan: spacing, bounds, and freezes both shorter and longer than the TTL",
          "[invariant][plan]") {
  const plan_options o{.duration = 600'000 * ms, .ttl = 2'000 * ms};
  auto plan = plan_faults(1, o);
  REQUIRE(plan.size() > 300);
  CHECK(plan.front().at == o.first_after);
  std::set<fault_kind> kinds;
  int short_freezes = 0, long_freezes = 0;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const auto& f = plan[i];
    CHECK(f.at < o.duration);
    if (i > 0) {
      CHECK(f.at - plan[i - 1].at >= o.min_gap);
      CHECK(f.at - plan[i - 1].at <= o.max_gap);
    }
    kinds.insert(f.kind);
    const bool freeze = f.kind == fault_kind::freeze_holder || f.kind == fault_kind::freeze_waiter;
    CHECK(freeze == (f.freeze_for > 0));
    if (freeze) {
      if (f.freeze_for < o.ttl)
        ++short_freezes;
      else
        ++long_freezes;
      CHECK(f.freeze_for >= 150 * ms);
      CHECK(f.freeze_for <= o.ttl + 2'000 * ms);
      CHECK((f.freeze_for <= o.ttl * 3 / 4 || f.freeze_for >= o.ttl + 500 * ms));
    }
  }
  CHECK(kinds.size() == 8);  // every kind of fault occurs
  CHECK(short_freezes > 10);
  CHECK(long_freezes > 10);
  CHECK(plan_faults(1, {.duration = 1'000 * ms}).empty());  // nothing before first_after
}

TEST_CASE("fault plan: contender shapes are seeded and within their ranges", "[invariant][plan]") {
  contender_shapes a{3}, b{3};
  int ignoring = 0, with_timeout = 0;
  for (int i = 0; i < 500; ++i) {
    auto x = a.next(), y = b.next();
    CHECK(x.child_runs == y.child_runs);
    CHECK(x.ignores_sigterm == y.ignores_sigterm);
    CHECK(x.timeout == y.timeout);
    CHECK(x.child_runs >= 300 * ms);
    CHECK(x.child_runs <= 6'000 * ms);
    ignoring += x.ignores_sigterm;
    with_timeout += x.timeout > 0;
  }
  CHECK(ignoring > 50);
  CHECK(ignoring < 250);
  CHECK(with_timeout > 30);
}

TEST_CASE("fault plan: the generator is the same everywhere", "[invariant][plan]") {
  rng r{0};
  CHECK(r.next() == 0xe220a8397b1dcdafULL);  // splitmix64's published first output for seed 0
  rng s{42};
  for (int i = 0; i < 1000; ++i) {
    auto v = s.between(-3, 3);
    CHECK(v >= -3);
    CHECK(v <= 3);
  }
}

TEST_CASE("log records: round trip, and garbage is nothing", "[invariant][log]") {
  start_record s{.holder = "s12",
                 .pid = 4242,
                 .proc_start = 987654,
                 .slot = 1,
                 .token = 77,
                 .lease = "694d7c2a1b",
                 .at = 1234567890123};
  auto line = format_start(s);
  CHECK(line.back() == '\n');
  auto p = parse_line(line.substr(0, line.size() - 1));
  REQUIRE(p.start);
  CHECK(p.start->holder == "s12");
  CHECK(p.start->pid == 4242);
  CHECK(p.start->proc_start == 987654);
  CHECK(p.start->slot == 1);
  CHECK(p.start->token == 77);
  CHECK(p.start->lease == "694d7c2a1b");
  CHECK(p.start->at == 1234567890123);
  CHECK_FALSE(p.end);

  s.lease.clear();
  auto no_lease = parse_line(format_start(s));
  REQUIRE(no_lease.start);
  CHECK(no_lease.start->lease.empty());

  auto e = parse_line(format_end({.holder = "e3", .pid = 9, .at = 55, .how = "term"}));
  REQUIRE(e.end);
  CHECK(e.end->holder == "e3");
  CHECK(e.end->pid == 9);
  CHECK(e.end->at == 55);
  CHECK(e.end->how == "term");

  for (const char* bad :
       {"", "X a b", "S s1 12", "E e3 9 55", "S s1 x 1 0 5 - 9", "E e3 9 55 term extra"}) {
    auto b = parse_line(bad);
    CHECK_FALSE(b.start);
    CHECK_FALSE(b.end);
  }
}

TEST_CASE("exit verdicts: every exit must be explained by what was done", "[invariant][exits]") {
  CHECK_FALSE(judge_exit({.exit_code = 0, .children = 1, .child_exited_cleanly = true}));
  CHECK(judge_exit({.exit_code = 0, .children = 0}));
  CHECK(judge_exit({.exit_code = 0, .children = 1}));  // its child never said it exited by itself

  CHECK_FALSE(judge_exit({.exit_code = 70, .lease_touched = true, .children = 1}));
  CHECK_FALSE(
      judge_exit({.exit_code = 70, .lease_touched = true, .children = 0}));  // a revoked waiter
  CHECK(judge_exit({.exit_code = 70, .children = 1}));  // lost with nothing done to it

  CHECK_FALSE(judge_exit({.exit_code = 75, .has_timeout = true}));
  CHECK(judge_exit({.exit_code = 75}));
  CHECK(judge_exit({.exit_code = 75, .has_timeout = true, .children = 1}));

  CHECK_FALSE(judge_exit({.signal = SIGKILL, .exit_code = 137, .killed = true, .children = 1}));
  CHECK(judge_exit({.signal = SIGKILL, .exit_code = 137}));
  CHECK(judge_exit({.signal = SIGSEGV, .exit_code = 139, .killed = true}));

  CHECK_FALSE(judge_exit({.exit_code = 143, .terminated = true, .children = 1}));
  CHECK(judge_exit({.exit_code = 143, .children = 1}));
  // frozen: if its watchdog stopped the child, the wrapper owes a 70, not the child's code
  CHECK_FALSE(judge_exit({.exit_code = 70, .lease_touched = true, .frozen = true, .children = 1}));
  CHECK(judge_exit({.exit_code = 143, .lease_touched = true, .frozen = true, .children = 1}));
  CHECK(judge_exit({.exit_code = 137,
                    .lease_touched = true,
                    .frozen = true,
                    .child_ignores_sigterm = true,
                    .children = 1}));

  CHECK_FALSE(judge_exit({.exit_code = 137, .child_killed = true, .children = 1}));
  CHECK_FALSE(judge_exit(
      {.exit_code = 137, .terminated = true, .child_ignores_sigterm = true, .children = 1}));
  CHECK(judge_exit({.exit_code = 137, .terminated = true, .children = 1}));

  CHECK_FALSE(judge_exit({.exit_code = 69}));  // never reached etcd
  CHECK(judge_exit({.exit_code = 69, .children = 1}));
  CHECK(judge_exit({.exit_code = 1}));
  CHECK(judge_exit(
      {.exit_code = 0, .children = 2, .child_exited_cleanly = true}));  // one child per wrapper
}
