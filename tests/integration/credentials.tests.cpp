// conch's credentials stay with conch, and auth and TLS failures name their
// cause: real `conch` processes against a real etcd with auth on, and one that
// demands client certificates.
#include "conch/etcd.hpp"
#include "conch/process/cron_run.hpp"

#include "support/etcd_harness.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <stop_token>
#include <string>
#include <sys/wait.h>

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
  conch::detail::cron_command cmd;
  cmd.argv = {"env"};
  cmd.env = {{"CONCH_TICK", "t"}};
  auto out = conch::detail::run_command(cmd, std::stop_token{});
  ::unsetenv("CONCH_PASSWORD");
  INFO(out.output);
  REQUIRE(out.exit_code == 0);
  CHECK(out.output.find("CONCH_TICK=t") != std::string::npos);
  CHECK(out.output.find("CONCH_PASSWORD") == std::string::npos);
}
