// expect: conch: a fencing policy must be a default-constructible, copyable value
#include "conch/policies/fencing.hpp"

struct needs_argument {
  explicit needs_argument(int);
  std::vector<conch::request_op> acquire_ops(const conch::fence_site&) const;
  conch::result<std::int64_t> token(std::span<const conch::response_op>, conch::revision) const;
  std::vector<conch::compare> guard(const conch::fence&) const;
};
static_assert(conch::check_fencing_policy<needs_argument>());
