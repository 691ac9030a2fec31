// semaphore against a real etcd: at most N holders, FIFO promotion, give-ups,
// per-slot tokens, separate sizes, faults while waiting, no herd.
#include "conch/semaphore.hpp"

#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"

#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using conch::errc;
using conch::test::etcd_server;
using steady = std::chrono::steady_clock;

namespace {

using semaphore = conch::basic_semaphore<>;
using session = conch::basic_session<>;

using conch::test::eventually;

// One contender: its own session (lease) and semaphore object. `begin()` runs
// acquire on a thread of its own, stopped and joined on destruction so a
// failing test never hangs on it.
struct contender {
  session s;
  semaphore sem;
  std::string record;
  std::stop_source stop;
  std::future<conch::result<void>> acquired;

  contender(conch::etcd_transport& t, const std::string& prefix, int max, std::string who = "c",
            std::chrono::seconds ttl = 30s, const std::string& name = "pool")
      : s(t, session::options{ttl, {}}),
        sem(s, prefix, name, max),
        record("{\"name\":\"" + who + "\"}") {
    REQUIRE(s.start());
  }
  ~contender() {
    stop.request_stop();
    if (acquired.valid()) acquired.wait();
  }
  void begin(semaphore::acquire_options o = {}) {
    o.stop = stop.get_token();
    acquired = std::async(std::launch::async, [this, o] { return sem.acquire(record, o); });
  }
  bool done() const {
    return taken || (acquired.valid() && acquired.wait_for(0s) == std::future_status::ready);
  }
  bool done_within(std::chrono::milliseconds d) {
    return taken || acquired.wait_for(d) == std::future_status::ready;
  }
  conch::result<void> outcome() {
    taken = true;
    return acquired.get();
  }
  bool taken = false;  // outcome() was read
  std::string queue_key() const {
    return sem.office() + "queue/" + conch::detail::lease_hex(s.lease());
  }
};

conch::semaphore_status status(conch::etcd_transport& t, const std::string& prefix, int max,
                               const std::string& name = "pool") {
  auto r = semaphore::status(t, prefix, name, max);
  REQUIRE(r);
  return *r;
}

std::vector<std::string> waiter_keys(conch::etcd_transport& t, const std::string& prefix, int max) {
  std::vector<std::string> keys;
  for (const auto& kv : status(t, prefix, max).waiters) keys.push_back(kv.key);
  return keys;
}

std::size_t holders(conch::etcd_transport& t, const std::string& prefix, int max) {
  return status(t, prefix, max).holders.size();
}

}  // namespace

TEST_CASE("N+1 contenders: exactly N hold, the last holds once one releases", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  constexpr int n = 3;
  std::vector<std::unique_ptr<contender>> cs;
  for (int i = 0; i <= n; ++i)
    cs.push_back(std::make_unique<contender>(t, prefix, n, "c" + std::to_string(i)));
  for (auto& c : cs) c->begin();

  REQUIRE(eventually([&] {
    auto st = status(t, prefix, n);
    return st.holders.size() == n && st.waiters.size() == 1;
  }));
  REQUIRE(eventually(
      [&] { return std::count_if(cs.begin(), cs.end(), [](auto& c) { return c->done(); }) == n; }));
  auto waiting = std::find_if(cs.begin(), cs.end(), [](auto& c) { return !c->done(); });
  REQUIRE(waiting != cs.end());
  std::set<int> slots;
  for (auto& c : cs)
    if (c->done()) {
      REQUIRE(c->outcome());
      CHECK(c->sem.holding());
      slots.insert(c->sem.slot());
    }
  CHECK(slots == std::set<int>{0, 1, 2});
  CHECK_FALSE((*waiting)->done_within(300ms));  // nobody released: it keeps waiting

  auto first = std::find_if(cs.begin(), cs.end(), [](auto& c) { return c->sem.holding(); });
  const int freed = (*first)->sem.slot();
  REQUIRE((*first)->sem.release());
  REQUIRE((*waiting)->done_within(5s));
  REQUIRE((*waiting)->outcome());
  CHECK((*waiting)->sem.slot() == freed);
  auto st = status(t, prefix, n);
  CHECK(st.holders.size() == n);
  CHECK(st.waiters.empty());
}

TEST_CASE("releasing promotes exactly the next waiter by revision, and tokens grow per slot",
          "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender holder{t, prefix, 1, "holder"};
  REQUIRE(holder.sem.acquire(holder.record));
  conch::revision last_token = holder.sem.token();
  CHECK(holder.sem.slot() == 0);

  std::vector<std::unique_ptr<contender>> line;
  for (int i = 0; i < 5; ++i) {
    line.push_back(std::make_unique<contender>(t, prefix, 1, "w" + std::to_string(i)));
    line.back()->begin();
    // Enqueue one at a time so the order by revision is the order of `line`.
    REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == line.size(); }));
  }
  std::vector<std::string> expected;
  for (auto& w : line) expected.push_back(w->queue_key());
  CHECK(waiter_keys(t, prefix, 1) == expected);

  semaphore* current = &holder.sem;
  for (std::size_t i = 0; i < line.size(); ++i) {
    REQUIRE(current->release());
    REQUIRE(line[i]->done_within(5s));
    REQUIRE(line[i]->outcome());
    for (std::size_t j = i + 1; j < line.size(); ++j) CHECK_FALSE(line[j]->done());
    CHECK(line[i]->sem.slot() == 0);
    CHECK(line[i]->sem.token() > last_token);  // strictly increasing per slot
    last_token = line[i]->sem.token();
    auto st = status(t, prefix, 1);
    REQUIRE(st.holders.size() == 1);
    CHECK(st.holders[0].kv.create_revision == line[i]->sem.token());
    CHECK(st.holders[0].kv.value == line[i]->record);
    CHECK(st.waiters.size() == line.size() - i - 1);
    current = &line[i]->sem;
  }
  REQUIRE(current->release());
  CHECK(holders(t, prefix, 1) == 0);
}

TEST_CASE("per-slot tokens strictly increase across successions on every slot", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, 2, "a"}, b{t, prefix, 2, "b"}, c{t, prefix, 2, "c"};
  std::map<int, conch::revision> last;
  auto take = [&](contender& x) {
    REQUIRE(x.sem.acquire(x.record, {.nonblock = true}));
    CHECK(x.sem.token() > last[x.sem.slot()]);
    last[x.sem.slot()] = x.sem.token();
  };
  for (int round = 0; round < 4; ++round) {
    take(a);
    take(b);
    REQUIRE(a.sem.release());
    take(c);  // takes the slot `a` freed
    REQUIRE(b.sem.release());
    REQUIRE(c.sem.release());
  }
  CHECK(last.size() == 2);
}

TEST_CASE("nonblock: busy at once when every slot is held, nothing left behind", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, 2, "a"}, b{t, prefix, 2, "b"}, c{t, prefix, 2, "c"};
  REQUIRE(a.sem.acquire(a.record, {.nonblock = true}));
  REQUIRE(b.sem.acquire(b.record, {.nonblock = true}));
  auto r = c.sem.acquire(c.record, {.nonblock = true});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::busy);
  CHECK_FALSE(c.sem.holding());
  CHECK(c.sem.queue_key().empty());
  auto st = status(t, prefix, 2);
  CHECK(st.holders.size() == 2);
  CHECK(st.waiters.empty());
  // And it does not jump a queue: with a waiter in line, a freed slot is the waiter's.
  c.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 2).size() == 1; }));
  contender d{t, prefix, 2, "d"};
  REQUIRE(a.sem.release());
  REQUIRE(c.done_within(5s));
  REQUIRE(c.outcome());
  auto busy = d.sem.acquire(d.record, {.nonblock = true});
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == errc::busy);
}

TEST_CASE("timeout: gives up, removes our queue key, and the line closes up behind us",
          "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender holder{t, prefix, 1, "holder"}, impatient{t, prefix, 1, "impatient"},
      patient{t, prefix, 1, "patient"};
  REQUIRE(holder.sem.acquire(holder.record));
  impatient.begin({.timeout = 700ms});
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 1; }));
  patient.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 2; }));

  REQUIRE(impatient.done_within(10s));
  auto r = impatient.outcome();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::timed_out);
  CHECK(waiter_keys(t, prefix, 1) == std::vector<std::string>{patient.queue_key()});

  REQUIRE(holder.sem.release());
  REQUIRE(patient.done_within(5s));
  REQUIRE(patient.outcome());
}

TEST_CASE("cancel: stops waiting and removes our queue key", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender holder{t, prefix, 1, "holder"}, waiter{t, prefix, 1, "waiter"};
  REQUIRE(holder.sem.acquire(holder.record));
  waiter.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 1; }));
  waiter.stop.request_stop();
  REQUIRE(waiter.done_within(5s));
  auto r = waiter.outcome();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::cancelled);
  CHECK(waiter_keys(t, prefix, 1).empty());
}

TEST_CASE("a different max is a different semaphore", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender one{t, prefix, 1, "one"}, two{t, prefix, 2, "two"};
  REQUIRE(one.sem.acquire(one.record));
  REQUIRE(two.sem.acquire(two.record, {.nonblock = true}));  // not blocked by the max=1 holder
  CHECK(one.sem.office() != two.sem.office());
  CHECK(one.sem.office().find("/max=1/") != std::string::npos);
  CHECK(two.sem.office().find("/max=2/") != std::string::npos);
  auto s1 = status(t, prefix, 1), s2 = status(t, prefix, 2);
  REQUIRE(s1.holders.size() == 1);
  REQUIRE(s2.holders.size() == 1);
  CHECK(s1.holders[0].kv.value == one.record);
  CHECK(s2.holders[0].kv.value == two.record);
}

TEST_CASE("bad names and sizes are refused with a reason", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  session s{t};
  REQUIRE(s.start());
  for (int max : {0, -1, 2'000'000}) {
    semaphore bad{s, prefix, "pool", max};
    auto r = bad.acquire("{}");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::invalid_argument);
    CHECK(r.error().message.find(std::to_string(max)) != std::string::npos);
  }
  semaphore unnamed{s, prefix, "", 1};
  auto r = unnamed.acquire("{}");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::invalid_argument);
  auto st = semaphore::status(t, prefix, "pool", 0);
  REQUIRE_FALSE(st);
  CHECK(st.error().code == errc::invalid_argument);
}

TEST_CASE("one session cannot wait twice for the same semaphore", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  session s{t};
  REQUIRE(s.start());
  semaphore a{s, prefix, "pool", 2}, b{s, prefix, "pool", 2};
  REQUIRE(a.acquire("{}"));
  auto again = a.acquire("{}");
  REQUIRE_FALSE(again);
  CHECK(again.error().code == errc::failed_precondition);
  auto other = b.acquire("{}");
  REQUIRE_FALSE(other);
  CHECK(other.error().code == errc::failed_precondition);
  REQUIRE(a.release());
  REQUIRE(b.acquire("{}"));  // free again once released
}

TEST_CASE("a waiter whose queue key is revoked notices at once: lost", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender holder{t, prefix, 1, "holder"};
  contender waiter{t, prefix, 1, "waiter", 60s};  // a TTL far beyond the bound below
  REQUIRE(holder.sem.acquire(holder.record));
  waiter.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 1; }));
  REQUIRE(eventually([&] { return waiter.sem.stats().watches >= 1; }));
  etcd.revoke_lease(waiter.s.lease());
  REQUIRE(waiter.done_within(10s));
  auto r = waiter.outcome();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::lost);
  CHECK(holder.sem.holding());
  CHECK(waiter_keys(t, prefix, 1).empty());
}

TEST_CASE("a holder's revoked lease frees its slot for the next waiter", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender holder{t, prefix, 1, "holder", 60s}, waiter{t, prefix, 1, "waiter"};
  REQUIRE(holder.sem.acquire(holder.record));
  const auto first = holder.sem.token();
  waiter.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 1; }));
  etcd.revoke_lease(holder.s.lease());
  REQUIRE(eventually([&] { return holder.s.lost(); }));  // the slot key's delete was seen
  REQUIRE(waiter.done_within(10s));
  REQUIRE(waiter.outcome());
  CHECK(waiter.sem.token() > first);
}

TEST_CASE("compaction and an etcd restart while waiting: waiters keep their places",
          "[semaphore][fault]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender holder{t, prefix, 1, "holder"}, first{t, prefix, 1, "first"},
      second{t, prefix, 1, "second"};
  REQUIRE(holder.sem.acquire(holder.record));
  first.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 1; }));
  second.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 2; }));
  REQUIRE(eventually(
      [&] { return first.sem.stats().watches >= 1 && second.sem.stats().watches >= 1; }));
  const auto before = status(t, prefix, 1).waiters;
  const auto reads_before = first.sem.stats().reads + second.sem.stats().reads;

  // Move history past the waiters' watch start revisions and compact it away,
  // then restart etcd: the watches resume from a compacted revision.
  for (int i = 0; i < 20; ++i)
    REQUIRE(t.put({prefix + "noise", std::to_string(i)}, t.default_deadline()));
  etcd.compact();
  etcd.restart();

  // The resumed watches hit the compacted revision: both waiters re-read...
  CHECK(eventually(
      [&] { return first.sem.stats().reads + second.sem.stats().reads >= reads_before + 2; }));
  CHECK_FALSE(first.done());  // ...and kept waiting, in the same places
  auto after = status(t, prefix, 1).waiters;
  REQUIRE(after.size() == 2);
  CHECK(after[0].key == before[0].key);
  CHECK(after[0].create_revision == before[0].create_revision);
  CHECK(after[1].create_revision == before[1].create_revision);

  REQUIRE(holder.sem.release());
  REQUIRE(first.done_within(10s));
  REQUIRE(first.outcome());
  CHECK_FALSE(second.done_within(200ms));
  REQUIRE(first.sem.release());
  REQUIRE(second.done_within(10s));
  REQUIRE(second.outcome());
}

TEST_CASE("no herd: O(1) watch events per release with 50 waiters", "[semaphore][herd]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  constexpr int waiters = 50, releases = 10;
  contender holder{t, prefix, 1, "holder"};
  REQUIRE(holder.sem.acquire(holder.record));
  std::vector<std::unique_ptr<contender>> line;
  for (int i = 0; i < waiters; ++i) {
    line.push_back(std::make_unique<contender>(t, prefix, 1, "w" + std::to_string(i)));
    line.back()->begin();
  }
  // Everyone enqueued and watching before we count.
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == waiters; }, 30s));
  REQUIRE(eventually(
      [&] {
        return std::all_of(line.begin(), line.end(),
                           [](auto& c) { return c->sem.stats().watches >= 1; });
      },
      30s));
  auto total = [&] {
    conch::semaphore_stats sum;
    for (auto& c : line) {
      auto s = c->sem.stats();
      sum.watch_events += s.watch_events;
      sum.watches += s.watches;
    }
    return sum;
  };
  const auto start = total();

  semaphore* current = &holder.sem;
  for (int i = 0; i < releases; ++i) {
    REQUIRE(current->release());
    // Exactly one more holder each time.
    contender* next = nullptr;
    REQUIRE(eventually([&] {
      for (auto& c : line)
        if (!c->taken && c->done()) next = c.get();
      return next != nullptr;
    }));
    REQUIRE(next->outcome());
    current = &next->sem;
    CHECK(std::count_if(line.begin(), line.end(), [](auto& c) { return c->done(); }) == i + 1);
  }
  const auto end = total();
  const auto events = end.watch_events - start.watch_events;
  const auto watches = end.watches - start.watches;
  INFO("watch events: " << events << ", watches opened: " << watches << " over " << releases
                        << " releases");
  // One for the head (its slot is freed), one for the waiter behind it (the
  // head left the queue); a herd would deliver ~50 per release.
  CHECK(events <= 2 * releases);
  CHECK(watches <= 2 * releases);
  CHECK(events >= releases);  // the counter counts: the head was woken by an event each time
}

namespace {
struct counted_policies : conch::default_policies {
  using fencing = conch::counter_fencing;
};
}  // namespace

TEST_CASE("counter fencing: a dense token per slot; the slot key names its slot", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  conch::basic_session<counted_policies> s{t};
  REQUIRE(s.start());
  conch::basic_semaphore<counted_policies> sem{s, prefix, "pool", 1};
  auto named = [](int slot) { return "{\"slot\":" + std::to_string(slot) + "}"; };
  for (std::int64_t expected = 1; expected <= 3; ++expected) {
    REQUIRE(sem.acquire("{}", {.slot_value = named}));
    CHECK(sem.token() == expected);
    CHECK(sem.held().key == sem.slot_key());
    auto st = status(t, prefix, 1);
    REQUIRE(st.holders.size() == 1);
    CHECK(st.holders[0].kv.value == "{\"slot\":0}");
    REQUIRE(sem.release());
  }
}

TEST_CASE("two slots freed at once: both waiters hold, in order", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, 2, "a"}, b{t, prefix, 2, "b"}, c{t, prefix, 2, "c"}, d{t, prefix, 2, "d"};
  REQUIRE(a.sem.acquire(a.record));
  REQUIRE(b.sem.acquire(b.record));
  c.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 2).size() == 1; }));
  d.begin();
  REQUIRE(eventually([&] { return waiter_keys(t, prefix, 2).size() == 2; }));
  {
    auto both = conch::txn_request{};
    both.success.emplace_back(conch::delete_request{a.sem.slot_key(), {}, false});
    both.success.emplace_back(conch::delete_request{b.sem.slot_key(), {}, false});
    REQUIRE(t.txn(both, t.default_deadline()));  // one revision frees both
  }
  REQUIRE(c.done_within(5s));
  REQUIRE(d.done_within(5s));
  REQUIRE(c.outcome());
  REQUIRE(d.outcome());
  CHECK(c.sem.token() < d.sem.token());  // c was first in line, so it claimed first
  CHECK(std::set<int>{c.sem.slot(), d.sem.slot()} == std::set<int>{0, 1});
}

TEST_CASE("destroying a waiting semaphore leaves the line", "[semaphore]") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender holder{t, prefix, 1, "holder"};
  REQUIRE(holder.sem.acquire(holder.record));
  {
    contender waiter{t, prefix, 1, "waiter"};
    waiter.begin();
    REQUIRE(eventually([&] { return waiter_keys(t, prefix, 1).size() == 1; }));
  }  // stops the acquire, then the semaphore's destructor runs
  CHECK(waiter_keys(t, prefix, 1).empty());
}
