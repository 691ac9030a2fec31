// conch/detail/start_thread.hpp — a thread the system may refuse. Creating a
// std::thread throws std::system_error when the system is out of threads (a
// process or user limit, memory); an uncaught one ends the whole process.
// Every long-lived thread in the recipes is made here, so the refusal is an
// error value its owner reports and recovers from.
#pragma once

#include "conch/result.hpp"

#include <exception>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace conch::detail {

/// A std::jthread running `f` (given a std::stop_token when it takes one),
/// or `errc::unavailable` naming why the system refused it.
template <class F>
result<std::jthread> start_thread(F&& f) {
  try {
    return std::jthread(std::forward<F>(f));
  } catch (const std::system_error& e) {
    return error{errc::unavailable, std::string("no thread: ") + e.what()};
  }
}

/// A thread running `f` (see start_thread), started again after each
/// `pause()` while the system refuses it, each refusal told to `say`; an
/// empty one once `pause()` returns false.
template <class F, class Pause, class Say>
std::jthread keep_starting(F f, Pause pause, Say say) {
  for (;;) {
    auto t = start_thread(f);
    if (t) return std::move(*t);
    say(t.error().message + "; again");
    if (!pause()) return {};
  }
}

/// Runs `body` until it returns; what escapes it (resources ran out) is
/// told to `say`, and `body` runs again after `pause()` (unless false).
template <class F, class Pause, class Say>
void run_guarded(F&& body, Pause pause, Say say) {
  for (;;) {
    try {
      body();
      return;
    } catch (const std::exception& e) {
      say(std::string(e.what()) + "; again");
    }
    if (!pause()) return;
  }
}

}  // namespace conch::detail
