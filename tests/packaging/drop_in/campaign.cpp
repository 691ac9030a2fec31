// The second translation unit of the drop-in: includes conch_etcd.hpp without
// CONCH_ETCD_IMPLEMENTATION and campaigns for an office through conch::election.
#include <chrono>
#include <conch/conch_etcd.hpp>
#include <iostream>
#include <string>

int campaign_check(conch::etcd_transport& etcd, const std::string& office) {
  using namespace std::chrono_literals;
  conch::session session{etcd, {.ttl = 10s}};
  if (auto r = session.start(); !r) {
    std::cerr << "drop_in: session: " << r.error().message << '\n';
    return 1;
  }
  conch::election election{session, "conch-drop-in/", office};
  conch::election::campaign_options wait;
  wait.timeout = 10s;
  if (auto r = election.campaign("drop-in", wait); !r) {
    std::cerr << "drop_in: campaign: " << r.error().message << '\n';
    return 1;
  }
  const auto token = election.token();
  auto leader = conch::election::leader(etcd, "conch-drop-in/", office);
  if (!leader || !*leader || (*leader)->key != election.key() || (*leader)->value != "drop-in" ||
      token <= 0) {
    std::cerr << "drop_in: the leader etcd names is not us\n";
    return 1;
  }
  if (auto r = election.resign(); !r) {
    std::cerr << "drop_in: resign: " << r.error().message << '\n';
    return 1;
  }
  auto after = conch::election::leader(etcd, "conch-drop-in/", office);
  if (!after || *after) {
    std::cerr << "drop_in: the office is not vacant after resigning\n";
    return 1;
  }
  std::cout << "campaign ok: led " << office << " with token " << token << '\n';
  return 0;
}
