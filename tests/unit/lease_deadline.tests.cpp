#include "conch/logic/lease_deadline.hpp"

#include "conch/policies/clock.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

using namespace std::chrono_literals;
using conch::detail::default_margin;
using conch::detail::keepalive_interval;
using lease = conch::detail::lease_deadline<conch::fake_clock<>>;

TEST_CASE("keepalive every TTL/3; margin max(TTL/10, 500ms) but at most TTL/2", "[lease]") {
  CHECK(keepalive_interval(10s) == 3333ms);
  CHECK(keepalive_interval(3s) == 1s);
  CHECK(default_margin(10s) == 1s);
  CHECK(default_margin(60s) == 6s);
  CHECK(default_margin(3s) == 500ms);
  CHECK(default_margin(1s) == 500ms);
  CHECK(default_margin(0s) == 0ms);
}

TEST_CASE("the deadline counts from the send time of the last acknowledged keepalive", "[lease]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  lease l{t0, 10s};  // grant request sent at t0
  CHECK(l.deadline() == t0 + 9s);
  CHECK(l.next_keepalive() == t0 + 3333ms);

  clock.advance(3333ms);
  const auto sent = clock.now();
  l.sent(sent);
  CHECK(l.next_keepalive() == sent + 3333ms);
  CHECK(l.deadline() == t0 + 9s);  // not renewed until answered

  clock.advance(2s);  // a slow answer: the renewal still counts from its send
  l.acknowledged(10s);
  CHECK(l.deadline() == sent + 9s);
  CHECK_FALSE(l.lost(clock.now()));
  CHECK(l.lost(sent + 9s));
  CHECK_FALSE(l.lost(sent + 9s - 1ms));
}

TEST_CASE("unanswered keepalives do not move the deadline", "[lease]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  lease l{t0, 9s};
  for (int i = 0; i < 3; ++i) {
    clock.advance(3s);
    l.sent(clock.now());
  }
  CHECK(l.in_flight() == 3);
  CHECK(l.deadline() == t0 + 9s - 900ms);
  CHECK(l.lost(clock.now()));  // 9 s passed, nothing answered

  // Answers arrive in order: the first credits the first send only.
  l.acknowledged(9s);
  CHECK(l.deadline() == t0 + 3s + 9s - 900ms);
  CHECK(l.in_flight() == 2);
}

TEST_CASE("sends on a broken stream are forgotten", "[lease]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  lease l{t0, 10s};
  l.sent(t0 + 1s);  // on a stream that then broke
  l.forget_in_flight();
  CHECK(l.in_flight() == 0);
  l.sent(t0 + 4s);  // on the new stream
  l.acknowledged(10s);
  CHECK(l.acknowledged_send() == t0 + 4s);  // credited to the send that was answered
  CHECK(l.deadline() == t0 + 4s + 9s);
  CHECK(l.next_keepalive() == t0 + 4s + 3333ms);
}

TEST_CASE("an answer of TTL 0 means the lease is gone", "[lease]") {
  conch::fake_clock<> clock;
  lease l{clock.now(), 10s};
  l.sent(clock.now());
  l.acknowledged(0s);
  CHECK(l.gone());
  CHECK(l.lost(clock.now()));
}

TEST_CASE("an answer nobody asked for proves nothing", "[lease]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  lease l{t0, 10s};
  clock.advance(5s);
  l.acknowledged(10s);
  CHECK(l.deadline() == t0 + 9s);
}

TEST_CASE("an explicit margin and a changed TTL are honoured", "[lease]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  lease l{t0, 10s, 2s};
  CHECK(l.deadline() == t0 + 8s);
  l.sent(t0 + 1s);
  l.acknowledged(20s);
  CHECK(l.ttl() == 20s);
  CHECK(l.deadline() == t0 + 1s + 18s);
  CHECK(l.next_keepalive() == t0 + 1s + 6666ms);
}

TEST_CASE("past max_in_flight, sends are forgotten and the deadline only gets earlier", "[lease]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  lease l{t0, 10s};
  for (std::size_t i = 0; i < lease::max_in_flight + 5; ++i)
    l.sent(t0 + std::chrono::seconds(i + 1));
  CHECK(l.in_flight() == lease::max_in_flight);
  for (std::size_t i = 0; i < lease::max_in_flight + 5; ++i) l.acknowledged(10s);
  CHECK(l.deadline() == t0 + std::chrono::seconds(lease::max_in_flight) + 9s);
}

TEST_CASE("the local deadline never falls after the server's expiry", "[lease][property]") {
  rc::prop("whatever the delays and losses", [] {
    conch::fake_clock<> clock;
    const auto ttl = std::chrono::seconds{*rc::gen::inRange(1, 60)};
    lease l{clock.now(), ttl};
    auto server_expiry = clock.now() + ttl;  // the grant was received no earlier than sent
    bool any_lost = false;
    const auto rounds = *rc::gen::inRange(0, 20);
    for (int i = 0; i < rounds; ++i) {
      clock.advance(std::chrono::milliseconds{*rc::gen::inRange(0, 5000)});
      const auto sent = clock.now();
      l.sent(sent);
      if (*rc::gen::weightedElement<bool>({{1, true}, {3, false}})) {
        any_lost = true;  // never reached the server: never answered
        continue;
      }
      const auto received = sent + std::chrono::milliseconds{*rc::gen::inRange(0, 3000)};
      server_expiry = std::max(server_expiry, received + ttl);  // the server renews on receipt
      l.acknowledged(ttl);
      RC_ASSERT(l.deadline() + l.margin() <= server_expiry);  // safe
      if (!any_lost)
        RC_ASSERT(l.deadline() == sent + ttl - l.margin());  // and no more cautious than needed
    }
    RC_ASSERT(l.deadline() + l.margin() <= server_expiry);
  });
}

TEST_CASE("an answer on another stream counts from its own send, never a later one", "[lease]") {
  conch::fake_clock<> clock;
  const auto t0 = clock.now();
  lease l{t0, 4s, 500ms};
  l.sent(t0 + 1s);  // stuck behind an election
  l.sent(t0 + 2s);  // sent again on a fresh stream
  l.acknowledged_at(t0 + 2s, 4s);
  CHECK(l.deadline() == t0 + 2s + 3500ms);
  CHECK(l.in_flight() == 0);                // the stuck send is forgotten, not credited later
  l.acknowledged_at(t0 + 1s, 4s);           // the stuck stream answers late
  CHECK(l.deadline() == t0 + 2s + 3500ms);  // an earlier send never moves the deadline back
  l.acknowledged_at(t0 + 3s, 0s);
  CHECK(l.gone());
}
