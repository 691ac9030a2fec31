#include "conch/policies/fencing.hpp"

#include <catch2/catch.hpp>

using namespace conch;

static_assert(fencing_policy<revision_fencing>);
static_assert(fencing_policy<counter_fencing>);
static_assert(fencing_policy<no_fencing>);
static_assert(std::is_empty_v<revision_fencing> && std::is_empty_v<counter_fencing> &&
              std::is_empty_v<no_fencing>);

namespace {

const fence held{"conch/sema/db/max=2/slot/1", 41, 41};
const fence_site site{"conch/sema/db/max=2/slot/1", "conch/fence/sema/db/max=2"};

bool is_create_revision_guard(const compare& c, const std::string& key, revision rev) {
  return c.key == key && c.what == compare::target::create && c.rel == compare::relation::equal &&
         c.number == rev;
}

}  // namespace

TEST_CASE("guarded txn wraps the user's ops in compare(create_revision(key) == rev)", "[fencing]") {
  put_request write;
  write.key = "app/config";
  write.value = "v2";
  const auto txn = guarded_txn(revision_fencing{}, held, {write});
  REQUIRE(txn.compares.size() == 1);
  CHECK(is_create_revision_guard(txn.compares[0], held.key, 41));
  REQUIRE(txn.success.size() == 1);
  CHECK(std::get<put_request>(txn.success[0]).key == "app/config");
  CHECK(txn.failure.empty());

  // counter_fencing guards by the key's create_revision too, not by its token.
  const fence counted{"conch/elect/web/1a", 41, 3};
  const auto c = guarded_txn(counter_fencing{}, counted, {});
  REQUIRE(c.compares.size() == 1);
  CHECK(is_create_revision_guard(c.compares[0], counted.key, 41));

  CHECK(guarded_txn(no_fencing{}, held, {write}).compares.empty());
}

TEST_CASE("fenced release is a guarded delete of exactly the holder key, whatever the policy",
          "[fencing]") {
  const auto txn = fenced_release(held);
  REQUIRE(txn.compares.size() == 1);
  CHECK(is_create_revision_guard(txn.compares[0], held.key, 41));
  REQUIRE(txn.success.size() == 1);
  const auto& del = std::get<delete_request>(txn.success[0]);
  CHECK(del.key == held.key);
  CHECK(del.range_end.empty());  // one key, never a range
  CHECK(txn.failure.empty());
}

TEST_CASE("revision fencing: the token is the create_revision, no extra ops", "[fencing]") {
  txn_request acquire;
  acquire.success.push_back(put_request{site.holder_key, "holder", 7});
  const auto first = add_acquire_ops(acquire, revision_fencing{}, site);
  CHECK(first == 1);
  CHECK(acquire.success.size() == 1);
  txn_response r;
  r.succeeded = true;
  r.responses.resize(1, put_response{});
  CHECK(*read_token(revision_fencing{}, r, first, 41) == 41);
  CHECK(read_token(revision_fencing{}, r, first, 0).error() == errc::failed_precondition);
}

TEST_CASE("counter fencing: one put with prev_kv in the acquiring txn; token = counter version",
          "[fencing]") {
  txn_request acquire;
  acquire.compares.push_back(compare::create_revision(site.holder_key) == 0);
  acquire.success.push_back(put_request{site.holder_key, "holder", 7});
  const auto first = add_acquire_ops(acquire, counter_fencing{}, site);
  REQUIRE(acquire.success.size() == 2);
  CHECK(first == 1);
  const auto& bump = std::get<put_request>(acquire.success[1]);
  CHECK(bump.key == site.counter_key);
  CHECK(bump.prev_kv);
  CHECK(bump.lease == 0);  // the counter outlives every holder

  txn_response r;
  r.succeeded = true;
  r.responses.resize(2, put_response{});  // first bump ever: no previous counter
  CHECK(*read_token(counter_fencing{}, r, first, 41) == 1);

  put_response bumped;
  bumped.prev_kv = key_value{site.counter_key, "", 5, 90, 6, 0};
  r.responses[1] = bumped;
  CHECK(*read_token(counter_fencing{}, r, first, 41) == 7);

  CHECK(read_token(counter_fencing{}, r, 5, 41).error() == errc::internal);  // responses missing
  r.responses[1] = range_response{};
  CHECK_FALSE(read_token(counter_fencing{}, r, first, 41).ok());
}

TEST_CASE("no fencing: token 0, nothing added", "[fencing]") {
  txn_request acquire;
  CHECK(add_acquire_ops(acquire, no_fencing{}, site) == 0);
  CHECK(acquire.success.empty());
  CHECK(*read_token(no_fencing{}, txn_response{}, 0, 41) == 0);
}
