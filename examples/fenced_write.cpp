// examples/fenced_write.cpp — writes that a stale leader cannot make.
//
// A leader that was paused (GC, SIGSTOP, a slow disk) may wake up after its
// lease expired and another process took the office. Its writes to etcd go
// through conch::guarded_txn, which compares the create_revision of the
// leader's own key: once that key is gone, the txn fails instead of
// clobbering the successor's data. Here leader A is made stale by revoking
// its lease (as etcd does when a lease expires), B takes over, and A's late
// write is refused.
//
//   example_fenced_write [ENDPOINT]        # default 127.0.0.1:2379
#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"

#include <chrono>
#include <iostream>
#include <string>

using namespace std::chrono_literals;
const std::string data_key = "conch-example/fenced/config";

// One fenced write: true if it landed, false if we no longer hold the office.
bool write(conch::etcd_transport& etcd, const conch::election& office, const std::string& value) {
  auto txn = conch::guarded_txn(conch::revision_fencing{}, office.held(),
                                {conch::put_request{.key = data_key, .value = value}});
  auto r = etcd.txn(txn, etcd.default_deadline());
  return r && r->succeeded;
}

int main(int argc, char** argv) {
  conch::transport_options where;
  if (argc > 1) where.endpoints = {argv[1]};
  conch::etcd_transport etcd{where};
  std::cout << std::boolalpha;

  conch::session a_session{etcd}, b_session{etcd};  // 10 s leases
  if (auto r = a_session.start(); !r) return std::cerr << r.error().message << '\n', 69;
  if (auto r = b_session.start(); !r) return std::cerr << r.error().message << '\n', 69;
  conch::election a{a_session, "conch-example/", "fenced"},
      b{b_session, "conch-example/", "fenced"};
  conch::election::campaign_options patiently;
  patiently.timeout = 10s;

  if (!a.campaign("{\"name\":\"A\"}", patiently)) return 1;
  std::cout << "A leads with token " << a.token()
            << "; its write lands: " << write(etcd, a, "from A") << '\n';

  // A's lease goes away while A is not looking: its key is deleted with it.
  if (!etcd.lease_revoke(a_session.lease(), etcd.default_deadline())) return 1;
  if (!b.campaign("{\"name\":\"B\"}", patiently)) return 1;
  std::cout << "B leads with token " << b.token()
            << "; its write lands: " << write(etcd, b, "from B") << '\n';

  // A wakes up still believing it leads and writes with its old fence.
  const bool stale_landed = write(etcd, a, "late from A");
  std::cout << "stale A's write lands: " << stale_landed << '\n';

  conch::range_request read;
  read.key = data_key;
  auto now = etcd.range(read, etcd.default_deadline());
  const std::string value = now && !now->kvs.empty() ? now->kvs.front().value : "";
  std::cout << data_key << " = " << value << '\n';
  const bool fenced = !stale_landed && value == "from B" && b.token() > a.token();
  (void)b.resign();
  return fenced ? 0 : 1;
}
