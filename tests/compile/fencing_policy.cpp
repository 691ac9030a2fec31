// Compile-only: the fencing policy concept against its archetype.
#include "conch/policies/fencing.hpp"

namespace {

/// The least a fencing policy must offer. Declared only: it can never run.
struct fencing_archetype {
  std::vector<conch::request_op> acquire_ops(const conch::fence_site&) const;
  conch::result<std::int64_t> token(std::span<const conch::response_op>, conch::revision) const;
  std::vector<conch::compare> guard(const conch::fence&) const;
};

struct no_guard {
  std::vector<conch::request_op> acquire_ops(const conch::fence_site&) const;
  conch::result<std::int64_t> token(std::span<const conch::response_op>, conch::revision) const;
};

struct plain_token {  // a token that cannot report failure
  std::vector<conch::request_op> acquire_ops(const conch::fence_site&) const;
  std::int64_t token(std::span<const conch::response_op>, conch::revision) const;
  std::vector<conch::compare> guard(const conch::fence&) const;
};

}  // namespace

static_assert(conch::fencing_policy<fencing_archetype>);
static_assert(conch::check_fencing_policy<fencing_archetype>());
static_assert(conch::fencing_policy<conch::revision_fencing>);
static_assert(conch::fencing_policy<conch::counter_fencing>);
static_assert(conch::fencing_policy<conch::no_fencing>);

static_assert(!conch::fencing_policy<no_guard>);
static_assert(!conch::fencing_policy<plain_token>);
