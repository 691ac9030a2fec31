// `conch elect` as real processes against a real etcd: each line of the tool
// contract (SPEC §3 "election" and "supervision core") is a test here.
#include "conch/etcd.hpp"
#include "conch/logic/duration.hpp"
#include "conch/logic/hex.hpp"
#include "conch/process/group.hpp"

#include "support/conch_process.hpp"
#include "support/etcd_harness.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using conch::test::await;
using conch::test::conch_run;
using conch::test::line_from;
using conch::test::lines_of;
using conch::test::slurp;
using conch::test::temp_dir;

namespace {

bool exists(const std::string& path) { return std::filesystem::exists(path); }

pid_t pid_from(const std::string& path) { return static_cast<pid_t>(std::stol(line_from(path))); }

/// Environment for a run against the shared etcd under `prefix`.
std::vector<std::string> env_for(const std::string& prefix) {
  return {"CONCH_ENDPOINTS=" + conch::test::etcd_server::shared().endpoint(),
          "CONCH_PREFIX=" + prefix};
}

/// A child that records its environment and holds until `release` exists.
std::vector<std::string> holding_child(const temp_dir& dir, const std::string& tag) {
  return {
      "sh", "-c",
      "echo \"$CONCH_REV $CONCH_KEY $CONCH_LEASE $CONCH_NAME\" > \"$1.env\"; echo $$ > \"$1.pid\"; "
      "while [ ! -e \"$1.release\" ]; do sleep 0.02; done; exit \"${2:-0}\"",
      "sh", dir / tag};
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Candidate keys of office `name` under `prefix`.
std::vector<conch::key_value> candidates(const std::string& prefix, const std::string& name) {
  static conch::etcd_transport etcd{conch::test::etcd_server::shared().client_options()};
  auto read = [&] {
    return etcd.range(conch::range_request::prefix(prefix + "elect/" + name + "/"),
                      etcd.default_deadline());
  };
  auto r = read();
  // A loaded machine can time out one dial; the check is about the keys, not the network.
  for (int retry = 0; !r && retry < 3; ++retry) r = read();
  if (!r) FAIL("reading the candidates: " << r.error().message);
  return r->kvs;
}

bool process_dead(pid_t pid) { return !conch::process::process_alive(pid); }

}  // namespace

TEST_CASE("elect: the winner's child gets CONCH_REV, CONCH_KEY, CONCH_LEASE, CONCH_NAME",
          "[elect]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", cat({"elect", "office", "--"}, cat(holding_child(dir, "a"), {"7"})),
              env_for(prefix));

  auto env = lines_of(line_from(dir / "a.env"));
  std::stringstream fields(env.at(0));
  std::string rev, key, lease, name;
  fields >> rev >> key >> lease >> name;
  auto keys = candidates(prefix, "office");
  REQUIRE(keys.size() == 1);
  CHECK(key == keys[0].key);
  CHECK(key == prefix + "elect/office/" + lease);
  CHECK(lease == conch::detail::lease_hex(keys[0].lease));
  CHECK(rev == std::to_string(keys[0].create_revision));
  CHECK(name == "office");

  std::ofstream(dir / "a.release").put('\n');
  CHECK(a.wait() == 7);                         // the child's own code
  CHECK(candidates(prefix, "office").empty());  // resigned
}

TEST_CASE("elect: the command runs by argv, without a shell, with our stdout", "[elect]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", {"elect", "office", "--", "printf", "%s|", "$HOME", "*", "a b"},
              env_for(prefix));
  CHECK(a.wait() == 0);
  CHECK(a.out() == "$HOME|*|a b|");
}

TEST_CASE("elect: a clean exit hands the office to the next contender in under a second",
          "[elect]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  // The leader's child records when it ends; the next one when it starts (ns, one clock).
  conch_run a(dir, "a",
              {"elect", "office", "--ttl", "10", "--", "sh", "-c",
               "echo $$ > \"$1.pid\"; while [ ! -e \"$1.release\" ]; do sleep 0.01; done; "
               "date +%s%N > \"$1.ended\"",
               "sh", dir / "a"},
              env_for(prefix));
  line_from(dir / "a.pid");
  conch_run b(dir, "b",
              {"elect", "office", "--ttl", "10", "--", "sh", "-c", "date +%s%N > \"$1.started\"",
               "sh", dir / "b"},
              env_for(prefix));
  REQUIRE(await([&] { return candidates(prefix, "office").size() == 2; }));
  CHECK_FALSE(exists(dir / "b.started"));  // b waits while a leads

  std::ofstream(dir / "a.release").put('\n');
  CHECK(a.wait() == 0);
  CHECK(b.wait() == 0);
  long long ended = std::stoll(line_from(dir / "a.ended"));
  long long started = std::stoll(line_from(dir / "b.started"));
  CHECK(started > ended);
  CHECK(started - ended < 1'000'000'000LL);  // a fenced resign, not a 10 s lease expiry
}

TEST_CASE("elect --who: prints the leader (--json: the record); a vacant office exits 1",
          "[elect]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  {
    conch_run who(dir, "who0", {"elect", "office", "--who"}, env_for(prefix));
    CHECK(who.wait() == 1);
    CHECK(who.out().empty());
    CHECK(lines_of(who.err()).size() == 1);
  }
  conch_run a(dir, "a", cat({"elect", "office", "--"}, holding_child(dir, "a")), env_for(prefix));
  std::stringstream fields(line_from(dir / "a.env"));
  std::string rev, key;
  fields >> rev >> key;

  conch_run who(dir, "who1", {"elect", "office", "--who"}, env_for(prefix));
  CHECK(who.wait() == 0);
  auto out = lines_of(who.out());
  REQUIRE(out.size() == 1);
  CHECK(out[0].find(key) != std::string::npos);
  CHECK(out[0].find("pid=" + std::to_string(a.pid())) != std::string::npos);
  CHECK(out[0].find("token=" + rev) != std::string::npos);

  conch_run json(dir, "who2", {"elect", "office", "--who", "--json"}, env_for(prefix));
  CHECK(json.wait() == 0);
  auto j = nlohmann::json::parse(json.out());
  CHECK(j["key"] == key);
  CHECK(j["pid"] == a.pid());
  CHECK(std::to_string(j["token"].get<long long>()) == rev);
  CHECK(j["name"] == "office");
  CHECK(j["argv"][0] == "sh");

  std::ofstream(dir / "a.release").put('\n');
  CHECK(a.wait() == 0);
  conch_run after(dir, "who3", {"elect", "office", "--who"}, env_for(prefix));
  CHECK(after.wait() == 1);
}

TEST_CASE("elect --nonblock: exit 75 at once when another leads; --timeout: 75 and our key removed",
          "[elect]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", cat({"elect", "office", "--"}, holding_child(dir, "a")), env_for(prefix));
  line_from(dir / "a.env");

  conch_run nb(dir, "nb", {"elect", "office", "--nonblock", "--", "touch", dir / "nb.ran"},
               env_for(prefix));
  CHECK(nb.wait(5s) == 75);
  CHECK(lines_of(nb.err()).size() == 1);

  conch_run to(dir, "to", {"elect", "office", "--timeout", "700ms", "--", "touch", dir / "to.ran"},
               env_for(prefix));
  REQUIRE(await([&] { return candidates(prefix, "office").size() == 2; }));  // it did queue
  CHECK(to.wait() == 75);
  CHECK(lines_of(to.err()).size() == 1);

  auto keys = candidates(prefix, "office");
  REQUIRE(keys.size() == 1);  // only the leader's key is left
  CHECK_FALSE(exists(dir / "nb.ran"));
  CHECK_FALSE(exists(dir / "to.ran"));
  std::ofstream(dir / "a.release").put('\n');
  CHECK(a.wait() == 0);
}

TEST_CASE(
    "elect --restart: the child restarts with backoff while we lead; a stable child resets it",
    "[elect]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  // Each run lasts 400 ms, longer than --stable-after: every restart starts the
  // backoff over, so no delay may exceed the first step's ceiling (100 ms),
  // where an unreset exponential backoff would climb to seconds.
  conch_run a(dir, "a",
              {"elect", "office", "--restart", "--stable-after", "300ms", "--", "sh", "-c",
               "echo \"$CONCH_REV\" >> \"$1\"; sleep 0.4; exit 3", "sh", dir / "starts"},
              env_for(prefix));
  REQUIRE(await([&] { return lines_of(slurp(dir / "starts")).size() >= 6; }, 30s));
  a.signal(SIGTERM);
  auto code = a.wait();
  REQUIRE(code);

  auto starts = lines_of(slurp(dir / "starts"));
  for (const auto& s : starts) CHECK(s == starts.front());  // one leadership, one token
  std::regex restarting("restarting in ([^ ]+)$");
  int restarts = 0;
  for (const auto& line : lines_of(a.err())) {
    std::smatch m;
    if (!std::regex_search(line, m, restarting)) continue;
    ++restarts;
    auto delay = conch::detail::parse_duration(m[1].str());
    REQUIRE(delay);
    CHECK(*delay <= 100ms);
  }
  CHECK(restarts >= 5);
  CHECK(candidates(prefix, "office").empty());
}

TEST_CASE("elect: lease revoked -> SIGTERM to the group, SIGKILL after --kill-after, exit 70",
          "[elect]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  // The child logs SIGTERM and goes on; its grandchild ignores SIGTERM: only SIGKILL ends them.
  conch_run a(
      dir, "a",
      {"elect", "office", "--kill-after", "1s", "--", "sh", "-c",
       "trap 'echo TERM >> \"$1.term\"' TERM; (trap '' TERM; exec sleep 300) & echo $! > "
       "\"$1.gc\"; "
       "echo \"$CONCH_LEASE\" > \"$1.lease\"; echo $$ > \"$1.pid\"; while :; do sleep 0.02; done",
       "sh", dir / "a"},
      env_for(prefix));
  pid_t child = pid_from(dir / "a.pid");
  pid_t grandchild = pid_from(dir / "a.gc");
  auto lease = conch::detail::parse_lease_hex(line_from(dir / "a.lease"));
  REQUIRE(lease);

  auto revoked = clk::now();
  conch::test::etcd_server::shared().revoke_lease(*lease);
  CHECK(a.wait() == 70);
  CHECK(clk::now() - revoked >= 1s);  // the TERM was survived until kill-after
  CHECK(line_from(dir / "a.term") == "TERM");
  CHECK(await([&] { return process_dead(child) && process_dead(grandchild); }));
  CHECK(a.err().find("lost") != std::string::npos);
}

TEST_CASE("elect: a stop signal while holding is forwarded to the child, the office released",
          "[elect][signals]") {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    DYNAMIC_SECTION("signal " << sig) {
      temp_dir dir;
      auto prefix = conch::test::unique_prefix();
      conch_run a(dir, "a",
                  {"elect", "office", "--", "sh", "-c",
                   "for s in INT TERM HUP QUIT; do trap \"echo $s > '$1.sig'; exit 5\" $s; done; "
                   "echo $$ > \"$1.pid\"; while :; do sleep 0.02; done",
                   "sh", dir / "a"},
                  env_for(prefix));
      pid_t child = pid_from(dir / "a.pid");
      a.signal(sig);
      CHECK(a.wait() == 5);  // the child's code: it heard the signal and exited
      const char* names[] = {"", "HUP", "INT", "QUIT", "", "", "", "",
                             "", "",    "",    "",     "", "", "", "TERM"};
      CHECK(line_from(dir / "a.sig") == names[sig]);
      CHECK(await([&] { return process_dead(child); }));
      CHECK(candidates(prefix, "office").empty());
    }
  }
}

TEST_CASE("elect: a stop signal while waiting ends the wait; no child ever starts",
          "[elect][signals]") {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    DYNAMIC_SECTION("signal " << sig) {
      temp_dir dir;
      auto prefix = conch::test::unique_prefix();
      conch_run a(dir, "a", cat({"elect", "office", "--"}, holding_child(dir, "a")),
                  env_for(prefix));
      line_from(dir / "a.env");
      conch_run b(dir, "b", {"elect", "office", "--", "touch", dir / "b.ran"}, env_for(prefix));
      REQUIRE(await([&] { return candidates(prefix, "office").size() == 2; }));
      b.signal(sig);
      CHECK(b.wait(5s) == 128 + sig);
      CHECK(candidates(prefix, "office").size() == 1);  // b's key is gone
      std::ofstream(dir / "a.release").put('\n');
      CHECK(a.wait() == 0);
      CHECK_FALSE(exists(dir / "b.ran"));
    }
  }
}

TEST_CASE("elect: a stop signal while killing (after a loss) is forwarded too; exit 70",
          "[elect][signals]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  conch_run a(
      dir, "a",
      {"elect", "office", "--kill-after", "20s", "--", "sh", "-c",
       "trap 'echo TERM >> \"$1.log\"' TERM; trap 'echo INT >> \"$1.log\"; exit 9' INT; "
       "echo \"$CONCH_LEASE\" > \"$1.lease\"; echo $$ > \"$1.pid\"; while :; do sleep 0.02; done",
       "sh", dir / "a"},
      env_for(prefix));
  pid_t child = pid_from(dir / "a.pid");
  auto lease = conch::detail::parse_lease_hex(line_from(dir / "a.lease"));
  REQUIRE(lease);
  conch::test::etcd_server::shared().revoke_lease(*lease);
  REQUIRE(line_from(dir / "a.log") == "TERM");  // killing: SIGKILL is 20 s away
  a.signal(SIGINT);
  CHECK(a.wait(15s) == 70);  // well before the SIGKILL: the child heard SIGINT and left
  CHECK(lines_of(slurp(dir / "a.log")) == std::vector<std::string>{"TERM", "INT"});
  CHECK(await([&] { return process_dead(child); }));
}

TEST_CASE("elect: with the wrapper frozen past its local deadline, the watchdog kills the group",
          "[elect][watchdog]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a",
              {"elect", "office", "--ttl", "2", "--kill-after", "500ms", "--", "sh", "-c",
               "(trap '' TERM; exec sleep 300) & echo $! > \"$1.gc\"; echo $$ > \"$1.pid\"; wait",
               "sh", dir / "a"},
              env_for(prefix));
  pid_t child = pid_from(dir / "a.pid");
  pid_t grandchild = pid_from(dir / "a.gc");

  a.signal(SIGSTOP);
  auto wrapper_stopped = [&] {
    char state = 0;
    pid_t pgrp = 0;
    return conch::process::proc_state(a.pid(), state, pgrp) && state == 'T';
  };
  REQUIRE(await(wrapper_stopped));
  // TTL 2 s: the local deadline passes while the wrapper is frozen; kill-after 0.5 s later
  // the group is gone — the wrapper has not run a single instruction meanwhile.
  CHECK(await([&] { return process_dead(child) && process_dead(grandchild); }, 10s));
  CHECK(wrapper_stopped());

  a.signal(SIGCONT);
  CHECK(a.wait() == 70);  // thawed, it finds its lease lost
}

TEST_CASE("elect: bad flags exit 64 with one line naming the problem", "[elect][usage]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  struct bad_case {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<bad_case> cases = {
      {{"elect", "office", "--ttl", "abc", "--", "true"}, "--ttl"},
      {{"elect", "office", "--ttl", "1500ms", "--", "true"}, "--ttl"},
      {{"elect", "office", "--kill-after"}, "--kill-after"},
      {{"elect", "office", "--bogus", "--", "true"}, "--bogus"},
      {{"elect", "office"}, "command"},
      {{"elect", "office", "--"}, "command"},
      {{"elect", "--", "true"}, "NAME"},
      {{"elect", "office", "--timeout", "soon", "--", "true"}, "--timeout"},
      {{"elect", "office", "--endpoints", "a,,b", "--", "true"}, "--endpoints"},
      {{"elect", "office", "--who", "--", "true"}, "--who"},
      {{"nope"}, "nope"},
  };
  int i = 0;
  for (const auto& c : cases) {
    conch_run r(dir, "bad" + std::to_string(i++), c.args, env_for(prefix));
    INFO((c.args.size() > 2 ? c.args[2] : c.args[0]));
    CHECK(r.wait(10s) == 64);
    auto err = lines_of(r.err());
    REQUIRE(err.size() == 1);
    CHECK(err[0].find(c.says) != std::string::npos);
    CHECK(err[0].starts_with("conch"));
    CHECK(r.out().empty());
  }
  conch_run help(dir, "help", {"elect", "--help"}, env_for(prefix));
  CHECK(help.wait(10s) == 0);
  CHECK(help.out().find("usage: conch elect NAME") != std::string::npos);
  CHECK(candidates(prefix, "office").empty());
}

TEST_CASE("elect: etcd unreachable at start exits 69 naming the endpoint", "[elect]") {
  temp_dir dir;
  // A loopback port nobody listens on.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  std::string endpoint = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  conch_run r(dir, "r", {"elect", "office", "--endpoints", endpoint, "--", "touch", dir / "ran"});
  CHECK(r.wait(30s) == 69);
  auto err = lines_of(r.err());
  REQUIRE(err.size() == 1);
  CHECK(err[0].find(endpoint) != std::string::npos);
  CHECK_FALSE(exists(dir / "ran"));

  conch_run who(dir, "who", {"elect", "office", "--who", "--endpoints", endpoint});
  CHECK(who.wait(30s) == 69);
}

TEST_CASE(
    "elect: a revoked holder whose group honours SIGTERM is known gone at once; no zombie is left",
    "[elect][subreaper]") {
  temp_dir dir;
  auto prefix = conch::test::unique_prefix();
  // sh dies on SIGTERM before or after its background sleep: the sleep is orphaned.
  conch_run a(dir, "a",
              {"elect", "office", "--kill-after", "5s", "--", "sh", "-c",
               "echo \"$CONCH_LEASE\" > \"$1.lease\"; echo $$ > \"$1.pid\"; sleep 100 & wait", "sh",
               dir / "a"},
              env_for(prefix));
  pid_t child = pid_from(dir / "a.pid");
  auto lease = conch::detail::parse_lease_hex(line_from(dir / "a.lease"));
  REQUIRE(lease);

  auto revoked = clk::now();
  conch::test::etcd_server::shared().revoke_lease(*lease);
  CHECK(a.wait() == 70);
  // Every member died on SIGTERM: the wrapper knew it long before kill-after (5 s).
  CHECK(clk::now() - revoked < 2500ms);
  // The wrapper reaped the orphaned sleep itself: not even a zombie is left in the group.
  CHECK(::kill(-child, 0) != 0);
  CHECK(errno == ESRCH);
}
