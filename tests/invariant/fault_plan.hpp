// tests/invariant/fault_plan.hpp — the seeded fault schedule of the invariant
// harness, and the seeded shape of each contender. Pure: the same seed gives
// the same plan on any compiler and library (our own generator and integer
// arithmetic, no std distributions, whose output is not specified).
//
// Which process a fault hits is decided when it is due (a "pick" number
// chooses among the holders or waiters of that moment): process timing is the
// machine's, the plan is the seed's.
//
//   auto plan = plan_faults(seed, {.duration = 30 * 1000 * ms, .ttl = 2000 * ms});
//   for (auto& f : plan) ... f.at, f.kind, f.pick, f.freeze_for
#pragma once

#include "invariant/overlap.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace conch::invariant {

/// splitmix64: small, fast, and the same everywhere.
class rng {
 public:
  explicit rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) (n > 0); the bias of a modulo over 2^64 is negligible here.
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  /// Uniform in [lo, hi].
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }
  /// True with probability percent/100.
  bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }

 private:
  std::uint64_t state_;
};

enum class fault_kind {
  kill_holder,    ///< kill -9 a wrapper whose child runs: its lease expires after the TTL
  kill_waiter,    ///< kill -9 a waiting wrapper
  revoke_holder,  ///< etcdctl lease revoke of a holder's lease: lost at once
  revoke_waiter,  ///< etcdctl lease revoke of a waiter's lease: it must exit 70
  freeze_holder,  ///< SIGSTOP a holding wrapper, SIGCONT after freeze_for (shorter or longer than the TTL)
  freeze_waiter,  ///< SIGSTOP a waiting wrapper, SIGCONT after freeze_for
  kill_child,     ///< kill -9 a holder's child: the wrapper exits 137 and releases
  stop_holder,    ///< SIGTERM a holding wrapper: forwarded to the child, then a release
};

inline std::string_view name_of(fault_kind k) {
  switch (k) {
    case fault_kind::kill_holder:
      return "kill-9 holder";
    case fault_kind::kill_waiter:
      return "kill-9 waiter";
    case fault_kind::revoke_holder:
      return "revoke holder lease";
    case fault_kind::revoke_waiter:
      return "revoke waiter lease";
    case fault_kind::freeze_holder:
      return "freeze holder";
    case fault_kind::freeze_waiter:
      return "freeze waiter";
    case fault_kind::kill_child:
      return "kill-9 child";
    case fault_kind::stop_holder:
      return "SIGTERM holder";
  }
  return "?";
}

/// Whether the fault may end a holder's claim without a clean release, so
/// that for a while two processes may both believe they hold: those get a
/// stated window. (A killed child or a SIGTERM ends the child before the
/// release: no overlap is ever excused for them.)
inline bool is_loss_event(fault_kind k) {
  return k == fault_kind::kill_holder || k == fault_kind::revoke_holder ||
         k == fault_kind::freeze_holder || k == fault_kind::freeze_waiter ||
         k == fault_kind::revoke_waiter || k == fault_kind::kill_waiter;
}

struct planned_fault {
  nanos at = 0;  ///< since the start of the phase
  fault_kind kind = fault_kind::kill_holder;
  std::uint32_t pick = 0;  ///< chooses the target among the candidates of that moment
  nanos freeze_for = 0;    ///< freezes only
};

struct plan_options {
  nanos duration = 30'000 * ms;  ///< faults are planned in [first_after, duration)
  nanos first_after = 1'500 * ms;
  nanos min_gap = 500 * ms;
  nanos max_gap = 1'400 * ms;
  nanos ttl = 2'000 * ms;
};

/// The faults of one phase, in time order. Weights favour the faults that
/// test the promise (losses of holders); freezes are half shorter than the
/// TTL (which must not cost the claim, or must cost it cleanly) and half
/// longer (the watchdog must kill the child before the lease expires).
inline std::vector<planned_fault> plan_faults(std::uint64_t seed, const plan_options& o) {
  struct weighted {
    fault_kind kind;
    int weight;
  };
  static constexpr weighted table[] = {
      {fault_kind::kill_holder, 14},   {fault_kind::kill_waiter, 7},
      {fault_kind::revoke_holder, 20}, {fault_kind::revoke_waiter, 7},
      {fault_kind::freeze_holder, 26}, {fault_kind::freeze_waiter, 6},
      {fault_kind::kill_child, 10},    {fault_kind::stop_holder, 10},
  };
  int total = 0;
  for (const auto& w : table) total += w.weight;

  rng r{seed ^ 0x6661756c74ULL};  // "fault": a stream of its own
  std::vector<planned_fault> out;
  for (nanos at = o.first_after; at < o.duration; at += r.between(o.min_gap, o.max_gap)) {
    planned_fault f;
    f.at = at;
    auto roll = static_cast<int>(r.below(static_cast<std::uint64_t>(total)));
    for (const auto& w : table) {
      if (roll < w.weight) {
        f.kind = w.kind;
        break;
      }
      roll -= w.weight;
    }
    f.pick = static_cast<std::uint32_t>(r.next());
    if (f.kind == fault_kind::freeze_holder || f.kind == fault_kind::freeze_waiter)
      f.freeze_for = r.chance(50) ? r.between(150 * ms, o.ttl * 3 / 4)
                                  : r.between(o.ttl + 500 * ms, o.ttl + 2'000 * ms);
    out.push_back(f);
  }
  return out;
}

/// How one contender behaves, drawn in spawn order from the seed.
struct contender_shape {
  nanos child_runs = 0;  ///< the child exits by itself after this long (0: until told to stop)
  bool ignores_sigterm = false;  ///< the child must then be SIGKILLed after --kill-after
  nanos timeout = 0;             ///< --timeout while waiting (0: none)
};

class contender_shapes {
 public:
  explicit contender_shapes(std::uint64_t seed) : r_(seed ^ 0x636f6e74656e64ULL) {}  // "contend"
  contender_shape next() {
    contender_shape s;
    s.child_runs =
        r_.chance(80) ? r_.between(300 * ms, 2'500 * ms) : r_.between(3'000 * ms, 6'000 * ms);
    s.ignores_sigterm = r_.chance(30);
    if (r_.chance(20)) s.timeout = r_.between(1'000 * ms, 4'000 * ms);
    return s;
  }

 private:
  rng r_;
};

}  // namespace conch::invariant
