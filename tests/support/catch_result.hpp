// tests/support/catch_result.hpp — a failed Catch check on a conch::result
// shows its error ("timed_out: 127.0.0.1:2379: deadline passed"), or "ok".
//
//   #include "support/catch_result.hpp"
//   CHECK(session.start());  // on failure: the error's code and message
#pragma once

#include "conch/result.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace Catch {
template <class T>
struct StringMaker<conch::result<T>> {
  static std::string convert(const conch::result<T>& r) {
    return r ? std::string("ok")
             : std::string(conch::to_string(r.error().code)) + ": " + r.error().message;
  }
};
}  // namespace Catch
