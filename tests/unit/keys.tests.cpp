#include "conch/logic/keys.hpp"

#include <catch2/catch.hpp>
#include <limits>
#include <rapidcheck/catch.h>

using namespace conch::detail;
using namespace std::chrono;

namespace {

/// Names built from the pieces that break naive codecs.
rc::Gen<std::string> tricky_name() {
  auto piece = rc::gen::oneOf(
      rc::gen::element<std::string>("/", "%", "%2F", "%25", "//", ".", "..", "a", "web", "élection",
                                    "日本", "\x01", "\x7f", " ", "max=3", "slot", "\xff\xfe"),
      rc::gen::string<std::string>());
  return rc::gen::map(rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(piece)),
                      [](const std::vector<std::string>& parts) {
                        std::string s;
                        for (auto& p : parts) s += p;
                        return s.empty() ? std::string("x") : s;
                      });
}

rc::Gen<std::string> prefix() {
  return rc::gen::element<std::string>("", "conch/", "t/q1x/7/", "odd%/", "elect/", "conch/sema/",
                                       "日/");
}

rc::Gen<tick_time> tick() {
  const auto lo = sys_days{year{0} / 1 / 1}.time_since_epoch().count() * 86400LL;
  const auto hi = sys_days{year{9999} / 12 / 31}.time_since_epoch().count() * 86400LL + 86399;
  return rc::gen::map(rc::gen::inRange<long long>(lo, hi + 1),
                      [](long long s) { return tick_time{seconds{s}}; });
}

rc::Gen<std::int64_t> lease() {
  return rc::gen::oneOf(
      rc::gen::arbitrary<std::int64_t>(),
      rc::gen::element<std::int64_t>(0, 1, -1, std::numeric_limits<std::int64_t>::min(),
                                     std::numeric_limits<std::int64_t>::max()));
}

template <class K>
void round_trips(const std::string& p, const K& k) {
  auto key = encode_key(p, k);
  RC_ASSERT(key.ok());
  auto back = decode_key<K>(p, *key);
  RC_ASSERT(back.ok());
  RC_ASSERT(*back == k);
}

}  // namespace

TEST_CASE("lease ids are spelled like Go's %x", "[keys]") {
  CHECK(lease_hex(0) == "0");
  CHECK(lease_hex(0x694d77aa9e38260f) == "694d77aa9e38260f");
  CHECK(lease_hex(-26) == "-1a");
  CHECK(lease_hex(std::numeric_limits<std::int64_t>::min()) == "-8000000000000000");
  CHECK(*parse_lease_hex("694d77aa9e38260f") == 0x694d77aa9e38260f);
  CHECK(*parse_lease_hex("-8000000000000000") == std::numeric_limits<std::int64_t>::min());
  for (auto bad : {"", "-", "0a", "ABC", "-0", "8000000000000000", "10000000000000000",
                   "-8000000000000001", "1 ", "x"}) {
    INFO(bad);
    CHECK_FALSE(parse_lease_hex(bad).ok());
  }
}

TEST_CASE("plain names stay readable; separators and control bytes are escaped", "[keys]") {
  CHECK(*encode_name("web") == "web");
  CHECK(*encode_name("élection 日本") == "élection 日本");
  CHECK(*encode_name("a/b") == "a%2Fb");
  CHECK(*encode_name("100%") == "100%25");
  CHECK(*encode_name(std::string("t\x01\n\x7f", 4)) == "t%01%0A%7F");
  CHECK(encode_name("").error().message == "name is empty");
  for (auto bad : {"", "a/b", "%2f", "%41", "%", "%2", "%G0", "a\nb"}) {
    INFO(bad);
    CHECK_FALSE(decode_name(bad).ok());
  }
}

TEST_CASE("keys follow the documented layouts", "[keys]") {
  const tick_time t = sys_days{2026y / 11 / 23} + 10h + 30min;
  CHECK(*election_office("conch/", "web") == "conch/elect/web/");
  CHECK(*encode_key("conch/", election_key{"web", 0x694d77aa9e38260f}) ==
        "conch/elect/web/694d77aa9e38260f");
  CHECK(*encode_key("conch/", semaphore_slot_key{"db", 3, 2}) == "conch/sema/db/max=3/slot/2");
  CHECK(*encode_key("conch/", semaphore_queue_key{"db", 3, 0xabc}) ==
        "conch/sema/db/max=3/queue/abc");
  CHECK(*encode_key("conch/", cron_job_key{"backup"}) == "conch/cron/jobs/backup");
  CHECK(*encode_key("conch/", cron_fire_key{"backup", t}) ==
        "conch/cron/fire/backup/20261123T103000Z");
  CHECK(*encode_key("conch/", cron_run_key{"a/b", t}) == "conch/cron/runs/a%2Fb/20261123T103000Z");
  CHECK(fencing_counter_key("conch/", "conch/elect/web/") == "conch/fence/elect/web");
  CHECK(fencing_counter_key("conch/", "conch/sema/db/max=3/") == "conch/fence/sema/db/max=3");
  CHECK(normalize_prefix("conch") == "conch/");
  CHECK(normalize_prefix("conch/") == "conch/");
  CHECK(normalize_prefix("") == "");
}

TEST_CASE("bad parts are refused when encoding", "[keys]") {
  CHECK_FALSE(encode_key("conch/", election_key{"", 1}).ok());
  CHECK_FALSE(encode_key("conch/", semaphore_slot_key{"db", 0, 0}).ok());
  CHECK_FALSE(encode_key("conch/", semaphore_slot_key{"db", 3, 3}).ok());
  CHECK_FALSE(encode_key("conch/", semaphore_slot_key{"db", 3, -1}).ok());
  CHECK_FALSE(encode_key("conch/", semaphore_queue_key{"db", max_semaphore_size + 1, 1}).ok());
  CHECK_FALSE(encode_key("conch/", cron_fire_key{"j", sys_days{year{10000} / 1 / 1}}).ok());
}

TEST_CASE("foreign keys decode to an error naming the key", "[keys]") {
  auto e = decode_key<election_key>("conch/", "conch/elect/web/notHex");
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message ==
        "key \"conch/elect/web/notHex\": not <prefix>elect/<name>/<lease hex>");
  CHECK(decode_key<election_key>("other/", "conch/elect/web/1").error().message ==
        "key \"conch/elect/web/1\": not under prefix \"other/\"");
  for (auto bad : {"conch/elect/web", "conch/elect/web/", "conch/elect//1", "conch/elect/a/b/1",
                   "conch/elect/web/1/", "conch/elect/we%2fb/1"}) {
    INFO(bad);
    CHECK_FALSE(decode_key<election_key>("conch/", bad).ok());
  }
  for (auto bad :
       {"conch/sema/db/max=3/slot/3", "conch/sema/db/max=03/slot/1", "conch/sema/db/max=0/slot/0",
        "conch/sema/db/max=3/slot/01", "conch/sema/db/max=3/slot/-1", "conch/sema/db/max=3/slot/",
        "conch/sema/db/max=99999999999/slot/1", "conch/sema/db/max=3/queue/1"}) {
    INFO(bad);
    CHECK_FALSE(decode_key<semaphore_slot_key>("conch/", bad).ok());
  }
  for (auto bad : {"conch/cron/fire/j/20261123T103000", "conch/cron/fire/j/20260230T103000Z",
                   "conch/cron/fire/j/20261123T243000Z", "conch/cron/fire/j/20261123t103000Z",
                   "conch/cron/fire/j/+0261123T103000Z"}) {
    INFO(bad);
    CHECK_FALSE(decode_key<cron_fire_key>("conch/", bad).ok());
  }
  CHECK_FALSE(decode_key<cron_job_key>("conch/", "conch/cron/jobs/a/b").ok());
  // A control byte in a foreign key stays on one line in the message.
  CHECK(decode_key<cron_job_key>("conch/", std::string("x\ny")).error().message.find('\n') ==
        std::string::npos);
}

TEST_CASE("key codec round-trips every layout", "[keys][property]") {
  rc::prop("election", [] { round_trips(*prefix(), election_key{*tricky_name(), *lease()}); });
  rc::prop("semaphore slot", [] {
    const int max = *rc::gen::inRange(1, max_semaphore_size + 1);
    round_trips(*prefix(), semaphore_slot_key{*tricky_name(), max, *rc::gen::inRange(0, max)});
  });
  rc::prop("semaphore queue", [] {
    round_trips(*prefix(),
                semaphore_queue_key{*tricky_name(), *rc::gen::inRange(1, max_semaphore_size + 1),
                                    *lease()});
  });
  rc::prop("cron job", [] { round_trips(*prefix(), cron_job_key{*tricky_name()}); });
  rc::prop("cron fire", [] { round_trips(*prefix(), cron_fire_key{*tricky_name(), *tick()}); });
  rc::prop("cron run", [] { round_trips(*prefix(), cron_run_key{*tricky_name(), *tick()}); });
}

TEST_CASE("distinct names never share a key or an office", "[keys][property]") {
  rc::prop("injective and prefix-free", [] {
    const auto p = *prefix();
    const auto a = *tricky_name(), b = *tricky_name();
    RC_PRE(a != b);
    const auto ka = *encode_key(p, election_key{a, 7}), kb = *encode_key(p, election_key{b, 7});
    RC_ASSERT(ka != kb);
    RC_ASSERT(
        !kb.starts_with(*election_office(p, a)));  // a's prefix query never sees b's contenders
    RC_ASSERT(
        !(*encode_key(p, semaphore_queue_key{b, 2, 7})).starts_with(*semaphore_office(p, a, 2)));
    RC_ASSERT(!(*encode_key(p, cron_run_key{b, tick_time{}})).starts_with(*cron_runs_dir(p, a)));
  });
  rc::prop("one key decodes as one layout only", [] {
    const auto p = *prefix();
    const auto key = *encode_key(p, election_key{*tricky_name(), *lease()});
    RC_ASSERT(!decode_key<semaphore_queue_key>(p, key).ok());
    RC_ASSERT(!decode_key<cron_job_key>(p, key).ok());
    RC_ASSERT(!decode_key<cron_fire_key>(p, key).ok());
  });
}

TEST_CASE("tick keys sort like the ticks they name", "[keys][property]") {
  rc::prop("lexical order is time order", [] {
    const auto a = *tick(), b = *tick();
    RC_ASSERT((format_tick(a) < format_tick(b)) == (a < b));
  });
}

TEST_CASE("decoding arbitrary text never crashes", "[keys][property]") {
  rc::prop("total", [](const std::string& junk) {
    for (const std::string& p : {std::string(), std::string("conch/")}) {
      const std::string key = p + junk;
      auto e = decode_key<election_key>(p, key);
      if (e) RC_ASSERT(*encode_key(p, *e) == key);  // what decodes, re-encodes to itself
      auto s = decode_key<semaphore_slot_key>(p, key);
      if (s) RC_ASSERT(*encode_key(p, *s) == key);
      auto f = decode_key<cron_fire_key>(p, key);
      if (f) RC_ASSERT(*encode_key(p, *f) == key);
    }
  });
}
