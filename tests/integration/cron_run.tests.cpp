// Running one claimed tick's command: real processes, no etcd.
#include "conch/process/cron_run.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <stop_token>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using conch::detail::cron_command;
using conch::detail::run_command;

TEST_CASE("a run reports the exit code and the tail of stdout and stderr", "[cron]") {
  cron_command cmd{.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"}};
  auto r = run_command(cmd, std::stop_token{});
  CHECK(r.exit_code == 3);
  CHECK(r.output.find("out") != std::string::npos);
  CHECK(r.output.find("err") != std::string::npos);
  CHECK(r.pid > 0);
  CHECK(r.end >= r.start);
}

TEST_CASE("the child sees the tick's environment", "[cron]") {
  cron_command cmd{.argv = {"sh", "-c", "printf %s \"$CONCH_TICK/$CONCH_REV\""},
                   .env = {{"CONCH_TICK", "2026-01-01T00:00:00Z"}, {"CONCH_REV", "42"}}};
  auto r = run_command(cmd, std::stop_token{});
  CHECK(r.exit_code == 0);
  CHECK(r.output == "2026-01-01T00:00:00Z/42");
}

TEST_CASE("only the last bytes of a long output are kept", "[cron]") {
  cron_command cmd{.argv = {"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; printf END"},
                   .output_cap = 4096};
  auto r = run_command(cmd, std::stop_token{});
  CHECK(r.exit_code == 0);
  CHECK(r.output.size() == 4096);
  CHECK(r.output.substr(4093) == "END");
}

TEST_CASE("a command that cannot start ends with 127 and the reason", "[cron]") {
  cron_command cmd{.argv = {"/nonexistent/conch-no-such-command"}};
  int started = 0;
  auto r = run_command(cmd, std::stop_token{}, {.started = [&](long) { ++started; }, .exited = {}});
  CHECK(r.exit_code == 127);
  CHECK(r.output.find("conch-no-such-command") != std::string::npos);
  CHECK(started == 0);
}

TEST_CASE("a stop lets the run go on for kill_after, then kills its whole group", "[cron]") {
  // The grandchild (a background sleep) must die with the group.
  cron_command cmd{.argv = {"sh", "-c", "sleep 30 & echo $!; wait"}, .kill_after = 300ms};
  std::stop_source stop;
  std::jthread stopper;
  auto began = std::chrono::steady_clock::now();
  long exited = 0;
  auto r = run_command(cmd, stop.get_token(),
                       {.started = [&](long) {
                          stopper = std::jthread([&] {
                            std::this_thread::sleep_for(100ms);
                            stop.request_stop();
                          });
                        },
                        .exited = [&](long pid) { exited = pid; }});
  CHECK(exited == r.pid);
  auto took = std::chrono::steady_clock::now() - began;
  CHECK(r.exit_code == 128 + SIGKILL);
  CHECK(took >= 400ms);  // 100ms before the stop + kill_after
  CHECK(took < 10s);
  const long grandchild = std::stol(r.output);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ::kill(static_cast<pid_t>(grandchild), 0) != 0;
    if (!gone) std::this_thread::sleep_for(20ms);
  }
  CHECK(gone);
}

TEST_CASE("a run that ends within kill_after of a stop keeps its own exit code", "[cron]") {
  cron_command cmd{.argv = {"sh", "-c", "sleep 0.2; exit 5"}, .kill_after = 5s};
  std::stop_source stop;
  stop.request_stop();
  auto r = run_command(cmd, stop.get_token());
  CHECK(r.exit_code == 5);
}
