// CONCH_FUZZ_CHECK(cond): a fuzz target's invariant. Unlike assert() it is
// never compiled out (fuzz builds use NDEBUG too), and it aborts with the
// failed condition so libFuzzer records the input as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>

#define CONCH_FUZZ_CHECK(cond)                                                           \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
