// tests/support/cron_fixture.hpp — conchd and `conch cron` as processes
// against the shared real etcd: run the tools, start daemons, read keys.
// For one test file each (everything is inline in an unnamed namespace).
#pragma once

#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/process/output.hpp"
#include "conch/process/spawn.hpp"

#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"
#include "support/prometheus.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <poll.h>
#include <set>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using conch::detail::tick_time;

namespace {

const std::string bin_dir = CONCH_BIN_DIR;

// A test that stops etcd points these at an etcd of its own (private_etcd).
conch::test::etcd_server* own_etcd = nullptr;
conch::etcd_transport* own_client = nullptr;

conch::test::etcd_server& etcd() {
  return own_etcd ? *own_etcd : conch::test::etcd_server::shared();
}

conch::etcd_transport& client() {
  if (own_client) return *own_client;
  static conch::etcd_transport t{conch::test::etcd_server::shared().client_options()};
  return t;
}

/// While alive, the helpers below use a fresh etcd that no other test shares.
struct private_etcd {
  conch::test::etcd_server server;
  conch::etcd_transport transport{server.client_options()};
  explicit private_etcd(conch::test::etcd_options o = {}) : server(o) {
    own_etcd = &server;
    own_client = &transport;
  }
  ~private_etcd() {
    own_etcd = nullptr;
    own_client = nullptr;
  }
  private_etcd(const private_etcd&) = delete;
  private_etcd& operator=(const private_etcd&) = delete;
};

using conch::test::eventually;

std::string temp_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/conch-cron-it-XXXXXX";
    return std::string(::mkdtemp(tmpl));
  }();
  return dir;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A finished tool run: exit code, stdout, stderr.
struct tool_run {
  int code = -1;
  std::string out, err;
};

/// Runs bin/<tool> with `args`, bounded in time.
tool_run run_tool(const std::string& tool, std::vector<std::string> args,
                  std::chrono::seconds within = 20s) {
  args.insert(args.begin(), bin_dir + "/" + tool);
  auto c = conch::process::spawn({.argv = args, .env = {}, .capture_output = true});
  REQUIRE(c);
  conch::process::output_tail out{1 << 20}, err{1 << 20};
  const auto until = std::chrono::steady_clock::now() + within;
  while (!c->exited() && std::chrono::steady_clock::now() < until) {
    pollfd fds[3] = {
        {c->stdout_fd(), POLLIN, 0}, {c->stderr_fd(), POLLIN, 0}, {c->exit_fd(), POLLIN, 0}};
    ::poll(fds, 3, 50);
    if (c->stdout_fd() >= 0 && !conch::process::pump(c->stdout_fd(), -1, out)) c->close_stdout();
    if (c->stderr_fd() >= 0 && !conch::process::pump(c->stderr_fd(), -1, err)) c->close_stderr();
  }
  if (c->stdout_fd() >= 0) conch::process::pump(c->stdout_fd(), -1, out);
  if (c->stderr_fd() >= 0) conch::process::pump(c->stderr_fd(), -1, err);
  tool_run r;
  if (!c->exited()) {
    (void)c->signal_group(SIGKILL);
    FAIL_CHECK(tool << " did not finish in time");
  }
  r.code = conch::detail::exit_code_of(c->reap());
  r.out = out.str();
  r.err = err.str();
  return r;
}

tool_run conch_cron(const std::string& prefix, std::vector<std::string> args) {
  args.insert(args.begin(), {"cron"});
  args.insert(args.begin() + 2, {"--endpoints", etcd().endpoint(), "--prefix", prefix});
  return run_tool("conch", std::move(args));
}

void add_job(const std::string& prefix, const std::string& name, const std::string& schedule,
             std::vector<std::string> argv, std::vector<std::string> flags = {}) {
  std::vector<std::string> args{"add", name, "--schedule", schedule};
  args.insert(args.end(), flags.begin(), flags.end());
  args.push_back("--");
  args.insert(args.end(), argv.begin(), argv.end());
  auto r = conch_cron(prefix, args);
  INFO(r.err);
  REQUIRE(r.code == 0);
}

void remove_job(const std::string& prefix, const std::string& name) {
  auto r = conch_cron(prefix, {"rm", name});
  INFO(r.err);
  REQUIRE(r.code == 0);
}

nlohmann::json ls_json(const std::string& prefix, int last = 5) {
  auto r = conch_cron(prefix, {"ls", "--json", "--last", std::to_string(last)});
  INFO(r.err);
  REQUIRE(r.code == 0);
  return nlohmann::json::parse(r.out);
}

/// One conchd process; its log (stderr) goes to a file. Killed (group and
/// all) on destruction, so a failing test leaves no daemon behind.
class conchd {
 public:
  /// `launcher` (a command and its arguments) runs conchd when given.
  conchd(const std::string& prefix, std::vector<std::string> extra = {},
         std::vector<std::pair<std::string, std::string>> env = {},
         std::vector<std::string> launcher = {}) {
    static int count = 0;
    log_ = temp_dir() + "/conchd-" + std::to_string(++count) + ".log";
    std::vector<std::string> argv{"sh", "-c", "exec \"$0\" \"$@\" 2>>\"$CONCHD_LOG\""};
    argv.insert(argv.end(), launcher.begin(), launcher.end());
    argv.insert(argv.end(), {bin_dir + "/conchd", "--endpoints", etcd().endpoint(), "--prefix",
                             prefix, "--ttl", "2"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    env.emplace_back("CONCHD_LOG", log_);
    auto c = conch::process::spawn({.argv = argv, .env = env, .capture_output = false});
    REQUIRE(c);
    child_ = std::move(*c);
    REQUIRE(await_log("started: prefix"));
  }

  pid_t pid() const { return child_.pid(); }
  std::string log() const { return read_file(log_); }
  bool await_log(const std::string& text, std::chrono::milliseconds within = 15s) const {
    return eventually([&] { return log().find(text) != std::string::npos; }, within);
  }
  /// Sends `sig` and waits (bounded) for the exit code.
  int stop(int sig = SIGTERM, std::chrono::milliseconds within = 15s) {
    (void)child_.signal_group(sig);
    if (!eventually([&] { return child_.exited(); }, within)) return -1;
    return conch::detail::exit_code_of(child_.reap());
  }

 private:
  conch::process::child child_;
  std::string log_;
};

std::vector<conch::key_value> range_prefix(const std::string& dir) {
  auto r = client().range(conch::range_request::prefix(dir), client().default_deadline());
  REQUIRE(r);
  return r->kvs;
}

std::optional<conch::key_value> get(const std::string& key) {
  conch::range_request req;
  req.key = key;
  auto r = client().range(req, client().default_deadline());
  REQUIRE(r);
  if (r->kvs.empty()) return std::nullopt;
  return r->kvs.front();
}

tick_time tick_of(const std::string& key) {
  auto t = conch::detail::parse_tick(key.substr(key.size() - 16));
  REQUIRE(t);
  return *t;
}

/// Every event ever seen under `dir`, from revision 1 up to the current
/// state of `dir`: the history a claim or result cannot hide from.
std::vector<conch::watch_event> history(const std::string& dir) {
  auto now = client().range(conch::range_request::prefix(dir), client().default_deadline());
  REQUIRE(now);
  conch::revision target = 0;
  for (const auto& kv : now->kvs) target = std::max(target, kv.mod_revision);
  std::vector<conch::watch_event> events;
  if (target == 0) return events;
  auto stream = client().watch(conch::watch_request::prefix(dir, 1));
  conch::revision seen = 0;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (seen < target && std::chrono::steady_clock::now() < until) {
    auto batch = stream.next(std::chrono::steady_clock::now() + 2s);
    if (!batch) continue;
    for (auto& e : batch->events) {
      seen = std::max(seen, e.kv.mod_revision);
      events.push_back(std::move(e));
    }
  }
  REQUIRE(seen >= target);
  return events;
}

/// 0 while etcd does not answer (it may be coming back): callers poll.
std::size_t count_runs(const std::string& prefix, const std::string& job) {
  auto r = client().range(conch::range_request::prefix(prefix + "cron/runs/" + job + "/"),
                          client().default_deadline());
  return r ? r->kvs.size() : 0;
}

/// etcd's write calls so far: the Txn, Put and DeleteRange calls it handled
/// (a read-only Txn counts too: callers keep pruning's reads out).
long etcd_write_calls() {
  const std::string text = conch::test::metrics_text(etcd().client_port());
  REQUIRE(text.find("grpc_server_handled_total") != std::string::npos);
  double n = 0;
  for (const char* m : {"Txn", "Put", "DeleteRange"})
    n += conch::test::metric_sum(text, "grpc_server_handled_total",
                                 {"grpc_method=\"" + std::string(m) + "\""})
             .value_or(0);
  return static_cast<long>(n);
}

const nlohmann::json* find_job(const nlohmann::json& ls, const std::string& name) {
  for (const auto& j : ls)
    if (j["name"] == name) return &j;
  return nullptr;
}

}  // namespace
