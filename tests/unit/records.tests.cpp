#include "conch/logic/records.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

using namespace conch::detail;
using namespace std::chrono;

namespace {

/// JSON carries only valid UTF-8, so generated text is made valid first.
rc::Gen<std::string> text() {
  return rc::gen::map(
      rc::gen::oneOf(rc::gen::string<std::string>(),
                     rc::gen::element<std::string>("", "db1", "élection", "日本語", "a\"b\\c\n\t")),
      [](const std::string& s) { return utf8_tail(s, s.size()); });
}
rc::Gen<wall_time> when() {
  const auto hi =
      duration_cast<milliseconds>(sys_days{year{9999} / 12 / 31}.time_since_epoch()).count();
  return rc::gen::map(rc::gen::inRange<long long>(0, hi),
                      [](long long ms) { return wall_time{milliseconds{ms}}; });
}
rc::Gen<tick_time> tick() {
  return rc::gen::map(when(), [](wall_time t) { return floor<seconds>(t); });
}
rc::Gen<std::vector<std::string>> argv() {
  return rc::gen::container<std::vector<std::string>>(text());
}

holder_record sample_holder() {
  holder_record h{};
  h.host = "db1";
  h.pid = 4242;
  h.start = sys_days{2026y / 11 / 23} + 10h + 30min + 5ms;
  h.lease = "694d77aa9e38260f";
  h.token = 17;
  h.name = "web";
  h.argv = {"sleep", "10 s", "it's"};
  h.version = "0.1.0";
  return h;
}

}  // namespace

TEST_CASE("a holder record is compact JSON with RFC 3339 times", "[records]") {
  CHECK(
      encode_record(sample_holder()) ==
      R"({"argv":["sleep","10 s","it's"],"host":"db1","lease":"694d77aa9e38260f","name":"web","pid":4242,)"
      R"("start":"2026-11-23T10:30:00.005Z","token":17,"version":"0.1.0"})");
  auto with_slot = sample_holder();
  with_slot.slot = 2;
  CHECK(encode_record(with_slot).find(R"("slot":2)") != std::string::npos);
}

TEST_CASE("decoding ignores unknown fields and defaults missing ones", "[records]") {
  auto h =
      decode_record<holder_record>(R"({"host":"h","pid":1,"color":"blue","nested":{"x":[1,2]}})");
  REQUIRE(h.ok());
  CHECK(h->host == "h");
  CHECK(h->pid == 1);
  CHECK(h->token == 0);
  CHECK(h->argv.empty());
  CHECK_FALSE(h->slot.has_value());
  CHECK(decode_record<holder_record>(R"({"host":"h","pid":1,"slot":null})")->slot == std::nullopt);
}

TEST_CASE("malformed values are error values naming the problem", "[records]") {
  auto message = [](std::string_view text) {
    return decode_record<holder_record>(text).error().message;
  };
  CHECK(message("p1") == "holder record: not JSON");  // an `etcdctl elect` proposal
  CHECK(message("") == "holder record: not JSON");
  CHECK(message("[1,2]") == "holder record: not a JSON object");
  CHECK(message(R"({"host":"h"})") == R"(holder record: field "pid" is missing)");
  CHECK(message(R"({"host":"h","pid":"1"})") ==
        R"(holder record: field "pid" is not an integer in range)");
  CHECK(message(R"({"host":"h","pid":1.5})") ==
        R"(holder record: field "pid" is not an integer in range)");
  CHECK(message(R"({"host":"h","pid":1,"slot":4294967296})") ==
        R"(holder record: field "slot" is not an integer in range)");
  CHECK(message(R"({"host":"h","pid":1,"argv":["a",2]})") ==
        R"(holder record: field "argv" is not an array of strings)");
  CHECK(message(R"({"host":"h","pid":1,"start":"yesterday"})") ==
        R"(holder record: field "start" is not an RFC 3339 time)");
  CHECK(decode_record<holder_record>("{}").error().code == conch::errc::corrupt);
  CHECK(decode_record<claim_record>(R"({"tick":"2026-11-23T10:30:00.5Z","lease":"1"})")
            .error()
            .message == R"(claim record: field "tick" is not an RFC 3339 time in whole seconds)");
  CHECK(decode_record<holder_record>(std::string(max_record_bytes + 1, ' ')).error().message ==
        "holder record: larger than 1 MiB");
  CHECK(decode_record<holder_record>(std::string(100000, '[')).error().message ==
        "holder record: not JSON");
}

TEST_CASE("a run record keeps the last 4 KiB of output, as valid UTF-8", "[records]") {
  run_record r{};
  r.tick = floor<seconds>(sys_days{2026y / 11 / 23} + 10h);
  r.output = std::string(5000, 'x') + "\xff" + "tail";
  auto back = decode_record<run_record>(encode_record(r));
  REQUIRE(back.ok());
  CHECK(back->output.size() == run_record::max_output);
  CHECK(back->output.ends_with("x?tail"));
}

TEST_CASE("records print as aligned lines and as one line", "[records]") {
  auto h = sample_holder();
  h.slot = 1;
  CHECK(format_record_lines(h) ==
        "host:    db1\n"
        "pid:     4242\n"
        "start:   2026-11-23T10:30:00.005Z\n"
        "lease:   694d77aa9e38260f\n"
        "token:   17\n"
        "name:    web\n"
        "argv:    sleep '10 s' 'it'\\''s'\n"
        "version: 0.1.0\n"
        "slot:    1\n");
  h.slot.reset();
  h.name = "a\nb";
  CHECK(format_record_line(h) ==
        "host=db1 pid=4242 start=2026-11-23T10:30:00.005Z lease=694d77aa9e38260f token=17 "
        "name=a\\x0Ab "
        "argv=sleep '10 s' 'it'\\''s' version=0.1.0 slot=-");
}

TEST_CASE("records round-trip through JSON", "[records][property]") {
  rc::prop("holder", [] {
    holder_record h{};
    h.host = *text();
    h.pid = *rc::gen::arbitrary<std::int64_t>();
    h.start = *when();
    h.lease = *text();
    h.token = *rc::gen::arbitrary<std::int64_t>();
    h.name = *text();
    h.argv = *argv();
    h.version = *text();
    if (*rc::gen::arbitrary<bool>()) h.slot = *rc::gen::arbitrary<int>();
    RC_ASSERT(decode_record<holder_record>(encode_record(h)).value() == h);
  });
  rc::prop("job", [] {
    job_record j{*text(), *text(), *text(), *argv(), *when()};
    RC_ASSERT(decode_record<job_record>(encode_record(j)).value() == j);
  });
  rc::prop("claim", [] {
    claim_record c{*text(), *tick(), *text(), *rc::gen::arbitrary<std::int64_t>(),
                   *text(), *when()};
    RC_ASSERT(decode_record<claim_record>(encode_record(c)).value() == c);
  });
  rc::prop("run", [] {
    run_record r{*text(), *tick(), *text(), *rc::gen::arbitrary<std::int64_t>(),
                 *text(), *when(), *when(), *rc::gen::arbitrary<int>(),
                 *text()};
    run_record::trim(r);
    RC_ASSERT(decode_record<run_record>(encode_record(r)).value() == r);
  });
}

TEST_CASE("decoding arbitrary bytes never throws", "[records][property]") {
  rc::prop("total", [](const std::string& junk) {
    auto h = decode_record<holder_record>(junk);
    if (h) RC_ASSERT(decode_record<holder_record>(encode_record(*h)).value() == *h);
  });
}
