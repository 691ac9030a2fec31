// conch/fwd.hpp — every conch recipe template, declared with its default
// policy bundle, and the friendly aliases.
//
//   conch::election e{session, "conch/", "web"};         // basic_election<default_policies>
//   struct my_policies : conch::default_policies { using backoff = conch::no_backoff; };
//   conch::basic_election<my_policies> quick{session, "conch/", "web"};
//
// The defaults live here and only here: a recipe header includes this file
// and defines its template without repeating `= default_policies`. Nothing
// here needs gRPC; `etcd_transport` is only named (policies/etcd_transport.hpp
// defines it, and is needed only where a recipe actually talks to etcd).
#pragma once

namespace conch {

class etcd_transport;
struct default_policies;

template <class Policies = default_policies>
class basic_session;
template <class Policies = default_policies>
class basic_election;
template <class Policies = default_policies>
class basic_semaphore;
template <class Policies = default_policies>
class basic_cron;

using session = basic_session<>;
using election = basic_election<>;
using semaphore = basic_semaphore<>;
using cron = basic_cron<>;

}  // namespace conch
