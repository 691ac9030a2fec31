// conch/etcd.hpp — conch::etcd_transport, the etcd v3 transport over gRPC.
// Target conch::etcd. Everything that includes gRPC or the generated protos
// lives under conch/etcd/; this header is its one public door.
//
//   conch::etcd_transport t{conch::transport_options{.endpoints = {"127.0.0.1:2379"}}};
//   conch::session s{t, {.ttl = std::chrono::seconds{10}}};
#pragma once

#include "conch/etcd/transport.hpp"  // IWYU pragma: export
