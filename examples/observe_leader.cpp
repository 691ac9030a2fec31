// examples/observe_leader.cpp — following who leads an office.
//
// An observer prints every change of leader of office "example": the current
// one, each new leader or value, each vacancy. It needs no session. To have
// something to show, this program then takes the office itself, proclaims a
// new value and resigns; the observer reports each step as etcd delivers it.
//
//   example_observe_leader [ENDPOINT]  # default 127.0.0.1:2379
#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  conch::transport_options where;
  if (argc > 1) where.endpoints = {argv[1]};
  conch::etcd_transport etcd{where};

  std::mutex m;
  std::condition_variable cv;
  int reports = 0;
  std::jthread watcher([&](std::stop_token stop) {
    auto r = conch::election::observe(
        etcd, "conch/", "example", stop, [&](const std::optional<conch::key_value>& kv) {
          std::cout << (kv ? "leader: " + kv->key + " = " + kv->value : std::string("vacant"))
                    << std::endl;
          std::lock_guard lock{m};
          ++reports;
          cv.notify_all();
        });
    if (!r) std::cerr << "example_observe_leader: " << r.error().message << '\n';
  });
  auto await_reports = [&](int n) {
    std::unique_lock lock{m};
    return cv.wait_for(lock, 10s, [&] { return reports >= n; });
  };

  conch::session session{etcd};
  conch::election office{session, "conch/", "example"};
  bool ok = await_reports(1) && session.start() && office.campaign("first") && await_reports(2) &&
            office.proclaim("second") && await_reports(3) && office.resign() && await_reports(4);
  if (!ok) std::cerr << "example_observe_leader: the office did not go as planned\n";
  return ok ? 0 : 1;
}
