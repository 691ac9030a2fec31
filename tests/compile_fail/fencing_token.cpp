// expect: conch: a fencing policy needs `result<std::int64_t> token(std::span<const response_op>, revision) const`
#include "conch/policies/fencing.hpp"

struct plain_token {
  std::vector<conch::request_op> acquire_ops(const conch::fence_site&) const;
  std::int64_t token(std::span<const conch::response_op>, conch::revision) const;
  std::vector<conch::compare> guard(const conch::fence&) const;
};
static_assert(conch::check_fencing_policy<plain_token>());
