// expect: conch: a fencing policy needs `std::vector<compare> guard(const fence&) const`
#include "conch/policies/fencing.hpp"

struct no_guard {
  std::vector<conch::request_op> acquire_ops(const conch::fence_site&) const;
  conch::result<std::int64_t> token(std::span<const conch::response_op>, conch::revision) const;
};
static_assert(conch::check_fencing_policy<no_guard>());
