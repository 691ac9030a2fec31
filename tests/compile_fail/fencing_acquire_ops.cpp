// expect: conch: a fencing policy needs `std::vector<request_op> acquire_ops(const fence_site&) const`
#include "conch/policies/fencing.hpp"

struct no_acquire_ops {
  conch::result<std::int64_t> token(std::span<const conch::response_op>, conch::revision) const;
  std::vector<conch::compare> guard(const conch::fence&) const;
};
static_assert(conch::check_fencing_policy<no_acquire_ops>());
