// conch's credentials stay with conch, and auth and TLS failures name their
// cause: real `conch` processes against a real etcd with auth on, and one that
// demands client certificates.
#include "conch/etcd.hpp"
#include "conch/process/output.hpp"
#include "conch/process/supervise.hpp"

#include "support/etcd_harness.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stop_token>
#include <string>
#include <sys/wait.h>
#include <thread>

using conch::test::etcd_server;

namespace {

std::string conch_bin() {
  if (const char* e = std::getenv("CONCH_TEST_BIN")) return e;
  return std::string(CONCH_BIN_DIR) + "/conch";
}

struct run_result {
  int code = -1;
  std::string out;  // stdout and stderr together
};

/// Runs a shell command line (the test's own quoting), stdout + stderr captured.
run_result sh(const std::string& line) {
  run_result r;
  FILE* p = ::popen((line + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;)
    r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// An etcd with auth on: root, and "alice" whose role covers one prefix only.
struct auth_etcd {
  etcd_server server;
  std::string prefix = conch::test::unique_prefix();
  auth_etcd() {
    server.add_user("alice", "alice-pw", prefix);
    server.enable_auth();
  }
  /// `conch` with this server's endpoint and `vars`, the rest of the line as given.
  std::string conch(const std::string& rest, const std::string& vars = "") const {
    return "env -u CONCH_PASSWORD CONCH_ENDPOINTS=" + server.endpoint() + " " + vars + " " +
           conch_bin() + " " + rest;
  }
};

auth_etcd& auth() {
  static auth_etcd instance;
  return instance;
}

etcd_server& cert_server() {
  static etcd_server server{[] {
    conch::test::etcd_options o;
    o.client_cert_auth = true;
    return o;
  }()};
  return server;
}

}  // namespace

TEST_CASE("credentials: elect's and sema's children do not inherit CONCH_PASSWORD") {
  auto& a = auth();
  for (std::string verb : {"elect office", "sema pool --max 1"}) {
    auto r = sh(a.conch(verb + " --prefix " + a.prefix + " --user alice -- env",
                        "CONCH_PASSWORD=alice-pw"));
    INFO(verb << ": " << r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("CONCH_LEASE=") != std::string::npos);  // the child ran, with our variables
    CHECK(r.out.find("CONCH_PASSWORD") == std::string::npos);
    CHECK(r.out.find("alice-pw") == std::string::npos);
  }
}

TEST_CASE("credentials: a cron run does not inherit CONCH_PASSWORD") {
  ::setenv("CONCH_PASSWORD", "secret-pw", 1);
  // A cron run is the supervisor with its output captured, as conchd runs it.
  conch::process::output_tail tail{4096};
  conch::process::held_claim claim;
  claim.env = {{"CONCH_TICK", "t"}};
  conch::process::supervise_options opt;
  opt.argv = {"env"};
  opt.forward_stop = false;
  opt.capture = &tail;
  opt.say = [](const std::string&) {};
  auto out = conch::process::supervisor<>{claim, opt, nullptr, {}, {}, std::stop_token{}}.run();
  ::unsetenv("CONCH_PASSWORD");
  const std::string output = tail.str();
  INFO(output);
  REQUIRE(out.exit_code == 0);
  CHECK(output.find("CONCH_TICK=t") != std::string::npos);
  CHECK(output.find("CONCH_PASSWORD") == std::string::npos);
}

namespace {

/// How many established TCP connections to 127.0.0.1:`port` there are (gRPC
/// dials IPv4 through IPv6 sockets, so both tables count).
int connections_to(int port) {
  int n = 0;
  char v4[32], v6[48];
  std::snprintf(v4, sizeof v4, "0100007F:%04X", port);
  std::snprintf(v6, sizeof v6, "0000000000000000FFFF00000100007F:%04X", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream tcp(table);
    std::string line;
    std::getline(tcp, line);  // header
    while (std::getline(tcp, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state;
      f >> slot >> local >> remote >> state;
      if ((remote == v4 || remote == v6) && state == "01") ++n;
    }
  }
  return n;
}

int port_of(const std::string& endpoint) {
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

}  // namespace

TEST_CASE("auth: a call never waits on another caller's Authenticate past its own deadline") {
  // An Authenticate stuck on a frozen etcd must not hold up a call with a
  // shorter deadline (a keepalive reopening its stream is one).
  etcd_server server;
  server.add_user("alice", "alice-pw", conch::test::unique_prefix());
  server.enable_auth();
  auto o = server.client_options();
  o.user = "alice";
  o.password = "alice-pw";
  conch::etcd_transport t{o};
  conch::range_request probe;
  probe.key = "conch-probe";

  const int port = port_of(server.endpoint());
  const int before = connections_to(port);  // etcd's own gateway, etcdctl leftovers
  REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  std::atomic<bool> first_done{false};
  std::thread first{[&] {
    (void)t.range(probe, std::chrono::steady_clock::now() + std::chrono::minutes{1});
    first_done = true;
  }};
  // The first call is authenticating once its connection is up (etcd is frozen: no answer).
  bool authenticating = false;
  for (int i = 0; i < 1000 && !authenticating; ++i) {
    authenticating = connections_to(port) > before;
    if (!authenticating) std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  auto second = t.range(probe, std::chrono::steady_clock::now() + std::chrono::milliseconds{300});
  const bool first_still_waiting = !first_done;
  ::kill(server.pid(), SIGCONT);
  first.join();
  REQUIRE(authenticating);
  REQUIRE_FALSE(second);
  CHECK(first_still_waiting);  // the second call did not wait for the first one's Authenticate
  CHECK(second.error().code == conch::errc::timed_out);
  CHECK_THAT(second.error().message, Catch::Contains("while authenticating as 'alice'"));
}

TEST_CASE("auth: without a user, the error says to pass --user") {
  auto& a = auth();
  conch::etcd_transport anonymous{a.server.client_options()};
  conch::put_request put;
  put.key = a.prefix + "k";
  auto r = anonymous.put(put, anonymous.default_deadline());
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("etcd requires authentication: pass --user"));
  auto tool = sh(a.conch("elect office --prefix " + a.prefix + " -- true"));
  CHECK(tool.code == 69);
  CHECK_THAT(tool.out, Catch::Contains("etcd requires authentication: pass --user"));
}

TEST_CASE("auth: a permission denial names the user and the key or prefix") {
  auto& a = auth();
  auto o = a.server.client_options();
  o.user = "alice";
  o.password = "alice-pw";
  conch::etcd_transport etcd{o};
  conch::put_request put;
  put.key = "elsewhere/k";
  auto w = etcd.put(put, etcd.default_deadline());
  REQUIRE_FALSE(w);
  CHECK(w.error().code == conch::errc::permission_denied);
  CHECK_THAT(w.error().message,
             Catch::Contains("user 'alice'") && Catch::Contains("key 'elsewhere/k'"));
  auto r = etcd.range(conch::range_request::prefix("elsewhere/"), etcd.default_deadline());
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message,
             Catch::Contains("user 'alice'") && Catch::Contains("prefix 'elsewhere/'"));
  auto watch = etcd.watch(conch::watch_request::prefix("elsewhere/"));
  auto b = watch.next(std::chrono::steady_clock::now() + std::chrono::seconds{5});
  REQUIRE_FALSE(b);
  CHECK(b.error().code == conch::errc::permission_denied);
  CHECK_THAT(b.error().message,
             Catch::Contains("user 'alice'") && Catch::Contains("prefix 'elsewhere/'"));
}

TEST_CASE("TLS: a server that demands a client certificate says so, and gRPC's log stays quiet") {
  auto& server = cert_server();
  auto o = server.client_options();
  o.cert_file.clear();
  o.key_file.clear();
  conch::etcd_transport etcd{o};
  auto r = etcd.range(conch::range_request::prefix("x"),
                      std::chrono::steady_clock::now() + std::chrono::seconds{3});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == conch::errc::unavailable);
  CHECK_THAT(r.error().message,
             Catch::Contains(server.endpoint() +
                             ": the server requires a client certificate (--cert, --key)"));

  auto tool = sh("env -u CONCH_PASSWORD CONCH_ENDPOINTS=" + server.endpoint() + " " + conch_bin() +
                 " elect office --cacert " + server.ca_file() + " -- true");
  INFO(tool.out);
  CHECK(tool.code == 69);
  CHECK_THAT(tool.out, Catch::Contains("the server requires a client certificate (--cert, --key)"));
  CHECK(tool.out.find(".cc:") ==
        std::string::npos);  // no "E1129 ... ssl_transport_security.cc:556] ..."
  CHECK(std::count(tool.out.begin(), tool.out.end(), '\n') == 1);
}
