// conch/logic/stop_union.hpp — one stop token that fires when any of two do.
//
// A recipe waits for several reasons to stop at once (its owner cancelled,
// the session was lost, the recipe itself is shutting down), but a blocking
// wait takes a single std::stop_token. `stop_union` forwards both into one.
//
//   detail::stop_union stop{user_token, session.lost_token()};
//   clock.sleep_until(t, stop.token());
#pragma once

#include <stop_token>
#include <utility>

namespace conch::detail {

class stop_union {
 public:
  stop_union(std::stop_token a, std::stop_token b)
      : a_(std::move(a), forward{source_}), b_(std::move(b), forward{source_}) {}
  stop_union(const stop_union&) = delete;
  stop_union& operator=(const stop_union&) = delete;

  std::stop_token token() const noexcept { return source_.get_token(); }
  bool stop_requested() const noexcept { return source_.stop_requested(); }
  void request_stop() noexcept { source_.request_stop(); }

 private:
  struct forward {
    std::stop_source target;
    void operator()() noexcept { target.request_stop(); }
  };
  std::stop_source source_;  // declared first: the callbacks below refer to it
  std::stop_callback<forward> a_;
  std::stop_callback<forward> b_;
};

}  // namespace conch::detail
