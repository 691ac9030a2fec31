// basic_cron against a real etcd that fails at the worst moment: the instant
// a daemon sends its claim. A transport derived from etcd_transport injects
// the fault there (freezes etcd with SIGSTOP, kills it, or loses the answer
// of a claim etcd applied), so the timing is exact, not hoped for; the wall
// clock is a fake one, so the tick is known. Whatever happens, the tick is
// decided: claimed once in etcd's history, run once, its result recorded,
// and `ls` does not call it running.
#include "conch/cron.hpp"
#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/fake_clock.hpp"

#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <signal.h>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using sys = std::chrono::system_clock;
using conch::test::eventually;

namespace {

/// etcd_transport with a hook on every claim (a txn putting a key under
/// cron/fire/): the hook decides what the claim does and what it answers.
class claim_faults : public conch::etcd_transport {
 public:
  using hook = std::function<conch::result<conch::txn_response>(
      claim_faults&, const conch::txn_request&, conch::deadline, int attempt)>;
  using etcd_transport::etcd_transport;

  hook on_claim{};
  std::atomic<int> claims{0};

  conch::result<conch::txn_response> txn(const conch::txn_request& r, conch::deadline d) {
    if (on_claim && is_claim(r)) return on_claim(*this, r, d, ++claims);
    return etcd_transport::txn(r, d);
  }
  conch::result<conch::txn_response> send(const conch::txn_request& r, conch::deadline d) {
    return etcd_transport::txn(r, d);
  }

 private:
  static bool is_claim(const conch::txn_request& r) {
    for (const auto& op : r.success)
      if (const auto* put = std::get_if<conch::put_request>(&op);
          put && put->key.find("/cron/fire/") != std::string::npos)
        return true;
    return false;
  }
};

struct fault_policies : conch::default_policies {
  using transport = claim_faults;
  using clock = conch::fake_clock<sys>;  // wall time: the test says when the tick is
};
using fault_cron = conch::basic_cron<fault_policies>;

/// An hour boundary, so a tick of `@every 1h`.
const sys::time_point tick = sys::time_point{} + std::chrono::hours{24 * 365 * 56};

std::string temp_file(const std::string& name) {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/conch-cron-faults-XXXXXX";
    return std::string(::mkdtemp(tmpl));
  }();
  return dir + "/" + name;
}

std::size_t lines_in(const std::string& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

/// One daemon on a private etcd (the faults stop it) and a fake wall clock.
struct scenario {
  conch::test::etcd_server etcd{};
  claim_faults transport{options()};
  conch::etcd_transport observer{etcd.client_options()};
  std::string prefix = conch::test::unique_prefix();
  conch::fake_clock<sys> clock{tick - 500ms};
  std::string ran = temp_file("ran-" + std::to_string(++made));  // one line per run
  static inline int made = 0;

  conch::transport_options options() const {
    auto o = etcd.client_options();
    o.call_timeout = 1000ms;  // a frozen etcd is given up on soon: the claim is in doubt
    return o;
  }

  std::string fire_key() const {
    return prefix + "cron/fire/doubt/" +
           conch::detail::format_tick(std::chrono::floor<std::chrono::seconds>(tick));
  }
  std::string runs_key() const {
    return prefix + "cron/runs/doubt/" +
           conch::detail::format_tick(std::chrono::floor<std::chrono::seconds>(tick));
  }

  /// Fires the one tick with the fault in place; `heal` undoes it once the
  /// claim was sent again (the first one is in doubt by then).
  void fire_through(claim_faults::hook fault, const std::function<void()>& heal) {
    REQUIRE(conch::add_cron_job(observer, prefix,
                                {.name = "doubt",
                                 .schedule = "@every 1h",
                                 .tz = "",
                                 .argv = {"sh", "-c", "echo \"$CONCH_TICK\" >> " + ran}},
                                clock.now()));
    fault_cron daemon{transport, {.prefix = prefix, .ttl = 10s}, clock};
    REQUIRE(daemon.start());
    std::stop_source stop;
    std::jthread runner([&] { (void)daemon.run(stop.get_token()); });
    REQUIRE(clock.await_sleepers(1));
    transport.on_claim = std::move(fault);
    clock.set(tick);
    CHECK(eventually([&] { return transport.claims.load() >= 2; }));
    heal();
    CHECK(eventually(
        [&] {
          conch::range_request r;
          r.key = runs_key();
          auto got = observer.range(r, observer.default_deadline());
          return got && !got->kvs.empty();
        },
        30s));
    stop.request_stop();
    runner.join();
  }

  /// Sends the tick's claim into a frozen etcd, then stops the daemon before
  /// etcd thaws: the claim is left undecided and the lease is not revoked.
  void abandon_in_doubt() {
    REQUIRE(conch::add_cron_job(observer, prefix,
                                {.name = "doubt",
                                 .schedule = "@every 1h",
                                 .tz = "",
                                 .argv = {"sh", "-c", "echo \"$CONCH_TICK\" >> " + ran}},
                                clock.now()));
    std::string log;
    std::mutex log_mutex;
    fault_cron daemon{transport,
                      {.prefix = prefix,
                       .ttl = 2s,
                       .on_event =
                           [&](const conch::cron_event& e) {
                             std::lock_guard lock{log_mutex};
                             log += e.message + "\n";
                           }},
                      clock};
    REQUIRE(daemon.start());
    std::stop_source stop;
    std::jthread runner([&] { (void)daemon.run(stop.get_token()); });
    REQUIRE(clock.await_sleepers(1));
    transport.on_claim = [&](claim_faults& t, const conch::txn_request& r, conch::deadline d,
                             int attempt) {
      if (attempt == 1) ::kill(etcd.pid(), SIGSTOP);
      return t.send(r, d);
    };
    clock.set(tick);
    CHECK(eventually([&] { return transport.claims.load() >= 2; }));
    stop.request_stop();
    runner.join();
    ::kill(etcd.pid(), SIGCONT);
    CHECK(log.find("claim undecided at shutdown") != std::string::npos);
  }

  /// `ls` of the job's claims once none of them is "running".
  std::vector<conch::cron_run_view> settled_runs() {
    std::vector<conch::cron_run_view> runs;
    CHECK(eventually([&] {
      auto jobs = conch::list_cron_jobs(observer, prefix, clock.now());
      if (!jobs || jobs->size() != 1) return false;
      runs = jobs->front().runs;
      return std::none_of(runs.begin(), runs.end(), [](const conch::cron_run_view& v) {
        return v.state == conch::detail::run_state::running;
      });
    }));
    return runs;
  }

  /// The tick was claimed once (one put, ever), run once, recorded once, and
  /// `ls` shows it done.
  void check_decided_once() {
    std::map<std::string, int> puts;
    auto stream = observer.watch(conch::watch_request::prefix(prefix + "cron/", 1));
    while (puts[runs_key()] == 0) {
      auto batch = stream.next(std::chrono::steady_clock::now() + 5s);
      REQUIRE(batch);
      for (const auto& e : batch->events) {
        // Claims and results only: the job's running key (concurrency
        // forbid) comes and goes with the run.
        if (e.kv.key != fire_key() && e.kv.key != runs_key()) continue;
        CHECK(e.type == conch::watch_event::kind::put);
        ++puts[e.kv.key];
      }
    }
    CHECK(puts[fire_key()] == 1);
    CHECK(puts[runs_key()] == 1);
    CHECK(lines_in(ran) == 1);
    auto jobs = conch::list_cron_jobs(observer, prefix, clock.now());
    REQUIRE(jobs);
    REQUIRE(jobs->size() == 1);
    REQUIRE(jobs->front().runs.size() == 1);
    const auto& run = jobs->front().runs.front();
    CHECK(run.state == conch::detail::run_state::done);
    CHECK(run.exit_code == 0);
  }
};

}  // namespace

TEST_CASE("a claim etcd applied but whose answer was lost is recognized when sent again",
          "[cron][faults]") {
  scenario s;
  s.fire_through(
      [](claim_faults& t, const conch::txn_request& r, conch::deadline d,
         int attempt) -> conch::result<conch::txn_response> {
        auto answer = t.send(r, d);
        if (attempt == 1 && answer && answer->succeeded)
          return conch::error{conch::errc::timed_out, "the answer was lost"};
        return answer;
      },
      [] {});
  s.check_decided_once();
}

TEST_CASE("a claim sent to a frozen etcd is decided once it thaws", "[cron][faults]") {
  scenario s;
  s.fire_through(
      [&](claim_faults& t, const conch::txn_request& r, conch::deadline d, int attempt) {
        if (attempt == 1) ::kill(s.etcd.pid(), SIGSTOP);  // it hears the claim, answers nothing
        return t.send(r, d);
      },
      [&] { ::kill(s.etcd.pid(), SIGCONT); });
  s.check_decided_once();
}

TEST_CASE("a claim sent as etcd crashes is decided once etcd is back", "[cron][faults]") {
  scenario s;
  s.fire_through(
      [&](claim_faults& t, const conch::txn_request& r, conch::deadline d, int attempt) {
        if (attempt == 1) s.etcd.stop();  // SIGKILL: whatever it had not written is lost
        return t.send(r, d);
      },
      [&] { s.etcd.start(); });
  s.check_decided_once();
}

TEST_CASE("a claim left in doubt at shutdown is never run and reads as a zombie, not running",
          "[cron][faults]") {
  scenario s;
  s.abandon_in_doubt();
  // Whether or not etcd applied the claim when it thawed, nobody runs the
  // tick, and the claim (if any) names a lease that expires: a zombie.
  const auto runs = s.settled_runs();
  CHECK(runs.size() <= 1);
  for (const auto& run : runs) CHECK(run.state == conch::detail::run_state::zombie);
  CHECK(lines_in(s.ran) == 0);
  conch::range_request r;
  r.key = s.runs_key();
  auto results = s.observer.range(r, s.observer.default_deadline());
  REQUIRE(results);
  CHECK(results->kvs.empty());
}

TEST_CASE("ls calls a claim running only while its claimer's lease lives", "[cron][faults]") {
  scenario s;
  REQUIRE(conch::add_cron_job(
      s.observer, s.prefix, {.name = "doubt", .schedule = "@every 1h", .tz = "", .argv = {"true"}},
      s.clock.now()));
  auto lease = s.observer.lease_grant(30, s.observer.default_deadline());
  REQUIRE(lease);
  auto claim_with = [&](const std::string& lease_text, sys::time_point at) {
    conch::detail::claim_record c;
    c.name = "doubt";
    c.tick = std::chrono::floor<std::chrono::seconds>(at);
    c.host = "elsewhere";
    c.pid = 1;
    c.lease = lease_text;
    c.start = std::chrono::floor<std::chrono::milliseconds>(at);
    const auto key = s.prefix + "cron/fire/doubt/" + conch::detail::format_tick(c.tick);
    REQUIRE(s.observer.put({.key = key, .value = conch::detail::encode_record(c)},
                           s.observer.default_deadline()));
  };
  claim_with(conch::detail::lease_hex(lease->id), tick);
  claim_with("0", tick + 1h);                                   // no lease at all
  claim_with("not-a-lease", tick + 2h);                         // unreadable
  claim_with(conch::detail::lease_hex(0x7fff0001), tick + 3h);  // never granted
  auto states = [&] {
    auto jobs = conch::list_cron_jobs(s.observer, s.prefix, s.clock.now());
    REQUIRE(jobs);
    REQUIRE(jobs->size() == 1);
    std::vector<conch::detail::run_state> out;
    for (const auto& run : jobs->front().runs) out.push_back(run.state);
    return out;  // newest first
  };
  using st = conch::detail::run_state;
  CHECK(states() == std::vector<st>{st::zombie, st::zombie, st::zombie, st::running});
  REQUIRE(s.observer.lease_revoke(lease->id, s.observer.default_deadline()));
  CHECK(states() == std::vector<st>{st::zombie, st::zombie, st::zombie, st::zombie});
}
