// Running one claimed tick's command the way conchd does — the supervisor
// with its output captured and stops not forwarded: real processes, no etcd.
#include "conch/process/output.hpp"
#include "conch/process/supervise.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stop_token>
#include <string>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using conch::process::held_claim;
using conch::process::supervise_options;
using conch::process::supervise_outcome;

namespace {

struct cron_run {
  supervise_outcome out;
  std::string output;
};

cron_run run(std::vector<std::string> argv, std::stop_token stop = {}, held_claim claim = {},
             std::chrono::milliseconds kill_after = 5s, std::function<void(long)> on_start = {}) {
  conch::process::output_tail tail{4096};
  supervise_options opt;
  opt.argv = std::move(argv);
  opt.kill_after = kill_after;
  opt.forward_stop = false;
  opt.capture = &tail;
  opt.on_start = std::move(on_start);
  opt.say = [](const std::string&) {};
  auto out = conch::process::supervisor<>{claim, opt, nullptr, {}, {}, std::move(stop)}.run();
  return {out, tail.str()};
}

/// Running, as opposed to gone or a zombie waiting for init to reap it.
bool running(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

bool gone_soon(long pid) {
  for (int i = 0; i < 250; ++i) {
    if (!running(pid)) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

}  // namespace

TEST_CASE("a run reports the exit code and the tail of stdout and stderr", "[cron]") {
  auto r = run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(r.out.exit_code == 3);
  CHECK(r.output.find("out") != std::string::npos);
  CHECK(r.output.find("err") != std::string::npos);
  CHECK(r.out.pid > 0);
}

TEST_CASE("the child sees the tick's environment", "[cron]") {
  held_claim claim;
  claim.env = {{"CONCH_TICK", "2026-01-01T00:00:00Z"}, {"CONCH_REV", "42"}};
  auto r = run({"sh", "-c", "printf %s \"$CONCH_TICK/$CONCH_REV\""}, {}, claim);
  CHECK(r.out.exit_code == 0);
  CHECK(r.output == "2026-01-01T00:00:00Z/42");
}

TEST_CASE("only the last bytes of a long output are kept", "[cron]") {
  auto r = run({"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; printf END"});
  CHECK(r.out.exit_code == 0);
  CHECK(r.output.size() == 4096);
  CHECK(r.output.substr(4093) == "END");
}

TEST_CASE("a command that cannot start ends with 127 and the reason", "[cron]") {
  int started = 0;
  auto r = run({"/nonexistent/conch-no-such-command"}, {}, {}, 5s, [&](long) { ++started; });
  CHECK(r.out.exit_code == 127);
  CHECK(r.out.how == supervise_outcome::ending::not_started);
  CHECK(r.out.not_started_reason.find("conch-no-such-command") != std::string::npos);
  CHECK(started == 0);
}

TEST_CASE("a stop lets the run go on for kill_after, then kills its whole group", "[cron]") {
  // The grandchild (a background sleep) must die with the group.
  std::stop_source stop;
  std::jthread stopper;
  auto r = run({"sh", "-c", "sleep 30 & echo $!; wait"}, stop.get_token(), {}, 300ms, [&](long) {
    stopper = std::jthread([&] {
      std::this_thread::sleep_for(100ms);
      stop.request_stop();
    });
  });
  CHECK(r.out.exit_code == 128 + SIGKILL);  // not SIGTERM: a stop is not forwarded to a run
  CHECK(gone_soon(std::stol(r.output)));
}

TEST_CASE("what a run leaves running in its group is stopped when the command exits", "[cron]") {
  auto r = run({"sh", "-c", "sleep 4242 & echo $!; echo started"});
  CHECK(r.out.exit_code == 0);
  CHECK(r.output.find("started") != std::string::npos);
  const long sleeper = std::stol(r.output);
  CHECK_FALSE(running(sleeper));  // already stopped when the run is reported
}

TEST_CASE("a lost claim stops the run's group", "[cron]") {
  std::stop_source lost;
  held_claim claim;
  claim.lost = lost.get_token();
  std::jthread loser;
  auto r = run({"sh", "-c", "sleep 30 & echo $!; wait"}, {}, claim, 5s, [&](long) {
    loser = std::jthread([&] {
      std::this_thread::sleep_for(200ms);
      lost.request_stop();
    });
  });
  CHECK(r.out.how == supervise_outcome::ending::lost);
  CHECK(gone_soon(std::stol(r.output)));
}

TEST_CASE("a run that ends within kill_after of a stop keeps its own exit code", "[cron]") {
  std::stop_source stop;
  auto r = run({"sh", "-c", "sleep 0.2; exit 5"}, stop.get_token(), {}, 5s,
               [&](long) { stop.request_stop(); });
  CHECK(r.out.exit_code == 5);
}

TEST_CASE("a stop before the start starts nothing", "[cron]") {
  std::stop_source stop;
  stop.request_stop();
  auto r = run({"true"}, stop.get_token());
  CHECK(r.out.starts == 0);
  CHECK(r.out.exit_code == 128 + SIGTERM);
}

TEST_CASE("terminate sends SIGTERM to the group even when stops are not forwarded", "[cron]") {
  // A run's timeout or a replacing tick: SIGTERM now, SIGKILL after kill_after.
  std::stop_source terminate;
  conch::process::output_tail tail{4096};
  supervise_options opt;
  opt.argv = {"sh", "-c", "trap 'echo term; exit 143' TERM; sleep 30 & echo $!; wait"};
  opt.kill_after = 5s;
  opt.forward_stop = false;
  opt.capture = &tail;
  opt.terminate = terminate.get_token();
  opt.say = [](const std::string&) {};
  std::jthread stopper;
  opt.on_start = [&](long) {
    stopper = std::jthread([&] {
      std::this_thread::sleep_for(200ms);
      terminate.request_stop();
    });
  };
  auto out = conch::process::supervisor<>{{}, opt, nullptr, {}, {}, {}}.run();
  CHECK(out.exit_code == 143);  // the trap heard SIGTERM: not the SIGKILL a stop would give
  CHECK(tail.str().find("term") != std::string::npos);
  CHECK(gone_soon(std::stol(tail.str())));
}

TEST_CASE("terminate ends with SIGKILL after kill_after when SIGTERM is ignored", "[cron]") {
  char dir[] = "/tmp/conch-terminate-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  const std::string ready = std::string(dir) + "/ready";
  std::stop_source terminate;
  supervise_options opt;
  opt.argv = {"sh", "-c", "trap '' TERM; touch " + ready + "; while :; do sleep 0.05; done"};
  opt.kill_after = 300ms;
  opt.forward_stop = false;
  opt.terminate = terminate.get_token();
  opt.say = [](const std::string&) {};
  std::jthread stopper;
  opt.on_start = [&](long) {
    stopper = std::jthread([&](std::stop_token done) {
      // Once the trap is set (the file exists), so SIGTERM is surely ignored.
      for (int i = 0; i < 1000 && !done.stop_requested() && !std::ifstream(ready); ++i)
        std::this_thread::sleep_for(10ms);
      terminate.request_stop();
    });
  };
  auto out = conch::process::supervisor<>{{}, opt, nullptr, {}, {}, {}}.run();
  CHECK(out.exit_code == 128 + SIGKILL);
  std::remove(ready.c_str());
  ::rmdir(dir);
}

TEST_CASE("terminate before the start starts nothing", "[cron]") {
  std::stop_source terminate;
  terminate.request_stop();
  supervise_options opt;
  opt.argv = {"true"};
  opt.terminate = terminate.get_token();
  opt.say = [](const std::string&) {};
  auto out = conch::process::supervisor<>{{}, opt, nullptr, {}, {}, {}}.run();
  CHECK(out.starts == 0);
}
