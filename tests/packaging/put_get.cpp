// A program outside the conch tree: one put and one get through
// conch::etcd_transport against the etcd named on the command line.
//   put_get 127.0.0.1:2379   -> "put/get ok at revision N", exit 0
#ifdef CONCH_PACKAGING_SINGLE_HEADER
#define CONCH_ETCD_IMPLEMENTATION  // the generated etcd protobuf code is compiled here
#include <conch/conch_etcd.hpp>    // alone, from single_include/
#else
#include <conch/etcd/transport.hpp>
#endif

#include <iostream>
#include <string>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: put_get HOST:PORT\n";
    return 64;
  }
  conch::transport_options options;
  options.endpoints = {argv[1]};
  conch::etcd_transport etcd{options};

  const std::string key = "conch-packaging/" + std::to_string(::getpid());
  conch::put_request put;
  put.key = key;
  put.value = "hello";
  auto written = etcd.put(put, etcd.default_deadline());
  if (!written) {
    std::cerr << "put_get: put failed: " << written.error().message << '\n';
    return 1;
  }
  conch::range_request get;
  get.key = key;
  auto read = etcd.range(get, etcd.default_deadline());
  if (!read) {
    std::cerr << "put_get: get failed: " << read.error().message << '\n';
    return 1;
  }
  if (read->kvs.size() != 1 || read->kvs[0].value != "hello" ||
      read->kvs[0].create_revision != written->header_revision) {
    std::cerr << "put_get: read back something else than was written\n";
    return 1;
  }
  std::cout << "put/get ok at revision " << written->header_revision << '\n';
  return 0;
}
