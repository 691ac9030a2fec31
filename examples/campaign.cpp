// examples/campaign.cpp — a host application campaigning for leadership.
//
// Joins the election for office "example", waits its turn, does its leader's
// work (here: two seconds, cut short if the session is lost), then resigns so
// the next contender leads at once rather than after the lease's TTL.
//
//   example_campaign [ENDPOINT]        # default 127.0.0.1:2379
#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/tool/holder.hpp"

#include <chrono>
#include <iostream>
#include <string>
#include <unistd.h>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  conch::transport_options where;
  if (argc > 1) where.endpoints = {argv[1]};
  conch::etcd_transport etcd{where};

  conch::session session{etcd, {.ttl = 10s}};
  if (auto r = session.start(); !r) {
    std::cerr << "example_campaign: " << r.error().message << '\n';
    return 69;
  }

  // The value is our holder record: `conch elect example --who` and
  // `etcdctl elect -l conch/elect/example` show who we are.
  conch::election office{session, "conch/", "example"};
  const std::string record = conch::tool::holder_json("example", session.lease(), {argv[0]});
  if (auto r = office.campaign(record, {.timeout = 30s}); !r) {
    std::cerr << "example_campaign: " << r.error().message << '\n';
    return r.error().code == conch::errc::lost ? 70 : 75;
  }
  std::cout << "leading " << office.name() << " as " << office.key() << ", token " << office.token()
            << '\n';

  // The leader's work. Whatever it does, it stops when the session is lost:
  // from then on another contender may lead.
  auto& clock = session.clock();
  clock.sleep_until(clock.now() + 2s, session.lost_token());
  if (session.lost()) {
    std::cerr << "example_campaign: lost the office: " << session.lost_reason() << '\n';
    return 70;
  }

  if (auto r = office.resign(); !r) {
    std::cerr << "example_campaign: resign: " << r.error().message << '\n';
    return 1;
  }
  std::cout << "resigned\n";
  return 0;
}
