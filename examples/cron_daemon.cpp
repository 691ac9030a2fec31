// examples/cron_daemon.cpp — a host application running conch's cron in process.
//
// Stores a job that runs every second, then runs a cron daemon (the library
// conchd is built on) until that job has run three times. Start this program
// twice against one etcd and each tick still runs once, on one of them.
//
//   example_cron_daemon [ENDPOINT]     # default 127.0.0.1:2379
#include "conch/cron.hpp"
#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  conch::transport_options where;
  if (argc > 1) where.endpoints = {argv[1]};
  conch::etcd_transport etcd{where};

  // What `conch cron add hello --schedule '@every 1s' -- ...` stores.
  const std::string prefix = "conch-example/";
  auto added = conch::add_cron_job(
      etcd, prefix,
      {.name = "hello",
       .schedule = "@every 1s",
       .tz = "",
       .argv = {"sh", "-c", "echo hello from tick $CONCH_TICK, claim $CONCH_REV"}},
      std::chrono::system_clock::now());
  if (!added) {
    std::cerr << "example_cron_daemon: " << added.error().message << '\n';
    return 69;
  }

  // The daemon reports each claim, run and result; we stop after three results.
  std::atomic<int> results{0};
  std::stop_source stop;
  conch::cron daemon{etcd, {.prefix = prefix, .on_event = [&](const conch::cron_event& e) {
                              if (e.what != conch::cron_event::kind::finished) return;
                              std::cout << "tick " << e.tick << " ran, exit code " << e.exit_code
                                        << '\n';
                              if (++results == 3) stop.request_stop();
                            }}};
  if (auto r = daemon.start(); !r) {
    std::cerr << "example_cron_daemon: " << r.error().message << '\n';
    return 69;
  }
  std::jthread deadline([&](std::stop_token done) {  // never more than 20 s
    if (conch::steady_clock_policy::sleep_until(std::chrono::steady_clock::now() + 20s, done))
      stop.request_stop();
  });
  (void)daemon.run(stop.get_token());

  // The job's history, as `conch cron ls` shows it.
  (void)conch::remove_cron_job(etcd, prefix, "hello");
  if (auto jobs = conch::list_cron_jobs(etcd, prefix, std::chrono::system_clock::now(), 3))
    for (const auto& job : *jobs)
      for (const auto& run : job.runs)
        std::cout << job.name << " " << run.tick << ": " << run.output;
  return results >= 3 ? 0 : 1;
}
