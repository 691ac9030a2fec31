#include "conch/logic/txn_batch.hpp"

#include "conch/logic/cron_txn.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>
#include <set>
#include <string>
#include <vector>

using namespace conch;
using namespace std::string_literals;
using conch::detail::batch_limits;
using conch::detail::compose_batch;

namespace {

txn_request put_if_absent(const std::string& key) {
  txn_request t;
  t.compares.push_back(compare::create_revision(key) == 0);
  t.success.emplace_back(put_request{.key = key, .value = "v"});
  t.failure.emplace_back(range_request{.key = key});
  return t;
}

txn_request read_only(const std::string& key, const std::string& range_end = {}) {
  txn_request t;
  t.success.emplace_back(range_request{.key = key, .range_end = range_end});
  return t;
}

txn_request delete_range(const std::string& key, const std::string& range_end) {
  txn_request t;
  t.success.emplace_back(delete_request{.key = key, .range_end = range_end});
  return t;
}

std::vector<std::size_t> compose(const std::vector<txn_request>& txns, batch_limits l = {}) {
  std::vector<const txn_request*> p;
  for (const auto& t : txns) p.push_back(&t);
  return compose_batch(p, l);
}

}  // namespace

TEST_CASE("independent txns share one batch, in the order they came", "[txn_batch]") {
  const std::vector<txn_request> txns{put_if_absent("a"), put_if_absent("b"), read_only("a"),
                                      put_if_absent("c")};
  // "a" is written by the first, so the read of "a" waits; the rest go.
  CHECK(compose(txns) == std::vector<std::size_t>{0, 1, 3});
}

TEST_CASE("two txns that write one key never share a batch", "[txn_batch]") {
  const std::vector<txn_request> txns{put_if_absent("k"), put_if_absent("k"), put_if_absent("j")};
  CHECK(compose(txns) == std::vector<std::size_t>{0, 2});
  // The one left out goes first next time.
  const std::vector<txn_request> rest{put_if_absent("k")};
  CHECK(compose(rest) == std::vector<std::size_t>{0});
}

TEST_CASE("reads alone never conflict", "[txn_batch]") {
  const std::vector<txn_request> txns{read_only("a"), read_only("a"), read_only("", "\0"s)};
  CHECK(compose(txns).size() == 3);
}

TEST_CASE("a txn that waits keeps later txns on its keys behind it", "[txn_batch]") {
  // The second writes k and j; it waits for the first (k). The third writes
  // j only: it does not overtake the second.
  txn_request both = put_if_absent("k");
  both.success.emplace_back(put_request{.key = "j", .value = "v"});
  const std::vector<txn_request> txns{put_if_absent("k"), both, put_if_absent("j"),
                                      put_if_absent("x")};
  CHECK(compose(txns) == std::vector<std::size_t>{0, 3});
}

TEST_CASE("ranges conflict with the keys inside them", "[txn_batch]") {
  SECTION("a delete range and a put inside it") {
    const std::vector<txn_request> txns{delete_range("p/", prefix_end("p/")), put_if_absent("p/x"),
                                        put_if_absent("q/x")};
    CHECK(compose(txns) == std::vector<std::size_t>{0, 2});
  }
  SECTION("a ranged compare and a write inside it, and one past its end") {
    const std::vector<txn_request> txns{put_if_absent("f/5"),
                                        [] {
                                          txn_request t;
                                          t.compares.push_back(detail::no_floor_above("f/", "3"));
                                          return t;
                                        }(),
                                        put_if_absent("g")};
    CHECK(compose(txns) == std::vector<std::size_t>{0, 2});
  }
  SECTION("a range to the end of the keyspace") {
    const std::vector<txn_request> txns{read_only("m", "\0"s), put_if_absent("z"),
                                        put_if_absent("a")};
    CHECK(compose(txns) == std::vector<std::size_t>{0, 2});
  }
}

TEST_CASE("a batch spends at most 128 ops along its nesting and stays under its byte budget",
          "[txn_batch]") {
  std::vector<txn_request> txns;
  for (int i = 0; i < 300; ++i) txns.push_back(put_if_absent("k" + std::to_string(i)));
  auto batch = compose(txns);
  REQUIRE(batch.size() == 127);  // 127 inner txns + 1 op each
  CHECK(batch.front() == 0);
  CHECK(batch.back() == 126);
  // The widest inner txn counts: one with 4 compares leaves room for 124.
  txns[5].compares.resize(4, compare::version("w") == 0);
  CHECK(compose(txns).size() == 124);
  // A byte budget smaller than two txns: one at a time, the first always.
  CHECK(compose(txns, {.max_ops = 128, .max_bytes = 1}) == std::vector<std::size_t>{0});
  // A txn too wide to share: alone.
  txns[0].success.resize(128, put_request{.key = "w"});
  CHECK(compose(txns) == std::vector<std::size_t>{0});
}

TEST_CASE("a tick's claim and the previous tick's result on the running key wait", "[txn_batch]") {
  const detail::running_take take{"c/running/j", "r", 7};
  const std::vector<txn_request> txns{
      detail::result_txn("c/fire/j/1", 10, "c/runs/j/1", "done", "c/running/j", 10),
      detail::claim_txn("c/fire/j/", "c/floor/j/", "2", "claim", "c/jobs/j", 3, &take),
      detail::claim_txn("c/fire/k/", "c/floor/k/", "2", "claim", "c/jobs/k", 4, nullptr)};
  CHECK(compose(txns) == std::vector<std::size_t>{0, 2});
}

namespace {

// What a txn writes and what it only reads, over single keys.
struct footprint {
  std::set<std::string> writes, reads;
};
footprint footprint_of(const txn_request& t) {
  footprint f;
  for (const auto& c : t.compares) f.reads.insert(c.key);
  for (const auto* ops : {&t.success, &t.failure})
    for (const auto& op : *ops) {
      if (const auto* r = std::get_if<range_request>(&op)) f.reads.insert(r->key);
      if (const auto* p = std::get_if<put_request>(&op)) f.writes.insert(p->key);
      if (const auto* d = std::get_if<delete_request>(&op)) f.writes.insert(d->key);
    }
  return f;
}
bool clash(const footprint& a, const footprint& b) {
  for (const auto& k : a.writes)
    if (b.writes.count(k) || b.reads.count(k)) return true;
  for (const auto& k : b.writes)
    if (a.reads.count(k)) return true;
  return false;
}

}  // namespace

TEST_CASE("composed batches: no clash inside, order kept, nothing left out that could go",
          "[txn_batch]") {
  rc::prop("model check over random single-key txns", [] {
    const auto n = *rc::gen::inRange<std::size_t>(1, 60);
    const auto cap = *rc::gen::inRange<std::size_t>(2, 24);
    std::vector<txn_request> txns;
    for (std::size_t i = 0; i < n; ++i) {
      txn_request t;
      const auto ops = *rc::gen::inRange(1, 4);
      for (int j = 0; j < ops; ++j) {
        const std::string key(1, static_cast<char>('a' + *rc::gen::inRange(0, 12)));
        switch (*rc::gen::inRange(0, 4)) {
          case 0:
            t.compares.push_back(compare::version(key) == 0);
            break;
          case 1:
            t.success.emplace_back(range_request{.key = key});
            break;
          case 2:
            t.success.emplace_back(put_request{.key = key});
            break;
          default:
            t.failure.emplace_back(delete_request{.key = key});
            break;
        }
      }
      txns.push_back(std::move(t));
    }
    const auto batch = compose(txns, {.max_ops = cap});
    RC_ASSERT(!batch.empty() && batch.front() == 0);  // the first always goes
    std::size_t widest = 0;
    for (auto i : batch) widest = std::max(widest, detail::txn_ops(txns[i]));
    RC_ASSERT(batch.size() == 1 || batch.size() + widest <= cap);  // etcd's op budget
    RC_ASSERT(std::is_sorted(batch.begin(), batch.end()));         // arrival order
    const std::set<std::size_t> in(batch.begin(), batch.end());
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < i; ++j) {
        const bool c = clash(footprint_of(txns[i]), footprint_of(txns[j]));
        RC_ASSERT(!(in.count(i) && in.count(j) && c));  // nothing in a batch clashes
        RC_ASSERT(!(in.count(i) && c));                 // nor overtakes an earlier clash
      }
    // Work-conserving: a txn left out clashes with an earlier one, or comes
    // after the first txn past the last taken that the op budget had no room for.
    std::size_t cut = n;
    for (std::size_t k = batch.back() + 1; k < n && cut == n; ++k)
      if (batch.size() + 1 + std::max(widest, detail::txn_ops(txns[k])) > cap) cut = k;
    for (std::size_t i = 0; i < cut; ++i) {
      bool clashes = false;
      for (std::size_t j = 0; j < i; ++j)
        clashes = clashes || clash(footprint_of(txns[i]), footprint_of(txns[j]));
      RC_ASSERT(clashes == !in.count(i));
    }
  });
}
