// examples/bounded_work.cpp — at most N jobs at once, however many workers ask.
//
// Every worker holds its own lease and waits its turn on semaphore "encoders"
// of 2 slots, first come first served; run this program several times at once
// and the bound holds across all of them. Here five workers run as threads of
// one process, each with its own session, exactly as five processes would.
// The policy bundle swaps in a brisker backoff: these jobs are short, so
// after an etcd hiccup we retry within tens of milliseconds, not seconds.
//
//   example_bounded_work [ENDPOINT]        # default 127.0.0.1:2379
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/semaphore.hpp"

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct brisk_backoff : conch::exponential_backoff {
  brisk_backoff() : exponential_backoff({.initial = 20ms, .cap = 500ms}) {}
};
struct pool_policies : conch::default_policies {
  using backoff = brisk_backoff;
};

int main(int argc, char** argv) {
  conch::transport_options where;
  if (argc > 1) where.endpoints = {argv[1]};
  conch::etcd_transport etcd{where};
  constexpr int slots = 2, workers = 5;
  std::atomic<int> running{0}, peak{0}, failed{0};

  auto work = [&](int id) {
    conch::basic_session<pool_policies> session{etcd};  // a 10 s lease
    conch::basic_semaphore<pool_policies> pool{session, "conch-example/", "encoders", slots};
    auto r = session.start();
    if (r) r = pool.acquire("{\"worker\":" + std::to_string(id) + "}", {.timeout = 30s});
    if (!r) {
      std::cerr << "worker " << id << ": " << r.error().message << '\n';
      ++failed;
      return;
    }
    const int now = ++running;
    int seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    std::cout << "worker " << id << " holds slot " << pool.slot() << " (token " << pool.token()
              << ")\n";
    // The job; it would stop at once if the lease were lost (another may hold the slot then).
    session.clock().sleep_until(session.clock().now() + 300ms, session.lost_token());
    --running;
    if (session.lost() || !pool.release()) ++failed;
  };

  std::vector<std::jthread> threads;
  for (int id = 0; id < workers; ++id) threads.emplace_back(work, id);
  threads.clear();  // joins

  std::cout << "at most " << peak << " of " << workers << " workers at once (bound " << slots
            << ")\n";
  return failed == 0 && peak <= slots ? 0 : 1;
}
