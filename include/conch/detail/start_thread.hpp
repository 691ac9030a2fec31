// conch/detail/start_thread.hpp — a thread the system may refuse. Creating a
// std::thread throws std::system_error when the system is out of threads (a
// process or user limit, memory); an uncaught one ends the whole process.
// Every long-lived thread in the recipes is made here, so the refusal is an
// error value its owner reports and recovers from.
#pragma once

#include "conch/result.hpp"

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

}  // namespace conch::detail
