// Compile-only: the backoff policy concept against its archetype.
#include "conch/policies/backoff.hpp"

#include <chrono>

namespace {

/// The least a backoff policy must offer. Declared only: it can never run.
struct backoff_archetype {
  std::chrono::seconds next();
  void reset();
};

struct no_reset {
  std::chrono::milliseconds next();
};

struct not_a_duration {
  int next();
  void reset();
};

struct move_only {
  move_only() = default;
  move_only(move_only&&) = default;
  move_only& operator=(move_only&&) = default;
  std::chrono::milliseconds next();
  void reset();
};

}  // namespace

static_assert(conch::backoff_policy<backoff_archetype>);
static_assert(conch::check_backoff_policy<backoff_archetype>());
static_assert(conch::backoff_policy<conch::exponential_backoff>);
static_assert(conch::backoff_policy<conch::constant_backoff>);
static_assert(conch::backoff_policy<conch::no_backoff>);

static_assert(!conch::backoff_policy<no_reset>);
static_assert(!conch::backoff_policy<not_a_duration>);
static_assert(!conch::backoff_policy<move_only>);  // made fresh per operation by copying
