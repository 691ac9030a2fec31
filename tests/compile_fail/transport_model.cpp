// expect: conch: Policies::transport must model conch::transport
#include "conch/policies/default_policies.hpp"

struct not_a_transport {};
static_assert(conch::check_transport_policy<not_a_transport>());
