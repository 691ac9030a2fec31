// Independent txns as one etcd write, against a real etcd: the transport's
// txn_batch (nested txns), and the group commit (detail/txn_batcher.hpp) that
// conchd's claims and results go through.
#include "conch/detail/txn_batcher.hpp"
#include "conch/etcd.hpp"

#include "support/etcd_harness.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using conch::errc;
using conch::test::etcd_server;

namespace {

conch::etcd_transport client() {
  return conch::etcd_transport{etcd_server::shared().client_options()};
}

/// Creates `key` with `value` if absent; on failure reads it.
conch::txn_request put_if_absent(const std::string& key, const std::string& value,
                                 conch::lease_id lease = 0) {
  conch::txn_request t;
  t.compares.push_back(conch::compare::create_revision(key) == 0);
  t.success.emplace_back(conch::put_request{.key = key, .value = value, .lease = lease});
  t.failure.emplace_back(conch::range_request{.key = key});
  return t;
}

std::string value_at(conch::etcd_transport& etcd, const std::string& key) {
  auto r = etcd.range({.key = key}, etcd.default_deadline());
  REQUIRE(r);
  return r->kvs.empty() ? std::string("<absent>") : r->kvs.front().value;
}

const conch::key_value* read_of(const conch::txn_response& r) {
  const auto* range =
      r.responses.empty() ? nullptr : std::get_if<conch::range_response>(&r.responses[0]);
  return range && !range->kvs.empty() ? &range->kvs.front() : nullptr;
}

/// The etcd transport, with a gate on its sends: while closed, a send waits
/// (the batcher's leader then holds its batch in flight, and callers queue
/// behind it). Counts batches and txns sent alone.
class gated_transport {
 public:
  explicit gated_transport(conch::etcd_transport& t) : t_(t) {}
  conch::deadline default_deadline() { return t_.default_deadline(); }
  conch::result<conch::txn_response> txn(const conch::txn_request& r, conch::deadline d) {
    pass();
    ++alone;
    return t_.txn(r, d);
  }
  conch::result<std::vector<conch::txn_response>> txn_batch(
      const std::vector<conch::txn_request>& b, conch::deadline d) {
    pass();
    ++batches;
    largest = std::max<std::size_t>(largest, b.size());
    return t_.txn_batch(b, d);
  }
  void close() {
    std::lock_guard lock{m_};
    open_ = false;
  }
  void open() {
    {
      std::lock_guard lock{m_};
      open_ = true;
    }
    cv_.notify_all();
  }
  /// Waits until a send is held at the closed gate.
  void await_held() {
    std::unique_lock lock{m_};
    cv_.wait(lock, [&] { return held_ > 0; });
  }

  std::atomic<int> alone{0}, batches{0};
  std::atomic<std::size_t> largest{0};

 private:
  void pass() {
    std::unique_lock lock{m_};
    ++held_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    --held_;
  }
  conch::etcd_transport& t_;
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = true;
  int held_ = 0;
};
static_assert(conch::txn_batching<gated_transport>);

/// Waits (in real time) until `n` callers queue behind the batch in flight.
template <class B>
void await_queued(const B& b, std::size_t n) {
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (b.waiting() < n) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(1ms);
  }
}

/// Closes the gate and sends a first txn (creating `key`) from a thread of its
/// own; returns once the gate holds it, so the txns sent next queue behind it.
std::jthread hold_first(gated_transport& gated,
                        conch::detail::txn_batcher<gated_transport>& batcher,
                        const std::string& key) {
  gated.close();
  std::jthread first{
      [&batcher, key] { (void)batcher.txn(put_if_absent(key, "1"), batcher.default_deadline()); }};
  gated.await_held();
  return first;
}

}  // namespace

TEST_CASE("txn_batch: independent txns in one write, each answered on its own") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  REQUIRE(etcd.put({.key = p + "taken", .value = "theirs"}, etcd.default_deadline()));
  auto before = etcd.range({.key = p + "taken"}, etcd.default_deadline());
  REQUIRE(before);
  conch::txn_request read;
  read.success.emplace_back(conch::range_request{.key = p + "taken"});
  auto r = etcd.txn_batch({put_if_absent(p + "free", "mine"), put_if_absent(p + "taken", "mine"),
                           read, put_if_absent(p + "free2", "mine")},
                          etcd.default_deadline());
  REQUIRE(r);
  REQUIRE(r->size() == 4);
  CHECK((*r)[0].succeeded);
  CHECK_FALSE((*r)[1].succeeded);
  REQUIRE(read_of((*r)[1]));
  CHECK(read_of((*r)[1])->value == "theirs");
  CHECK((*r)[2].succeeded);
  REQUIRE(read_of((*r)[2]));
  CHECK(read_of((*r)[2])->value == "theirs");
  CHECK((*r)[3].succeeded);
  // One write: one revision for all, and it is the created keys' revision.
  CHECK((*r)[0].header_revision == before->header_revision + 1);
  for (const auto& each : *r) CHECK(each.header_revision == (*r)[0].header_revision);
  auto free = etcd.range({.key = p + "free"}, etcd.default_deadline());
  REQUIRE(free);
  REQUIRE(free->kvs.size() == 1);
  CHECK(free->kvs.front().create_revision == (*r)[0].header_revision);
  CHECK(value_at(etcd, p + "taken") == "theirs");
}

TEST_CASE("txn_batch: etcd refuses a whole batch in which two txns write one key") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  auto r = etcd.txn_batch(
      {put_if_absent(p + "k", "1"), put_if_absent(p + "j", "1"), put_if_absent(p + "k", "2")},
      etcd.default_deadline());
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::invalid_argument);
  CHECK(value_at(etcd, p + "j") == "<absent>");  // none applied
}

TEST_CASE("batcher: many threads, each gets its own answer") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  constexpr int threads = 24, rounds = 15;
  // Every third key is taken beforehand: those compares fail.
  for (int i = 0; i < threads; ++i)
    for (int k = 0; k < rounds; k += 3)
      REQUIRE(etcd.put({.key = p + std::to_string(i) + "/" + std::to_string(k), .value = "pre"},
                       etcd.default_deadline()));
  gated_transport gated{etcd};
  conch::detail::txn_batcher<gated_transport> batcher{gated};
  std::atomic<int> wrong{0}, won{0};
  std::vector<std::jthread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      for (int k = 0; k < rounds; ++k) {
        const std::string key = p + std::to_string(i) + "/" + std::to_string(k);
        const std::string mine = "thread " + std::to_string(i);
        auto r = batcher.txn(put_if_absent(key, mine), batcher.default_deadline());
        const bool taken = k % 3 == 0;
        if (!r || r->succeeded == taken) {
          ++wrong;
          continue;
        }
        if (taken && !(read_of(*r) && read_of(*r)->value == "pre")) ++wrong;
        if (!taken) ++won;
      }
    });
  pool.clear();  // joins
  INFO("batches " << gated.batches << ", largest " << gated.largest << ", alone " << gated.alone);
  CHECK(wrong == 0);
  CHECK(won == threads * (rounds - rounds / 3));
  for (int i = 0; i < threads; ++i)
    for (int k = 0; k < rounds; ++k)
      CHECK(value_at(etcd, p + std::to_string(i) + "/" + std::to_string(k)) ==
            (k % 3 == 0 ? "pre" : "thread " + std::to_string(i)));
}

TEST_CASE("batcher: callers queued behind a batch in flight go as the next batch") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  REQUIRE(etcd.put({.key = p + "q2", .value = "pre"}, etcd.default_deadline()));
  gated_transport gated{etcd};
  conch::detail::txn_batcher<gated_transport> batcher{gated};
  gated.close();
  std::vector<conch::result<conch::txn_response>> got(5, conch::error{errc::internal, "unset"});
  std::jthread first{
      [&] { got[0] = batcher.txn(put_if_absent(p + "first", "1"), batcher.default_deadline()); }};
  gated.await_held();  // the first is in flight, alone
  std::vector<std::jthread> queued;
  for (int i = 1; i < 5; ++i)
    queued.emplace_back([&, i] {
      got[i] =
          batcher.txn(put_if_absent(p + "q" + std::to_string(i), "1"), batcher.default_deadline());
    });
  await_queued(batcher, 4);
  gated.open();
  first.join();
  queued.clear();
  CHECK(gated.alone == 1);
  CHECK(gated.batches == 1);
  CHECK(gated.largest == 4);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(got[i]);
    CHECK(got[i]->succeeded == (i != 2));
  }
  REQUIRE(read_of(*got[2]));
  CHECK(read_of(*got[2])->value == "pre");
  // The four queued ones were one write.
  CHECK(got[1]->header_revision == got[4]->header_revision);
  CHECK(got[1]->header_revision == got[0]->header_revision + 1);
}

TEST_CASE("batcher: two txns that write one key go in separate batches, one wins") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  gated_transport gated{etcd};
  conch::detail::txn_batcher<gated_transport> batcher{gated};
  auto first = hold_first(gated, batcher, p + "x");
  std::vector<conch::result<conch::txn_response>> got(3, conch::error{errc::internal, "unset"});
  std::vector<std::jthread> queued;
  for (int i = 0; i < 3; ++i) {
    const std::string key = p + (i == 2 ? "other" : "same");
    queued.emplace_back([&, i, key] {
      got[i] = batcher.txn(put_if_absent(key, std::to_string(i)), batcher.default_deadline());
    });
    await_queued(batcher, static_cast<std::size_t>(i + 1));
  }
  gated.open();
  first.join();
  queued.clear();
  for (const auto& r : got) REQUIRE(r);
  CHECK(got[0]->succeeded != got[1]->succeeded);  // exactly one took "same"
  CHECK(got[2]->succeeded);
  CHECK(gated.batches == 1);  // "same" and "other", then the other "same" alone
  CHECK(gated.alone == 2);
  CHECK(value_at(etcd, p + "same") == (got[0]->succeeded ? "0" : "1"));
}

TEST_CASE("batcher: a batch etcd refuses for one txn still answers the others truly") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  REQUIRE(etcd.put({.key = p + "taken", .value = "pre"}, etcd.default_deadline()));
  gated_transport gated{etcd};
  conch::detail::txn_batcher<gated_transport> batcher{gated};
  auto first = hold_first(gated, batcher, p + "first");
  const std::vector<conch::txn_request> txns{
      put_if_absent(p + "a", "1"), put_if_absent(p + "bad", "1", 0x7eadbeef),  // no such lease
      put_if_absent(p + "taken", "1"), put_if_absent(p + "b", "1")};
  std::vector<conch::result<conch::txn_response>> got(txns.size(),
                                                      conch::error{errc::internal, "unset"});
  std::vector<std::jthread> queued;
  for (std::size_t i = 0; i < txns.size(); ++i)
    queued.emplace_back([&, i] { got[i] = batcher.txn(txns[i], batcher.default_deadline()); });
  await_queued(batcher, txns.size());
  gated.open();
  first.join();
  queued.clear();
  CHECK(gated.batches == 1);                                // refused whole
  CHECK(gated.alone == 1 + static_cast<int>(txns.size()));  // then each alone
  REQUIRE(got[0]);
  CHECK(got[0]->succeeded);
  REQUIRE_FALSE(got[1]);
  CHECK(got[1].error().code == errc::lease_not_found);
  REQUIRE(got[2]);
  CHECK_FALSE(got[2]->succeeded);
  REQUIRE(got[3]);
  CHECK(got[3]->succeeded);
  CHECK(value_at(etcd, p + "a") == "1");
  CHECK(value_at(etcd, p + "bad") == "<absent>");
  CHECK(value_at(etcd, p + "taken") == "pre");
}

TEST_CASE("batcher: a caller whose deadline passes while queued is answered unsent") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  gated_transport gated{etcd};
  conch::detail::txn_batcher<gated_transport> batcher{gated};
  auto first = hold_first(gated, batcher, p + "first");
  auto late = batcher.txn(put_if_absent(p + "late", "1"), std::chrono::steady_clock::now() + 50ms);
  REQUIRE_FALSE(late);
  CHECK(late.error().code == errc::timed_out);
  CHECK(batcher.waiting() == 0);
  gated.open();
  first.join();
  CHECK(value_at(etcd, p + "late") == "<absent>");
  CHECK(value_at(etcd, p + "first") == "1");
}

TEST_CASE("batcher: a batch lost in transit gives every caller the error") {
  etcd_server own;
  conch::etcd_transport etcd{own.client_options()};
  const auto p = conch::test::unique_prefix();
  gated_transport gated{etcd};
  conch::detail::txn_batcher<gated_transport> batcher{gated};
  gated.close();
  std::jthread first{[&] {
    (void)batcher.txn(put_if_absent(p + "first", "1"), std::chrono::steady_clock::now() + 1s);
  }};
  gated.await_held();
  std::vector<conch::result<conch::txn_response>> got(3, conch::error{errc::internal, "unset"});
  std::vector<std::jthread> queued;
  for (int i = 0; i < 3; ++i)
    queued.emplace_back([&, i] {
      got[i] = batcher.txn(put_if_absent(p + std::to_string(i), "1"),
                           std::chrono::steady_clock::now() + 20s);
    });
  await_queued(batcher, 3);
  own.stop();
  gated.open();
  first.join();
  queued.clear();
  CHECK(gated.batches == 1);  // sent once, as one batch; not resent alone
  CHECK(gated.alone == 1);
  for (const auto& r : got) {
    REQUIRE_FALSE(r);
    CHECK((r.error().code == errc::unavailable || r.error().code == errc::timed_out));
  }
}

TEST_CASE("txn_batch: the largest batch composed is one etcd takes (--max-txn-ops 128)") {
  auto etcd = client();
  const auto p = conch::test::unique_prefix();
  // Four compares each, as a claim that takes the running key has.
  std::vector<conch::txn_request> waiting;
  for (int i = 0; i < 200; ++i) {
    auto t = put_if_absent(p + std::to_string(i), "1");
    for (const char* other : {"x", "y", "z"})
      t.compares.push_back(conch::compare::version(p + other + std::to_string(i)) == 0);
    waiting.push_back(std::move(t));
  }
  std::vector<const conch::txn_request*> queue;
  for (const auto& t : waiting) queue.push_back(&t);
  std::vector<conch::txn_request> batch;
  for (std::size_t i : conch::detail::compose_batch(queue)) batch.push_back(waiting[i]);
  REQUIRE(batch.size() == 124);  // 124 txns + 4 compares each = 128 along the nesting
  // One more is over etcd's budget: refused whole.
  batch.push_back(waiting[124]);
  auto over = etcd.txn_batch(batch, etcd.default_deadline());
  REQUIRE_FALSE(over);
  CHECK(over.error().code == errc::invalid_argument);
  batch.pop_back();
  auto r = etcd.txn_batch(batch, etcd.default_deadline());
  REQUIRE(r);
  REQUIRE(r->size() == 124);
  for (const auto& each : *r) CHECK(each.succeeded);
}
