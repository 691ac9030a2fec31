// tests/invariant/invariant.cpp — the invariant harness (SPEC §4, layer 3):
// bounded concurrency with honest overlap accounting, over real `conch`
// processes and a real etcd.
//
//   invariant [--seed N] [--duration D] [--phases probe,sema,elect] [--lock-delay auto|0|D]
//             [--conch PATH] [--keep] [--verbose]
//
// Phases (each with a fresh key prefix and interval log):
//   probe  the watchdog claim: a holder's wrapper frozen past its TTL; its
//          child must die while the wrapper is still frozen, and the overlap
//          with the next holder stay within the bound. Then one holder whose
//          child ignores SIGTERM has its lease revoked: the same bound.
//   sema   K contenders on `conch sema pool --max N` under a seeded fault
//          schedule, then convergence and a release round.
//   elect  the same on `conch elect office` (N = 1).
// Asserted over each interval log: (1) at most N at once except within the
// stated window after each induced loss, every excess stretch no longer than
// the bound — 0 with a lock delay (`--lock-delay auto`, conch's default), the
// old kill-after + delivery + slack with `--lock-delay 0`; (2) convergence
// after the last fault — exactly min(N, live) holders, every waiter promoted
// in turn, every exit explained (0, 70, 75, ...); (3) tokens strictly increase
// per slot. docs/invariants.md explains.
#include "conch/logic/duration.hpp"

#include "invariant/child.hpp"
#include "invariant/exit_verdict.hpp"
#include "invariant/fault_plan.hpp"
#include "invariant/overlap.hpp"
#include "invariant/processes.hpp"
#include "invariant/world.hpp"
#include "support/etcd_harness.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>
#include <vector>

namespace {

namespace inv = conch::invariant;
using inv::ms;
using inv::nanos;

/// The timing every contender runs with, and the stated overlap window.
struct timing {
  nanos ttl = 2'000 * ms;         ///< --ttl 2s
  nanos kill_after = 500 * ms;    ///< --kill-after 500ms
  nanos expiry_check = 500 * ms;  ///< etcd revokes expired leases on a 500 ms tick
  nanos delivery = 300 * ms;      ///< one event delivery (watch event, keepalive answer)
  nanos slack = 700 * ms;         ///< scheduling on a loaded 2-core machine
  bool lock_delay = true;         ///< contenders run with a lock delay (not `--lock-delay 0`)
  /// The longest a stretch of excess overlap may last: none with a lock
  /// delay (the next child starts only once the old one is gone); without,
  /// the old child gets SIGTERM one delivery after the loss, SIGKILL
  /// kill-after later.
  nanos overlap_bound() const { return lock_delay ? 0 : kill_after + delivery + slack; }
  /// The stated window after an induced loss (the old bound, delay or not).
  nanos loss_window() const { return kill_after + delivery + slack; }
  /// How long after a kill -9 or a freeze its lease may still be expiring.
  nanos expiry_delay() const { return ttl + expiry_check; }
};

struct options {
  std::uint64_t seed = 0;
  nanos duration = 60'000 * ms;
  std::vector<std::string> phases{"probe", "sema", "elect"};
  std::string lock_delay{"auto"};  ///< passed to every contender
  std::string conch;
  int sema_max = 2;
  int sema_contenders = 6;
  int elect_contenders = 4;
  bool keep = false;
  bool verbose = false;
};

std::string fmt_ms(nanos d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(d) / 1e6);
  return buf;
}
std::string fmt_s(nanos d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", static_cast<double>(d) / 1e9);
  return buf;
}
std::string at_rel(nanos t, nanos t0) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "+%.3fs", static_cast<double>(t - t0) / 1e9);
  return buf;
}

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot resolve /proc/self/exe");
  return p.string();
}

/// What was done, when, to whom (the resolved fault schedule).
struct applied_fault {
  nanos at = 0;
  nanos done = 0;  ///< for revocations: when etcdctl returned
  inv::fault_kind kind{};
  std::string target{};  ///< contender id, or empty when nobody qualified
  std::string note{};
};

struct phase_spec {
  std::string name{};    ///< "sema", "elect", "probe"
  std::string recipe{};  ///< "sema" or "elect"
  std::string office{};  ///< the semaphore or office name
  int capacity = 1;      ///< N
  int contenders = 4;    ///< K
  nanos duration = 0;    ///< of the fault schedule
  std::uint64_t salt = 0;
};

class phase_run {
 public:
  phase_run(const options& o, const timing& tm, conch::test::etcd_server& etcd,
            const std::string& dir, phase_spec spec)
      : opt_(o),
        tm_(tm),
        etcd_(etcd),
        spec_(std::move(spec)),
        prefix_("inv/" + std::to_string(o.seed) + "/" + spec_.name + "/"),
        exe_(self_exe()),
        w_(dir, dir + "/" + spec_.name + ".log", etcd.pid()) {}

  /// Runs the phase; returns whether every assertion held (and prints why not).
  bool run() {
    t0_ = inv::now_ns();
    std::cout << "== " << spec_.name << ": " << describe() << std::endl;
    if (spec_.name == "probe") {
      probe();
    } else {
      faults();
      converge();
    }
    finish();
    return analyse();
  }

 private:
  std::string describe() const {
    std::ostringstream s;
    if (spec_.name == "probe")
      s << "conch elect " << spec_.office
        << ", a holder's wrapper frozen past its TTL (3 rounds), a holder revoked (1)";
    else
      s << "conch " << spec_.recipe << " " << spec_.office
        << (spec_.recipe == "sema" ? " --max " + std::to_string(spec_.capacity) : std::string())
        << ", " << spec_.contenders << " contenders, faults for " << fmt_s(spec_.duration);
    s << " (--ttl " << tm_.ttl / ms << "ms --kill-after " << tm_.kill_after / ms
      << "ms --lock-delay " << opt_.lock_delay << ")";
    return s.str();
  }

  // ---- contenders
  std::vector<std::string> conch_args(std::vector<std::string> extra) const {
    std::vector<std::string> a{opt_.conch, spec_.recipe, spec_.office};
    if (spec_.recipe == "sema") {
      a.push_back("--max");
      a.push_back(std::to_string(spec_.capacity));
    }
    a.insert(a.end(), {"--endpoints", etcd_.endpoint(), "--prefix", prefix_});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // Spawns are spread out a little: a dozen gRPC clients dialling one etcd at
  // the same instant on two cores is a stress test of its own.
  inv::contender& spawn(inv::contender_shape shape, bool final) {
    while (inv::now_ns() < next_spawn_) w_.pump();
    next_spawn_ = inv::now_ns() + 40 * ms;
    const std::string id = spec_.name.substr(0, 1) + std::to_string(++spawned_);
    std::vector<std::string> flags{"--ttl",        std::to_string(tm_.ttl / ms) + "ms",
                                   "--kill-after", std::to_string(tm_.kill_after / ms) + "ms",
                                   "--lock-delay", opt_.lock_delay};
    if (shape.timeout > 0) {
      flags.push_back("--timeout");
      flags.push_back(std::to_string(shape.timeout / ms) + "ms");
    }
    flags.insert(flags.end(),
                 {"--", exe_, std::string(inv::child_argument), w_.log_path(), id,
                  std::to_string(shape.child_runs / ms), shape.ignores_sigterm ? "1" : "0"});
    return w_.spawn_contender(id, conch_args(flags), shape, final);
  }

  int alive_contenders(bool finals) {
    int n = 0;
    for (auto& c : w_.contenders())
      if (c.alive && c.final == finals) ++n;
    return n;
  }

  void add_window(nanos begin, nanos end, inv::fault_kind kind, const std::string& who) {
    windows_.push_back(
        {begin, end, std::string(inv::name_of(kind)) + " " + who + " " + at_rel(begin, t0_)});
    window_kinds_.push_back(kind);
  }

  // ---- the fault phase
  void faults() {
    const auto plan =
        inv::plan_faults(opt_.seed ^ spec_.salt, {.duration = spec_.duration, .ttl = tm_.ttl});
    inv::contender_shapes shapes{opt_.seed ^ spec_.salt};
    struct due {
      inv::planned_fault f;
      int tries = 0;
    };
    std::deque<due> pending;
    for (const auto& f : plan) pending.push_back({f});
    const nanos end = t0_ + spec_.duration;
    while (inv::now_ns() < end) {
      if (alive_contenders(false) < spec_.contenders && inv::now_ns() >= next_spawn_)
        spawn(shapes.next(), false);
      while (!pending.empty() && t0_ + pending.front().f.at <= inv::now_ns()) {
        due d = pending.front();
        pending.pop_front();
        // A fault that finds no target tries again a little later (an office
        // is often between holders), a few times, before it is skipped.
        if (!apply(d.f, d.tries == 3)) {
          d.f.at += 250 * ms;
          ++d.tries;
          auto at = std::find_if(pending.begin(), pending.end(),
                                 [&](const due& x) { return x.f.at > d.f.at; });
          pending.insert(at, d);
        }
      }
      w_.pump();
    }
    last_fault_ = applied_.empty() ? t0_ : applied_.back().at;
  }

  /// Applies `f` to a target of this moment. Without one: false, unless
  /// `last_try` (then it is recorded as skipped).
  bool apply(const inv::planned_fault& f, bool last_try) {
    using K = inv::fault_kind;
    const nanos t = inv::now_ns();
    applied_fault a{.at = t, .kind = f.kind};
    const bool on_holder = f.kind == K::kill_holder || f.kind == K::revoke_holder ||
                           f.kind == K::freeze_holder || f.kind == K::kill_child ||
                           f.kind == K::stop_holder;
    if (f.kind == K::revoke_waiter) {  // the waiter's lease is only in etcd: look it up first
      if (w_.waiters(300 * ms).empty() && !last_try) return false;
      revoke_waiter(f, a);
      return true;
    }
    auto candidates = on_holder ? w_.holders(false) : w_.waiters(300 * ms);
    if (candidates.empty()) {
      if (!last_try) return false;
      a.note = on_holder ? "skipped: no holder" : "skipped: no waiter";
      applied_.push_back(a);
      return true;
    }
    inv::contender& c = *candidates[f.pick % candidates.size()];
    a.target = c.id;
    switch (f.kind) {
      case K::kill_holder:
      case K::kill_waiter:
        ::kill(c.pid, SIGKILL);
        c.story.killed = true;
        add_window(t, t + tm_.expiry_delay() + tm_.loss_window(), f.kind, c.id);
        break;
      case K::freeze_holder:
      case K::freeze_waiter:
        w_.freeze(c, f.freeze_for);
        c.story.lease_touched = c.story.frozen = true;
        a.note = "for " + fmt_ms(f.freeze_for);
        add_window(t, t + tm_.expiry_delay() + tm_.loss_window(), f.kind, c.id);
        break;
      case K::kill_child:
        if (auto* ch = w_.child_of(c)) {
          inv::pidfd_send_signal(ch->pidfd, SIGKILL);
          c.story.child_killed = true;
        } else {
          a.note = "child already gone";
        }
        break;
      case K::stop_holder:
        ::kill(c.pid, SIGTERM);
        c.story.terminated = true;
        break;
      case K::revoke_holder: {
        const std::string lease = w_.start_of(c.interval).lease;
        c.story.lease_touched = true;
        a.note = "lease " + lease;
        revoke(lease, applied_.size(), c.id);
        break;
      }
      case K::revoke_waiter:
        break;
    }
    applied_.push_back(a);
    return true;
  }

  void revoke(const std::string& lease, std::size_t fault_index, const std::string& who) {
    w_.run_async({"etcdctl", "--endpoints=" + etcd_.url(), "--dial-timeout=2s",
                  "--command-timeout=5s", "lease", "revoke", lease},
                 {"ETCDCTL_API=3"}, [this, fault_index, who](int code, const std::string& out) {
                   auto& a = applied_[fault_index];
                   a.done = inv::now_ns();
                   a.note += code == 0 ? " revoked in " + fmt_ms(a.done - a.at)
                                       : " (etcdctl " + std::to_string(code) + ": " +
                                             first_line(out) + ")";
                   add_window(a.at, a.done + tm_.loss_window(), a.kind, who);
                 });
  }

  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  void revoke_waiter(const inv::planned_fault& f, applied_fault a) {
    const std::size_t index = applied_.size();
    applied_.push_back(a);
    const std::string keys =
        prefix_ + (spec_.recipe == "sema" ? "sema/" + spec_.office +
                                                "/max=" + std::to_string(spec_.capacity) + "/queue/"
                                          : "elect/" + spec_.office + "/");
    w_.run_async({"etcdctl", "--endpoints=" + etcd_.url(), "--dial-timeout=2s",
                  "--command-timeout=5s", "get", "--prefix", keys},
                 {"ETCDCTL_API=3"}, [this, f, index](int code, const std::string& out) {
                   auto& a = applied_[index];
                   if (code != 0) {
                     a.note = "skipped: etcdctl get " + std::to_string(code);
                     return;
                   }
                   // key line, value line (the holder record: its pid tells whose key it is)
                   std::vector<std::pair<std::string, inv::contender*>> found;
                   std::istringstream lines(out);
                   for (std::string key, value;
                        std::getline(lines, key) && std::getline(lines, value);) {
                     auto j = nlohmann::json::parse(value, nullptr, false);
                     if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer())
                       continue;
                     const pid_t pid = j["pid"].get<pid_t>();
                     for (auto* c : w_.waiters(300 * ms))
                       if (c->pid == pid) found.emplace_back(key.substr(key.rfind('/') + 1), c);
                   }
                   if (found.empty()) {
                     a.note = "skipped: no waiter";
                     return;
                   }
                   auto& [lease, c] = found[f.pick % found.size()];
                   a.target = c->id;
                   a.at = inv::now_ns();
                   a.note = "lease " + lease;
                   c->story.lease_touched = true;
                   revoke(lease, index, c->id);
                 });
  }

  // ---- convergence after the last fault
  void converge() {
    for (auto& c : w_.contenders())
      if (c.frozen) w_.thaw(c);
    const int finals = spec_.contenders;
    for (int i = 0; i < finals; ++i) spawn({}, true);
    // A contender may exit 69 (etcd unreachable at start, on a loaded machine): count the living.
    auto expected_now = [&] { return std::min(spec_.capacity, alive_contenders(true)); };

    // Every contender of the fault phase ends by itself: children run out,
    // waits are served or time out, leases of the killed expire.
    if (!w_.await([&] { return alive_contenders(false) == 0; }, 45'000 * ms)) {
      std::string left;
      for (auto& c : w_.contenders())
        if (c.alive && !c.final) left += " " + c.id;
      problem("convergence: contenders still running 45 s after the last fault:" + left);
      return;
    }
    nanos settled_from = last_fault_;
    for (auto& c : w_.contenders())
      if (!c.final) settled_from = std::max(settled_from, c.ended_at);
    if (!w_.await([&] { return w_.running_children() == expected_now(); },
                  tm_.expiry_delay() + 5'000 * ms)) {
      problem("convergence: " + std::to_string(w_.running_children()) + " holders, expected " +
              std::to_string(expected_now()));
      return;
    }
    const int expected = expected_now();
    converged_in_ = inv::now_ns() - settled_from;
    drained_in_ = settled_from - last_fault_;
    // ... and stays there.
    const nanos steady_until = inv::now_ns() + 1'000 * ms;
    while (inv::now_ns() < steady_until) {
      w_.pump();
      if (w_.running_children() != expected) {
        problem("convergence: holders went from " + std::to_string(expected) + " to " +
                std::to_string(w_.running_children()) + " with no fault");
        return;
      }
    }
    cross_check_who(expected, alive_contenders(true) - expected);

    // Release round: stop one holder at a time; the next waiter must take over.
    while (alive_contenders(true) > 0) {
      auto holding = w_.holders(true);
      if (holding.empty()) {
        problem("release round: " + std::to_string(alive_contenders(true)) +
                " contenders left, none holds");
        return;
      }
      inv::contender& h = *holding.front();
      ::kill(h.pid, SIGTERM);
      h.story.terminated = true;
      if (!w_.await([&] { return !h.alive; }, 10'000 * ms)) {
        problem("release round: " + h.id + " still running 10 s after SIGTERM");
        return;
      }
      const int want = std::min(spec_.capacity, alive_contenders(true));
      const nanos released = w_.intervals()[static_cast<std::size_t>(h.interval)].end;
      if (!w_.await([&] { return w_.running_children() == want; }, 5'000 * ms)) {
        problem("release round: after " + h.id + " released, " +
                std::to_string(w_.running_children()) + " holders, expected " +
                std::to_string(want) + " (a waiter was not promoted)");
        return;
      }
      if (want == std::min(spec_.capacity, alive_contenders(true) + 1)) {  // someone took its place
        nanos next = inv::open_end;
        for (const auto& x : w_.intervals())
          if (x.start >= released) next = std::min(next, x.start);
        if (next != inv::open_end) handover_max_ = std::max(handover_max_, next - released);
      }
    }
    await_prefix_empty();
  }

  void cross_check_who(int holders, int waiters) {
    std::string out;
    int rc = conch::test::harness_detail::run(conch_args({"--who", "--json"}), {}, &out,
                                              std::chrono::seconds(15));
    std::string json_line;
    std::istringstream lines(out);
    for (std::string l; std::getline(lines, l);)
      if (!l.empty() && l.front() == '{') json_line = l;
    auto j = nlohmann::json::parse(json_line, nullptr, false);
    if (rc != 0 || !j.is_object()) {
      problem("--who --json exited " + std::to_string(rc) + ": " + first_line(out));
      return;
    }
    std::vector<std::string> running_leases;
    for (std::size_t i = 0; i < w_.intervals().size(); ++i)
      if (w_.intervals()[i].end == inv::open_end)
        running_leases.push_back(w_.start_of(static_cast<int>(i)).lease);
    std::vector<std::string> shown;
    if (spec_.recipe == "sema") {
      for (auto& s : j["slots"]) shown.push_back(s.value("lease", ""));
      const int w = static_cast<int>(j["waiters"].size());
      if (w != waiters)
        problem("--who lists " + std::to_string(w) + " waiters, expected " +
                std::to_string(waiters));
    } else {
      shown.push_back(j.value("lease", ""));
    }
    std::sort(shown.begin(), shown.end());
    std::sort(running_leases.begin(), running_leases.end());
    if (static_cast<int>(shown.size()) != holders || shown != running_leases)
      problem("--who shows holders with leases {" + join(shown) + "}, running children have {" +
              join(running_leases) + "}");
  }

  static std::string join(const std::vector<std::string>& xs) {
    std::string s;
    for (const auto& x : xs) s += (s.empty() ? "" : ", ") + x;
    return s;
  }

  void await_prefix_empty() {
    std::string out;
    const bool empty = w_.await(
        [&] {
          out.clear();
          return etcd_.etcdctl({"get", "--prefix", prefix_, "--keys-only"}, &out) == 0 &&
                 out.find_first_not_of(" \n") == std::string::npos;
        },
        tm_.expiry_delay() + 3'000 * ms);
    if (!empty)
      problem("keys left under " + prefix_ + " after everyone released: " + first_line(out));
  }

  // ---- the watchdog probe
  void probe() {
    for (int round = 0; round < 3; ++round) {
      const bool ignores = round != 1;  // the strict case: the child must be SIGKILLed
      inv::contender& a = spawn({.ignores_sigterm = ignores}, true);
      if (!w_.await([&] { return a.interval >= 0; }, 15'000 * ms)) {
        problem("probe: " + a.id + " never started its child");
        return;
      }
      inv::contender& b = spawn({}, true);
      // B has campaigned once its key is there (two keys under the office).
      w_.await([&] { return count_keys(prefix_ + "elect/" + spec_.office + "/") == 2; },
               10'000 * ms);
      const nanos frozen_at = inv::now_ns();
      const nanos freeze_for = tm_.ttl + 2'000 * ms;
      w_.freeze(a, freeze_for);
      a.story.lease_touched = a.story.frozen = true;
      applied_.push_back({.at = frozen_at,
                          .kind = inv::fault_kind::freeze_holder,
                          .target = a.id,
                          .note = "for " + fmt_ms(freeze_for)});
      add_window(frozen_at, frozen_at + tm_.expiry_delay() + tm_.loss_window(),
                 inv::fault_kind::freeze_holder, a.id);
      if (!w_.await([&] { return b.interval >= 0; }, freeze_for + 5'000 * ms)) {
        problem("probe: " + b.id + " never took over from frozen " + a.id);
        return;
      }
      w_.await([&] { return !w_.child_running(a); }, tm_.loss_window() + 5'000 * ms);
      if (!w_.await([&] { return !a.frozen; }, freeze_for + 1'000 * ms)) return;
      const auto& ax = w_.intervals()[static_cast<std::size_t>(a.interval)];
      const auto& bx = w_.intervals()[static_cast<std::size_t>(b.interval)];
      const nanos thawed = a.thaw_at;
      probe_line p{.round = round,
                   .ignores = ignores,
                   .killed_after = ax.end - frozen_at,
                   .promoted_after = bx.start - frozen_at,
                   .overlap = ax.end - bx.start};
      probes_.push_back(p);
      if (ax.end == inv::open_end || ax.end >= thawed)
        problem("probe: " + a.id +
                "'s child outlived the freeze of its wrapper (the watchdog did not kill it)");
      if (p.overlap > tm_.overlap_bound())
        problem("probe: overlap " + fmt_ms(p.overlap) + " after lease expiry exceeds the bound " +
                fmt_ms(tm_.overlap_bound()));
      if (!w_.await([&] { return !a.alive; }, 5'000 * ms))
        problem("probe: " + a.id + " still running after thaw");
      ::kill(b.pid, SIGTERM);
      b.story.terminated = true;
      if (!w_.await([&] { return !b.alive; }, 10'000 * ms))
        problem("probe: " + b.id + " ignored SIGTERM");
    }
    probe_revoke();
    last_fault_ = applied_.empty() ? t0_ : applied_.back().at;
    await_prefix_empty();
  }

  // One more round: a holder whose child ignores SIGTERM has its lease revoked
  // while a second contender waits. Its wrapper sees the delete at once; the
  // child dies only at kill-after. The next holder's start must not precede
  // that death with a lock delay (overlap within the bound without one).
  void probe_revoke() {
    inv::contender& a = spawn({.ignores_sigterm = true}, true);
    if (!w_.await([&] { return a.interval >= 0; }, 15'000 * ms))
      return problem("probe: " + a.id + " never started its child");
    inv::contender& b = spawn({}, true);
    w_.await([&] { return count_keys(prefix_ + "elect/" + spec_.office + "/") == 2; }, 10'000 * ms);
    const nanos revoked_at = inv::now_ns();
    const std::string lease = w_.start_of(a.interval).lease;
    a.story.lease_touched = true;
    applied_.push_back({.at = revoked_at,
                        .kind = inv::fault_kind::revoke_holder,
                        .target = a.id,
                        .note = "lease " + lease});
    revoke(lease, applied_.size() - 1, a.id);
    if (!w_.await([&] { return b.interval >= 0; }, 15'000 * ms))
      return problem("probe: " + b.id + " never took over from revoked " + a.id);
    w_.await([&] { return !w_.child_running(a); }, tm_.loss_window() + 5'000 * ms);
    if (!w_.await([&] { return !a.alive; }, 10'000 * ms))
      problem("probe: " + a.id + " still running after its lease was revoked");
    const auto& ax = w_.intervals()[static_cast<std::size_t>(a.interval)];
    const auto& bx = w_.intervals()[static_cast<std::size_t>(b.interval)];
    probe_line p{.round = 3,
                 .ignores = true,
                 .revoked = true,
                 .killed_after = ax.end - revoked_at,
                 .promoted_after = bx.start - revoked_at,
                 .overlap = ax.end - bx.start};
    probes_.push_back(p);
    if (p.overlap > tm_.overlap_bound())
      problem("probe: overlap " + fmt_ms(p.overlap) + " after a revoke exceeds the bound " +
              fmt_ms(tm_.overlap_bound()));
    ::kill(b.pid, SIGTERM);
    b.story.terminated = true;
    if (!w_.await([&] { return !b.alive; }, 10'000 * ms))
      problem("probe: " + b.id + " ignored SIGTERM");
  }

  int count_keys(const std::string& prefix) {
    std::string out;
    if (etcd_.etcdctl({"get", "--prefix", prefix, "--keys-only"}, &out) != 0) return -1;
    int n = 0;
    std::istringstream lines(out);
    for (std::string l; std::getline(lines, l);)
      if (!l.empty()) ++n;
    return n;
  }

  // ---- the verdict
  void finish() {
    // Background commands finish, children still running (a failed phase) end.
    w_.await([&] { return w_.pending_commands() == 0; }, 20'000 * ms);
    for (auto& c : w_.contenders())
      if (c.alive) problem(c.id + " still running at the end of the phase: killed");
    w_.kill_everything();
    w_.pump(0);
  }

  bool analyse() {
    auto& xs = w_.intervals();
    for (auto& x : xs)
      if (x.end == inv::open_end) {
        problem("the child of " + x.holder + " never ended");
        x.end = inv::now_ns();
      }
    for (const auto& g : w_.garbled_) problem("garbled log line: " + g);
    if (spec_.name != "probe" && spec_.duration >= 10'000 * ms) {
      // A run in which nothing was held, or nothing was lost, proves nothing.
      const auto losses = std::count_if(
          applied_.begin(), applied_.end(),
          [](const applied_fault& a) { return !a.target.empty() && inv::is_loss_event(a.kind); });
      if (xs.size() < 5 || losses < 3)
        problem("the run exercised too little: " + std::to_string(xs.size()) + " children, " +
                std::to_string(losses) + " losses induced");
    }

    const auto report = inv::judge_overlap(xs, spec_.capacity, windows_, tm_.overlap_bound());
    for (auto i : report.unexcused)
      problem("more than " + std::to_string(spec_.capacity) +
              " at once outside every window: " + describe(report.stretches[i]));
    for (auto i : report.too_long)
      problem("overlap of " + fmt_ms(report.stretches[i].length()) + " exceeds the bound " +
              fmt_ms(tm_.overlap_bound()) + ": " + describe(report.stretches[i]));
    for (const auto& b : inv::token_breaks(xs))
      problem("token did not increase in slot " + std::to_string(xs[b.later].slot) + ": " +
              xs[b.earlier].holder + " had " + std::to_string(xs[b.earlier].token) + ", then " +
              xs[b.later].holder + " had " + std::to_string(xs[b.later].token));
    std::map<int, int> exits;
    for (auto& c : w_.contenders()) {
      ++exits[c.story.signal ? -c.story.signal : c.story.exit_code];
      if (auto why = inv::judge_exit(c.story)) problem(c.id + ": " + *why + tail_of(c));
    }

    print_summary(report, exits);
    if (!problems_.empty())
      print_failure();
    else if (opt_.verbose)
      print_schedule();
    return problems_.empty();
  }

  std::string describe(const inv::stretch& s) const {
    const auto& xs = w_.intervals();
    std::ostringstream o;
    o << at_rel(s.begin, t0_) << " .. " << at_rel(s.end, t0_) << " (" << fmt_ms(s.length())
      << ", peak " << s.peak << ")";
    for (auto m : s.members) {
      const auto& x = xs[m];
      o << "\n      " << x.holder << " slot " << x.slot << " token " << x.token << " "
        << at_rel(x.start, t0_) << " .. " << at_rel(x.end, t0_)
        << (x.observed_end ? " (seen dead)" : "");
    }
    auto causes = inv::causes_near(s, windows_);
    o << "\n      near: " << (causes.empty() ? std::string("no fault") : join(causes));
    return o.str();
  }

  std::string tail_of(const inv::contender& c) const {
    auto t = inv::tail_lines(inv::slurp(c.err_path), 3);
    if (t.empty()) return "";
    std::string out = "\n      stderr:";
    std::istringstream lines(t);
    for (std::string l; std::getline(lines, l);) out += "\n        " + l;
    return out;
  }

  void print_summary(const inv::overlap_report& r, const std::map<int, int>& exits) {
    const auto& xs = w_.intervals();
    std::map<std::string, int> kinds;
    int skipped = 0;
    for (const auto& a : applied_) {
      if (a.target.empty())
        ++skipped;
      else
        ++kinds[std::string(inv::name_of(a.kind))];
    }
    std::cout << "   " << w_.contenders().size() << " contenders, " << xs.size() << " children, "
              << applied_.size() - skipped << " faults applied (" << skipped << " found no target)";
    for (auto& [k, n] : kinds)
      std::cout << (k == kinds.begin()->first ? ": " : ", ") << k << " " << n;
    std::cout << "\n   max at once " << r.max_concurrency << " (N = " << spec_.capacity << "); "
              << r.stretches.size() << " excess stretch(es), longest " << fmt_ms(r.longest)
              << " (bound " << fmt_ms(tm_.overlap_bound()) << "), " << r.unexcused.size()
              << " outside their window\n";
    // The longest stretch after each kind of loss (the latest window holding it).
    std::map<std::string, nanos> by_kind;
    for (const auto& s : r.stretches) {
      std::optional<std::size_t> cause;
      for (std::size_t i = 0; i < windows_.size(); ++i)
        if (windows_[i].begin <= s.begin && s.end <= windows_[i].end &&
            (!cause || windows_[i].begin > windows_[*cause].begin))
          cause = i;
      auto& v = by_kind[cause ? std::string(inv::name_of(window_kinds_[*cause])) : "no window"];
      v = std::max(v, s.length());
    }
    if (!by_kind.empty()) {
      std::cout << "   longest overlap by cause:";
      for (auto& [k, v] : by_kind) std::cout << " " << k << " " << fmt_ms(v) << ";";
      std::cout << "\n";
    }
    std::map<int, std::int64_t> slots;
    for (const auto& x : xs) ++slots[x.slot];
    std::cout << "   tokens strictly increasing in " << slots.size() << " slot(s) over "
              << xs.size() << " successions";
    if (converged_in_ >= 0)
      std::cout << "\n   after the last fault: its contenders all ended in " << fmt_s(drained_in_)
                << ", then exactly min(N, waiting) held after " << fmt_ms(converged_in_);
    if (handover_max_ > 0) std::cout << "; release round handover max " << fmt_ms(handover_max_);
    std::cout << "\n   exits:";
    for (auto& [code, n] : exits)
      std::cout << " " << (code < 0 ? "signal " + std::to_string(-code) : std::to_string(code))
                << "×" << n;
    std::cout << "\n";
    for (const auto& p : probes_)
      std::cout << "   probe round " << p.round << " (child " << (p.ignores ? "ignores" : "honours")
                << " SIGTERM): child killed " << fmt_ms(p.killed_after)
                << (p.revoked ? " after the revoke" : " after the freeze")
                << ", next holder started " << fmt_ms(p.promoted_after) << " after it: overlap "
                << fmt_ms(std::max<nanos>(p.overlap, 0))
                << (p.overlap < 0 ? " (gap " + fmt_ms(-p.overlap) + ")" : std::string()) << "\n";
    std::cout << std::flush;
  }

  void print_failure() {
    std::cout << "FAILED " << spec_.name << " (reproduce: invariant --seed " << opt_.seed
              << " --duration " << opt_.duration / ms << "ms --phases " << spec_.name
              << " --lock-delay " << opt_.lock_delay << ")\n";
    for (const auto& p : problems_) std::cout << "  - " << p << "\n";
    print_schedule();
  }

  void print_schedule() {
    std::cout << "  fault schedule (seed " << opt_.seed << "):\n";
    for (const auto& a : applied_)
      std::cout << "    " << at_rel(a.at, t0_) << "  " << inv::name_of(a.kind) << " "
                << (a.target.empty() ? "-" : a.target) << (a.note.empty() ? "" : "  " + a.note)
                << "\n";
    std::cout << "  interval log: " << w_.log_path() << std::endl;
  }

  void problem(const std::string& p) { problems_.push_back(p); }

  struct probe_line {
    int round = 0;
    bool ignores = false;
    bool revoked = false;  ///< the revoke round (else a freeze)
    nanos killed_after = 0, promoted_after = 0, overlap = 0;
  };

  const options& opt_;
  const timing& tm_;
  conch::test::etcd_server& etcd_;
  phase_spec spec_;
  std::string prefix_;
  std::string exe_;
  inv::world w_;
  nanos t0_ = 0;
  nanos last_fault_ = 0;
  nanos converged_in_ = -1;
  nanos drained_in_ = 0;
  nanos handover_max_ = 0;
  int spawned_ = 0;
  nanos next_spawn_ = 0;
  std::vector<applied_fault> applied_;
  std::vector<inv::window> windows_;
  std::vector<inv::fault_kind> window_kinds_;  ///< parallel to windows_
  std::vector<std::string> problems_;
  std::vector<probe_line> probes_;
};

[[noreturn]] void usage_error(const std::string& why) {
  std::cerr << "invariant: " << why << " (see --help)\n";
  std::exit(64);
}

options parse(int argc, char** argv) {
  options o;
  bool seeded = false;
  if (const char* e = std::getenv("CONCH_TEST_BIN"))
    o.conch = e;
  else
    o.conch = std::string(CONCH_BIN_DIR) + "/conch";
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) usage_error(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  auto number = [&](const std::string& flag, const std::string& v, long long lo, long long hi) {
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || n < lo || n > hi)
      usage_error(flag + ": \"" + v + "\" is not a number in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "]");
    return n;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout
          << "usage: invariant [--seed N] [--duration D] [--phases probe,sema,elect] [--max N]\n"
             "                 [--contenders K] [--lock-delay auto|0|D] [--conch PATH] [--keep]\n"
             "                 [--verbose]\n"
             "Runs conch contenders under a seeded fault schedule against a throwaway etcd and\n"
             "checks bounded concurrency, convergence and fencing tokens (docs/invariants.md).\n"
             "--duration is the fault time of sema and elect together (default 60s).\n"
             "--lock-delay is passed to every contender (default auto, conch's default): with a\n"
             "delay no overlap at all is allowed; with 0, overlap up to kill-after + one event\n"
             "delivery + slack after an induced loss (1.5s).\n";
      std::exit(0);
    } else if (a == "--seed") {
      const std::string v = value(i);
      char* end = nullptr;
      errno = 0;
      o.seed = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || v.front() == '-')
        usage_error("--seed: \"" + v + "\" is not a number");
      seeded = true;
    } else if (a == "--duration") {
      auto d = conch::detail::parse_duration(value(i));
      if (!d) usage_error("--duration: " + d.error().message);
      if (d->count() < 2000) usage_error("--duration: at least 2s");
      o.duration = d->count() * ms;
    } else if (a == "--phases") {
      o.phases.clear();
      std::istringstream s(value(i));
      for (std::string p; std::getline(s, p, ',');) {
        if (p != "probe" && p != "sema" && p != "elect")
          usage_error("--phases: unknown phase \"" + p + "\"");
        o.phases.push_back(p);
      }
      if (o.phases.empty()) usage_error("--phases: empty");
    } else if (a == "--max") {
      o.sema_max = static_cast<int>(number(a, value(i), 1, 8));
    } else if (a == "--contenders") {
      o.sema_contenders = static_cast<int>(number(a, value(i), 2, 32));
      o.elect_contenders = std::max(2, o.sema_contenders * 2 / 3);
    } else if (a == "--lock-delay") {
      o.lock_delay = value(i);
      if (o.lock_delay != "auto") {
        auto d = conch::detail::parse_duration(o.lock_delay);
        if (!d) usage_error("--lock-delay: " + d.error().message);
      }
    } else if (a == "--conch") {
      o.conch = value(i);
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--verbose") {
      o.verbose = true;
    } else {
      usage_error("unknown argument \"" + a + "\"");
    }
  }
  if (::access(o.conch.c_str(), X_OK) != 0)
    usage_error("conch binary not found at " + o.conch + " (--conch PATH)");
  if (!seeded) o.seed = std::random_device{}() % 1'000'000;
  return o;
}

void on_stop_signal(int) { inv::interrupted = 1; }

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && argv[1] == inv::child_argument) return inv::child_main(argc, argv);
  const options opt = parse(argc, argv);
  std::cout << "invariant: seed " << opt.seed << ", duration " << opt.duration / ms
            << "ms, lock delay " << opt.lock_delay << ", conch " << opt.conch << std::endl;

  // What our wrappers leave behind when killed becomes ours to reap and end.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  char tmpl[] = "/tmp/conch-invariant-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::cerr << "invariant: mkdtemp failed\n";
    return 1;
  }
  const std::string dir = tmpl;
  timing tm;
  if (opt.lock_delay != "auto")
    tm.lock_delay = conch::detail::parse_duration(opt.lock_delay)->count() > 0;
  bool ok = true;
  int code = 0;
  try {
    conch::test::etcd_server etcd;
    std::uint64_t salt = 0;
    for (const auto& name : opt.phases) {
      phase_spec spec{.name = name, .salt = ++salt * 0x9e3779b97f4a7c15ULL};
      if (name == "probe") {
        spec = {.name = name, .recipe = "elect", .office = "probe", .capacity = 1, .contenders = 2};
      } else if (name == "sema") {
        spec.recipe = "sema";
        spec.office = "pool";
        spec.capacity = opt.sema_max;
        spec.contenders = opt.sema_contenders;
        spec.duration = opt.duration / 2;
      } else {
        spec.recipe = "elect";
        spec.office = "office";
        spec.capacity = 1;
        spec.contenders = opt.elect_contenders;
        spec.duration = opt.duration / 2;
      }
      phase_run run{opt, tm, etcd, dir, spec};
      ok = run.run() && ok;
    }
  } catch (const inv::interrupted_error&) {
    std::cout << "invariant: interrupted; every process ended" << std::endl;
    code = 130;
  } catch (const std::exception& e) {
    std::cout << "invariant: " << e.what() << " (seed " << opt.seed << ")" << std::endl;
    code = 1;
  }
  if (code == 0 && !ok) code = 1;
  if (code == 0)
    std::cout << "invariant: PASS (seed " << opt.seed << ")" << std::endl;
  else if (code == 1)
    std::cout << "invariant: FAIL (seed " << opt.seed << ")" << std::endl;
  std::error_code ec;
  if (code == 0 && !opt.keep)
    std::filesystem::remove_all(dir, ec);
  else
    std::cout << "invariant: logs kept in " << dir << std::endl;
  return code;
}
