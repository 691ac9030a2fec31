// examples/custom_policies.cpp — a policy bundle with a clock of our own.
//
// On Linux, std::chrono::steady_clock (CLOCK_MONOTONIC) stops while the
// machine is suspended, but etcd keeps counting the lease's TTL. A laptop
// that wakes up after an hour would believe its local deadline is still
// ahead. CLOCK_BOOTTIME counts the suspended time too, so a session on it
// declares itself lost the moment it wakes. One clock type, one bundle member
// overridden; everything else keeps its default.
//
//   example_custom_policies [ENDPOINT]        # default 127.0.0.1:2379
#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <time.h>

using namespace std::chrono_literals;

// Chrono-shaped, steady, and able to wait with a stop token: a clock policy.
struct boot_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<boot_clock>;
  static constexpr bool is_steady = true;

  time_point now() const noexcept {
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return time_point{std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec}};
  }
  // Sleeps in short steps, so time spent suspended is noticed soon after waking.
  bool sleep_until(time_point tp, std::stop_token stop) const {
    for (auto left = tp - now(); left > duration::zero(); left = tp - now()) {
      const auto step = std::min<duration>(left, 100ms);
      if (!conch::steady_clock_policy::sleep_until(std::chrono::steady_clock::now() + step, stop))
        return false;
    }
    return !stop.stop_requested();
  }
};
static_assert(conch::monotonic_clock_policy<boot_clock>);

struct suspend_aware : conch::default_policies {
  using clock = boot_clock;
};

int main(int argc, char** argv) {
  conch::transport_options where;
  if (argc > 1) where.endpoints = {argv[1]};
  conch::etcd_transport etcd{where};

  conch::basic_session<suspend_aware>::options lease;
  lease.ttl = 5s;
  conch::basic_session<suspend_aware> session{etcd, lease};
  if (auto r = session.start(); !r) return std::cerr << r.error().message << '\n', 69;
  conch::basic_election<suspend_aware> office{session, "conch-example/", "suspend-aware"};
  conch::basic_election<suspend_aware>::campaign_options patiently;
  patiently.timeout = 10s;
  if (auto r = office.campaign("{\"name\":\"boot-clock\"}", patiently); !r)
    return std::cerr << r.error().message << '\n', 75;

  // Hold the office for two keepalive rounds: the local deadline, on boot
  // time, keeps moving forward while the session is healthy.
  const auto first = session.local_deadline();
  session.clock().sleep_until(session.clock().now() + 4s, session.lost_token());
  const auto later = session.local_deadline();
  std::cout << "leading with token " << office.token() << "; local deadline moved "
            << std::chrono::duration_cast<std::chrono::milliseconds>(later - first).count()
            << " ms forward on CLOCK_BOOTTIME\n";
  if (session.lost() || later <= first) return 1;
  return office.resign() ? 0 : 1;
}
