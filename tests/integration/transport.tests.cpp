// The etcd transport against a real etcd: KV, txn, leases, watches, streams.
#include "conch/policies/etcd_transport.hpp"

#include <catch2/catch.hpp>

#include <thread>

#include "support/etcd_harness.hpp"

using namespace std::chrono_literals;
using conch::test::etcd_server;

namespace {

conch::deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

conch::etcd_transport client() { return conch::etcd_transport{etcd_server::shared().client_options()}; }

}  // namespace

TEST_CASE("put, range and delete round-trip") {
  auto etcd = client();
  auto p = conch::test::unique_prefix();
  auto put = etcd.put({.key = p + "a", .value = "1"}, etcd.default_deadline());
  REQUIRE(put);
  CHECK(put->header_revision > 0);
  REQUIRE(etcd.put({.key = p + "b", .value = "2"}, etcd.default_deadline()));

  auto all = etcd.range(conch::range_request::prefix(p), etcd.default_deadline());
  REQUIRE(all);
  REQUIRE(all->kvs.size() == 2);
  CHECK(all->kvs[0].key == p + "a");
  CHECK(all->kvs[0].value == "1");
  CHECK(all->kvs[0].create_revision == put->header_revision);
  CHECK(all->kvs[1].value == "2");

  auto del = etcd.delete_range({.key = p + "a", .prev_kv = true}, etcd.default_deadline());
  REQUIRE(del);
  CHECK(del->deleted == 1);
  REQUIRE(del->prev_kvs.size() == 1);
  CHECK(del->prev_kvs[0].value == "1");
  auto left = etcd.range(conch::range_request::prefix(p), etcd.default_deadline());
  REQUIRE(left);
  CHECK(left->kvs.size() == 1);
}
