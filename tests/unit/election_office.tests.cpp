// Who leads an office, as an observer sees it from a read plus watch events.
#include "conch/logic/election_office.hpp"

#include <catch2/catch.hpp>

using conch::key_value;
using conch::watch_event;
using conch::detail::leader_changed;
using conch::detail::office_view;

namespace {

key_value candidate(std::string key, conch::revision created, conch::revision modified = 0) {
  key_value kv;
  kv.key = std::move(key);
  kv.create_revision = created;
  kv.mod_revision = modified ? modified : created;
  return kv;
}
watch_event put(key_value kv) { return {watch_event::kind::put, std::move(kv), std::nullopt}; }
watch_event del(std::string key) {
  key_value kv;
  kv.key = std::move(key);
  return {watch_event::kind::del, std::move(kv), std::nullopt};
}

}  // namespace

TEST_CASE("the lowest create_revision leads, whatever the key order") {
  office_view office;
  office.reset({candidate("o/3", 30), candidate("o/1", 12), candidate("o/2", 20)});
  REQUIRE(office.leader()->key == "o/1");
  REQUIRE(office.candidates() == 3);
}

TEST_CASE("an empty office has no leader") {
  office_view office;
  REQUIRE_FALSE(office.leader());
  office.reset({candidate("o/a", 5)});
  office.apply(del("o/a"));
  REQUIRE_FALSE(office.leader());
}

TEST_CASE("the leader's delete hands the office to the next by create_revision") {
  office_view office;
  office.reset({candidate("o/a", 5), candidate("o/b", 7)});
  office.apply(put(candidate("o/c", 6)));
  office.apply(del("o/a"));
  REQUIRE(office.leader()->key == "o/c");
  office.apply(del("o/c"));
  REQUIRE(office.leader()->key == "o/b");
}

TEST_CASE("a waiter's delete does not change the leader") {
  office_view office;
  office.reset({candidate("o/a", 5), candidate("o/b", 7)});
  const auto before = office.leader();
  office.apply(del("o/b"));
  REQUIRE_FALSE(leader_changed(before, office.leader()));
}

TEST_CASE("a proclaim (new value on the leader's key) is a change; a waiter joining is not") {
  office_view office;
  office.reset({candidate("o/a", 5)});
  const auto before = office.leader();
  office.apply(put(candidate("o/b", 9)));
  REQUIRE_FALSE(leader_changed(before, office.leader()));
  office.apply(put(candidate("o/a", 5, 11)));
  REQUIRE(leader_changed(before, office.leader()));
}

TEST_CASE("a re-created leader key (same name, new create_revision) is a change") {
  const std::optional<key_value> before = candidate("o/a", 5);
  REQUIRE(leader_changed(before, candidate("o/a", 12)));
  REQUIRE(leader_changed(before, std::nullopt));
  REQUIRE(leader_changed(std::nullopt, before));
  REQUIRE_FALSE(leader_changed(std::nullopt, std::nullopt));
}
