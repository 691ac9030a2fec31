// tests/support/eventually.hpp — await a condition instead of sleeping on hope.
//
//   CHECK(eventually([&] { return log().find("claimed") != npos; }));      // bool
//   auto r = eventually([&] { return etcd.range(req, in(2s)); }, 10s);     // result<T>
//
// Calls `f` until what it returns is true (a bool, or a result that holds a
// value) or `within` passes, and returns the last answer. The bound is a
// deadline for a test that is failing, not a duration anything waits for.
#pragma once

#include <chrono>
#include <thread>

namespace conch::test {

template <class F>
auto eventually(F f, std::chrono::milliseconds within = std::chrono::seconds(15)) {
  const auto until = std::chrono::steady_clock::now() + within;
  for (;;) {
    auto answer = f();
    if (static_cast<bool>(answer) || std::chrono::steady_clock::now() >= until) return answer;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace conch::test
