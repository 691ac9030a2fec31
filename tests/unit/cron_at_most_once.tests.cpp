// At most once, whatever the clocks: the real claim, result and prune txns
// (logic/cron_txn.hpp) applied to a small model of etcd's txn semantics,
// under random interleavings of daemons with skewed clocks claiming ticks,
// runs finishing or dying, and pruners that read, decide and write later.
#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_prune.hpp"
#include "conch/logic/cron_txn.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <rapidcheck/catch.h>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

using namespace conch;
using namespace conch::detail;

namespace {

/// etcd's txn semantics, as far as cron's txns use them: one revision per
/// writing txn, compares on a key or a range, VALUE on an absent key fails,
/// any other target on an absent key (or an empty range) reads as 0.
class model_etcd {
 public:
  struct entry {
    std::string value;
    revision create = 0, mod = 0;
  };

  txn_response txn(const txn_request& t) {
    bool ok = true;
    for (const auto& c : t.compares) ok = ok && holds(c);
    txn_response r;
    bool wrote = false;
    for (const auto& op : ok ? t.success : t.failure) r.responses.push_back(apply(op, wrote));
    if (wrote) ++rev_;
    r.succeeded = ok;
    r.header_revision = rev_;
    return r;
  }
  std::vector<key_value> range(const std::string& dir) const {
    std::vector<key_value> out;
    for (auto it = kv_.lower_bound(dir); it != kv_.end() && it->first.starts_with(dir); ++it)
      out.push_back({it->first, it->second.value, it->second.create, it->second.mod, 1, 0});
    return out;
  }
  bool has(const std::string& key) const { return kv_.contains(key); }
  revision rev() const { return rev_; }

 private:
  static bool rel(compare::relation r, auto a, auto b) {
    switch (r) {
      case compare::relation::equal:
        return a == b;
      case compare::relation::not_equal:
        return a != b;
      case compare::relation::less:
        return a < b;
      case compare::relation::greater:
        return a > b;
    }
    return false;
  }
  bool one(const compare& c, const entry& e) const {
    switch (c.what) {
      case compare::target::create:
        return rel(c.rel, e.create, c.number);
      case compare::target::mod:
        return rel(c.rel, e.mod, c.number);
      case compare::target::value:
        return rel(c.rel, e.value, c.text);
      default:
        return false;
    }
  }
  bool holds(const compare& c) const {
    std::vector<const entry*> in;
    if (c.range_end.empty()) {
      if (auto it = kv_.find(c.key); it != kv_.end()) in.push_back(&it->second);
    } else {
      for (auto it = kv_.lower_bound(c.key); it != kv_.end() && it->first < c.range_end; ++it)
        in.push_back(&it->second);
    }
    if (in.empty()) return c.what != compare::target::value && one(c, entry{});
    for (const auto* e : in)
      if (!one(c, *e)) return false;
    return true;
  }
  response_op apply(const request_op& op, bool& wrote) {
    if (const auto* p = std::get_if<put_request>(&op)) {
      auto& e = kv_[p->key];
      if (e.create == 0) e.create = rev_ + 1;
      e.mod = rev_ + 1;
      e.value = p->value;
      wrote = true;
      return put_response{};
    }
    if (const auto* d = std::get_if<delete_request>(&op)) {
      auto from = kv_.lower_bound(d->key);
      auto to = d->range_end.empty()
                    ? (from != kv_.end() && from->first == d->key ? std::next(from) : from)
                    : kv_.lower_bound(d->range_end);
      wrote = wrote || from != to;
      kv_.erase(from, to);
      return delete_response{};
    }
    const auto& r = std::get<range_request>(op);
    range_response out;
    if (auto it = kv_.find(r.key); it != kv_.end())
      out.kvs.push_back({it->first, it->second.value, it->second.create, it->second.mod, 1, 0});
    return out;
  }

  std::map<std::string, entry> kv_;
  revision rev_ = 1;
};

const std::string fire_dir = "p/cron/fire/j/", runs_dir = "p/cron/runs/j/",
                  floor_dir = "p/cron/floor/j/";
const std::string job_key = "p/cron/jobs/j";

std::string tick_text(int t) {
  return format_tick(tick_time{std::chrono::seconds{1'800'000'000 + t}});
}

struct run {
  int tick;
  lease_id lease;
  bool alive = true, resulted = false;
};

struct pending_prune {
  std::string floor;
  revision read;
};

/// The floor: the highest marker, or "" (everything claimable).
std::string floor_of(const model_etcd& etcd) {
  auto markers = etcd.range(floor_dir);
  return markers.empty() ? std::string() : markers.back().key.substr(floor_dir.size());
}

}  // namespace

TEST_CASE(
    "no tick is claimed twice and no live run loses its claim, whatever the clocks and "
    "interleavings",
    "[cron]") {
  rc::prop("claim/prune/skew interleavings", [] {
    const auto skews = *rc::gen::container<std::vector<int>>(3, rc::gen::inRange(-15, 4));
    const auto keep = *rc::gen::inRange<std::size_t>(1, 4);
    const auto slack = *rc::gen::inRange<std::size_t>(0, 3);
    const auto steps = *rc::gen::scale(
        4, rc::gen::container<std::vector<std::tuple<int, int, int>>>(rc::gen::tuple(
               rc::gen::inRange(0, 6), rc::gen::inRange(0, 3), rc::gen::inRange(0, 50))));
    model_etcd etcd;
    etcd.txn({{}, {put_request{job_key, "{}", 0}}, {}});
    const revision job_rev = etcd.rev();
    int now = 20;
    lease_id next_lease = 1;
    std::map<int, int> claims_won;  // tick -> successful claims, ever
    std::vector<run> runs;
    std::vector<pending_prune> pending;
    std::string floor;
    for (const auto& [op, who, pick] : steps) {
      if (op == 0) ++now;
      if (op == 1) {  // daemon `who` claims one of its recent ticks, perhaps late
        const int t = now + skews[static_cast<std::size_t>(who)] - pick % 4;
        if (t < 0) continue;
        claim_record c{};
        c.tick = tick_time{std::chrono::seconds{t}};
        c.lease = lease_hex(next_lease);
        const std::string value = encode_record(c);
        auto r = etcd.txn(claim_txn(fire_dir, floor_dir, tick_text(t), value, job_key, job_rev));
        if (r.succeeded) {
          RC_ASSERT(++claims_won[t] == 1);  // at most once
          runs.push_back({t, next_lease++});
        }
      }
      auto live = [&](run& r) { return r.alive && !r.resulted; };
      if ((op == 2 || op == 3) && !runs.empty()) {  // a run ends: its result, or its claimer dies
        auto& r = runs[static_cast<std::size_t>(pick) % runs.size()];
        if (!live(r)) continue;
        if (op == 3) {
          r.alive = false;
          continue;
        }
        const std::string fire_key = fire_dir + tick_text(r.tick);
        const auto claim_rev =
            etcd.range(fire_key).empty() ? 0 : etcd.range(fire_key).front().create_revision;
        RC_ASSERT(claim_rev != 0);  // a live run's claim is never pruned
        RC_ASSERT(etcd.txn(result_txn(fire_key, claim_rev, runs_dir + tick_text(r.tick), "{}"))
                      .succeeded);
        r.resulted = true;
      }
      if (op == 4) {  // a pruner reads and decides; it writes later
        auto alive = [&](lease_id id) {
          for (const auto& r : runs)
            if (r.lease == id) return r.alive;
          return false;
        };
        const auto ticks =
            claimed_ticks_from(etcd.range(fire_dir), fire_dir, etcd.range(runs_dir), runs_dir);
        if (auto f = prune_floor(ticks, keep, slack, alive)) pending.push_back({*f, etcd.rev()});
      }
      if (op == 5 && !pending.empty()) {
        const auto p = pending[static_cast<std::size_t>(pick) % pending.size()];
        pending.erase(pending.begin() +
                      static_cast<long>(static_cast<std::size_t>(pick) % pending.size()));
        etcd.txn(prune_txn(fire_dir, runs_dir, floor_dir, p.floor, p.read));
      }
      const auto f = floor_of(etcd);
      RC_ASSERT(f >= floor);  // the floor never goes down
      floor = f;
      for (const auto& r : runs)
        if (r.alive && !r.resulted) RC_ASSERT(etcd.has(fire_dir + tick_text(r.tick)));
    }
  });
}

TEST_CASE("the floor stops at an unresulted claim whose claimer may still run", "[cron]") {
  const std::vector<claimed_tick> ticks{
      {"a", true, 1}, {"b", false, 2}, {"c", true, 3}, {"d", true, 4}, {"e", true, 5}};
  CHECK(prune_floor(ticks, 2, 0, [](lease_id) { return false; }) == "d");
  CHECK(prune_floor(ticks, 2, 0, [](lease_id id) { return id == 2; }) == "b");
  CHECK_FALSE(prune_floor(ticks, 2, 3, [](lease_id) { return false; }));  // within keep + slack
  const std::vector<claimed_tick> first_running{{"a", false, 1}, {"b", true, 2}, {"c", true, 3}};
  CHECK_FALSE(prune_floor(first_running, 1, 0, [](lease_id) { return true; }));
  CHECK(prune_floor(first_running, 1, 0, [](lease_id) { return false; }) == "c");  // a zombie goes
}

TEST_CASE(
    "forbid: the claim takes the running key, so at most one run of the job runs, and a result "
    "releases only its own key",
    "[cron]") {
  rc::prop("claim-with-key/result/death interleavings", [] {
    const auto steps =
        *rc::gen::scale(4, rc::gen::container<std::vector<std::tuple<int, int>>>(
                               rc::gen::tuple(rc::gen::inRange(0, 4), rc::gen::inRange(0, 50))));
    const std::string running_key = "p/cron/running/j";
    model_etcd etcd;
    etcd.txn({{}, {put_request{job_key, "{}", 0}}, {}});
    const revision job_rev = etcd.rev();
    struct held_run {
      int tick;
      revision claim, gate;
      bool alive = true, resulted = false;
    };
    std::vector<held_run> runs;
    std::map<int, int> claims;  // tick -> claims, ever (run or recorded skipped)
    std::set<int> skipped;
    int now = 0;
    for (const auto& [op, pick] : steps) {
      auto live = [](const held_run& r) { return r.alive && !r.resulted; };
      if (op == 0) {  // the next tick is claimed, as forbid claims it
        const int t = ++now;
        claim_record c{};
        c.tick = tick_time{std::chrono::seconds{t}};
        const std::string value = encode_record(c);
        const running_take take{running_key, "{\"run\":\"" + tick_text(t) + "\"}", 7};
        auto r =
            etcd.txn(claim_txn(fire_dir, floor_dir, tick_text(t), value, job_key, job_rev, &take));
        if (r.succeeded) {
          RC_ASSERT(++claims[t] == 1);
          for (const auto& other : runs) RC_ASSERT(!live(other));  // one run at a time
          runs.push_back({t, r.header_revision, r.header_revision});
          RC_ASSERT(etcd.range(running_key).front().create_revision == r.header_revision);
          continue;
        }
        // Failed: the fire key is read first, then the running key.
        RC_ASSERT(r.responses.size() == 2);
        RC_ASSERT(std::get<range_response>(r.responses[0]).kvs.empty());
        RC_ASSERT(!std::get<range_response>(r.responses[1]).kvs.empty());
        auto s = etcd.txn(claim_recorded_txn(fire_dir, floor_dir, tick_text(t), value, job_key,
                                             job_rev, runs_dir + tick_text(t), "skipped"));
        RC_ASSERT(s.succeeded);
        RC_ASSERT(++claims[t] == 1);
        RC_ASSERT(etcd.has(runs_dir + tick_text(t)));  // recorded with its claim
        skipped.insert(t);
      }
      if (runs.empty()) continue;
      auto& r = runs[static_cast<std::size_t>(pick) % runs.size()];
      if (op == 1 && live(r)) {  // the run ends: result and release in one txn
        const bool held =
            etcd.has(running_key) && etcd.range(running_key).front().create_revision == r.gate;
        auto w = etcd.txn(result_txn(fire_dir + tick_text(r.tick), r.claim,
                                     runs_dir + tick_text(r.tick), "{}", running_key, r.gate));
        RC_ASSERT(w.succeeded == held);
        if (!w.succeeded)  // the key went with the lease: the result alone
          RC_ASSERT(etcd.txn(result_txn(fire_dir + tick_text(r.tick), r.claim,
                                        runs_dir + tick_text(r.tick), "{}"))
                        .succeeded);
        r.resulted = true;
      }
      if (op == 2 && live(r)) {  // its claimer dies: the lease takes the key along
        r.alive = false;
        if (etcd.has(running_key) && etcd.range(running_key).front().create_revision == r.gate)
          etcd.txn({{}, {delete_request{running_key, ""}}, {}});
      }
      if (op == 3) {  // a stale result of an ended run is resent: it never frees a newer run's key
        if (live(r) || !r.alive) continue;
        const bool before = etcd.has(running_key);
        (void)etcd.txn(result_txn(fire_dir + tick_text(r.tick), r.claim,
                                  runs_dir + tick_text(r.tick), "{}", running_key, r.gate));
        RC_ASSERT(etcd.has(running_key) == before);
      }
      // The key is held exactly while a run may be running.
      bool any_live = false;
      for (const auto& x : runs) any_live = any_live || live(x);
      RC_ASSERT(etcd.has(running_key) == any_live);
    }
    for (const int t : skipped) RC_ASSERT(claims[t] == 1);
  });
}
