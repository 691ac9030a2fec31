// The single-header drop-in, built as its users build it: this file defines
// CONCH_ETCD_IMPLEMENTATION (so the generated protobuf and gRPC code is
// compiled here, once); campaign.cpp includes the same header plainly.
//   drop_in HOST:PORT   -> "put/get ok ...", "campaign ok ...", exit 0
#define CONCH_ETCD_IMPLEMENTATION
#include <conch/conch_etcd.hpp>
#include <iostream>
#include <string>
#include <unistd.h>

int campaign_check(conch::etcd_transport& etcd, const std::string& office);  // campaign.cpp

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: drop_in HOST:PORT\n";
    return 64;
  }
  conch::transport_options options;
  options.endpoints = {argv[1]};
  conch::etcd_transport etcd{options};

  const std::string key = "conch-drop-in/" + std::to_string(::getpid());
  conch::put_request put;
  put.key = key;
  put.value = "hello";
  auto written = etcd.put(put, etcd.default_deadline());
  if (!written) {
    std::cerr << "drop_in: put failed: " << written.error().message << '\n';
    return 1;
  }
  conch::range_request get;
  get.key = key;
  auto read = etcd.range(get, etcd.default_deadline());
  if (!read || read->kvs.size() != 1 || read->kvs[0].value != "hello") {
    std::cerr << "drop_in: did not read back what was written\n";
    return 1;
  }
  std::cout << "put/get ok at revision " << written->header_revision << '\n';
  return campaign_check(etcd, "drop-in-" + std::to_string(::getpid()));
}
