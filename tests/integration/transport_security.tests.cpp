// The etcd transport against an etcd that demands TLS client certificates,
// and one with auth on: a user whose role covers only one prefix.
#include "conch/etcd.hpp"

#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <catch2/catch.hpp>
#include <thread>

using namespace std::chrono_literals;
using conch::errc;
using conch::test::etcd_server;

namespace {

conch::deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

conch::put_request put_of(std::string key, std::string value, conch::lease_id lease = 0) {
  conch::put_request r;
  r.key = std::move(key);
  r.value = std::move(value);
  r.lease = lease;
  return r;
}

using conch::test::eventually;

etcd_server& tls_server() {
  static etcd_server server{[] {
    conch::test::etcd_options o;
    o.client_cert_auth = true;
    return o;
  }()};
  return server;
}

// An etcd with auth on: root, and "alice" whose role covers one prefix only.
struct auth_etcd {
  etcd_server server;
  std::string prefix = conch::test::unique_prefix();
  auth_etcd() {
    server.add_user("alice", "alice-pw", prefix);
    server.enable_auth();
  }
  conch::transport_options as(std::string user, std::string password) const {
    auto o = server.client_options();
    o.user = std::move(user);
    o.password = std::move(password);
    return o;
  }
};

auth_etcd& auth() {
  static auth_etcd instance;
  return instance;
}

}  // namespace

TEST_CASE("TLS with client certificates: calls, watches and keepalives work") {
  auto& server = tls_server();
  conch::etcd_transport etcd{server.client_options()};
  auto p = conch::test::unique_prefix();
  auto put = etcd.put(put_of(p + "k", "v"), etcd.default_deadline());
  REQUIRE(put);
  auto w = etcd.watch(conch::watch_request::prefix(p, put->header_revision));
  auto b = w.next(in(5s));
  REQUIRE(b);
  REQUIRE(b->events.size() == 1);
  CHECK(b->events[0].kv.value == "v");
  auto lease = etcd.lease_grant(5, etcd.default_deadline());
  REQUIRE(lease);
  auto ka = etcd.keepalive(lease->id);
  REQUIRE(ka.send());
  CHECK(ka.next(in(5s)).value_or(-1) == 5);
}

TEST_CASE("TLS: no client certificate, or plaintext, is refused with a one-line error") {
  auto& server = tls_server();
  SECTION("no client certificate") {
    auto opts = server.client_options();
    opts.cert_file.clear();
    opts.key_file.clear();
    conch::etcd_transport etcd{opts};
    auto r = etcd.range(conch::range_request::prefix("x"), in(3s));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::unavailable);
    CHECK_THAT(r.error().message, Catch::Contains(server.endpoint()));
  }
  SECTION("plaintext to a TLS port") {
    conch::transport_options opts;
    opts.endpoints = {server.endpoint()};
    opts.dial_timeout = 500ms;
    conch::etcd_transport etcd{opts};
    auto r = etcd.range(conch::range_request::prefix("x"), in(3s));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::unavailable);
  }
  SECTION("a CA that did not sign the server") {
    auto opts = server.client_options();
    opts.ca_file = opts.cert_file;  // a certificate, but not the CA
    conch::etcd_transport etcd{opts};
    auto r = etcd.range(conch::range_request::prefix("x"), in(3s));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::unavailable);
  }
}

TEST_CASE("auth: the user's role covers its prefix and nothing else") {
  auto& a = auth();
  conch::etcd_transport etcd{a.as("alice", "alice-pw")};
  auto inside = a.prefix + conch::test::unique_prefix();
  auto put = etcd.put(put_of(inside + "k", "v"), etcd.default_deadline());
  REQUIRE(put);
  auto read = etcd.range(conch::range_request::prefix(inside), etcd.default_deadline());
  REQUIRE(read);
  CHECK(read->kvs.size() == 1);
  CHECK(etcd.ping(etcd.default_deadline()));

  auto outside = etcd.put(put_of("elsewhere/k", "v"), etcd.default_deadline());
  REQUIRE_FALSE(outside);
  CHECK(outside.error().code == errc::permission_denied);
  CHECK_THAT(outside.error().message, Catch::Contains(a.server.endpoint()));
  auto peek = etcd.range(conch::range_request::prefix("elsewhere/"), etcd.default_deadline());
  REQUIRE_FALSE(peek);
  CHECK(peek.error().code == errc::permission_denied);

  auto w = etcd.watch(conch::watch_request::prefix(inside, put->header_revision));
  auto b = w.next(in(5s));
  REQUIRE(b);
  CHECK(b->events.at(0).kv.value == "v");
  auto denied = etcd.watch(conch::watch_request::prefix("elsewhere/"));
  auto d = denied.next(in(5s));
  REQUIRE_FALSE(d);
  CHECK(d.error().code == errc::permission_denied);

  auto lease = etcd.lease_grant(5, etcd.default_deadline());
  REQUIRE(lease);
  REQUIRE(etcd.put(put_of(inside + "leased", "v", lease->id), etcd.default_deadline()));
  auto ka = etcd.keepalive(lease->id);
  REQUIRE(ka.send());
  CHECK(ka.next(in(5s)).value_or(-1) == 5);
}

TEST_CASE("auth: a wrong password or unknown user is unauthenticated, named in one line") {
  auto& a = auth();
  for (auto [user, password] : {std::pair{"alice", "wrong"}, std::pair{"nobody", "x"}}) {
    conch::etcd_transport etcd{a.as(user, password)};
    auto r = etcd.put(put_of(a.prefix + "k", "v"), etcd.default_deadline());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::unauthenticated);
    CHECK_THAT(r.error().message, Catch::Contains(user) && Catch::Contains(a.server.endpoint()));
    CHECK(r.error().message.find('\n') == std::string::npos);
    CHECK(etcd.ping(etcd.default_deadline()).error().code == errc::unauthenticated);
    auto w = etcd.watch(conch::watch_request::prefix(a.prefix));
    CHECK(w.next(in(5s)).error().code == errc::unauthenticated);
  }
  SECTION("no user at all") {
    conch::etcd_transport anonymous{a.server.client_options()};
    auto r = anonymous.put(put_of(a.prefix + "k", "v"), anonymous.default_deadline());
    REQUIRE_FALSE(r);
    CHECK((r.error().code == errc::unauthenticated || r.error().code == errc::permission_denied));
  }
}

TEST_CASE("auth: tokens lost in an etcd restart are renewed transparently") {
  auto& a = auth();
  conch::etcd_transport etcd{a.as("alice", "alice-pw")};
  auto inside = a.prefix + conch::test::unique_prefix();
  auto first = etcd.put(put_of(inside + "k", "1"), etcd.default_deadline());
  REQUIRE(first);
  auto w = etcd.watch(conch::watch_request::prefix(inside, first->header_revision));
  REQUIRE(w.next(in(5s)));
  auto lease = etcd.lease_grant(20, etcd.default_deadline());
  REQUIRE(lease);
  auto ka = etcd.keepalive(lease->id);
  REQUIRE(ka.send());
  REQUIRE(ka.next(in(5s)));

  a.server.restart();  // etcd's simple tokens live in memory: all are now invalid
  REQUIRE(eventually([&] { return etcd.put(put_of(inside + "k", "2"), etcd.default_deadline()); }));
  auto b = w.next(in(10s));
  REQUIRE(b);
  CHECK(b->events.at(0).kv.value == "2");
  auto renewed = eventually([&]() -> conch::result<std::int64_t> {
    if (auto s = ka.send(); !s) return s.error();
    return ka.next(in(2s));
  });
  REQUIRE(renewed);
  CHECK(*renewed == 20);
}
