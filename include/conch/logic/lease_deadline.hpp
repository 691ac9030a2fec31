// conch/logic/lease_deadline.hpp — when to renew a lease, and when to stop
// believing we still hold it. Pure: time is passed in, on any clock.
//
// etcd expires a lease TTL after the last renewal it *received*. We cannot
// see that instant, but the request that renewed it left us earlier, so
//
//   local deadline = send time of the last acknowledged keepalive + TTL − margin
//
// is never later than the server's expiry, whatever the network delay or the
// time the answer took to come back. The margin absorbs clock-rate drift
// between us and the server and leaves room to stop the child before etcd
// hands the office to someone else: max(TTL/10, 500 ms), at most TTL/2
// (so a 1 s lease still leaves half a second of holding).
//
// Keepalives go out every TTL/3 after the last send, so two can be lost
// before the deadline comes near.
//
//   lease_deadline<steady_clock_policy> lease{sent_grant_at, granted_ttl};
//   lease.sent(clock.now());            // each keepalive request
//   lease.acknowledged(ttl_from_reply);   // each answer, in order
//   if (lease.lost(clock.now())) kill_child();
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>

namespace conch::detail {

inline std::chrono::milliseconds keepalive_interval(std::chrono::seconds ttl) {
  return std::max(std::chrono::milliseconds{1},
                  std::chrono::duration_cast<std::chrono::milliseconds>(ttl) / 3);
}

inline std::chrono::milliseconds default_margin(std::chrono::seconds ttl) {
  const auto ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ttl);
  return std::min(std::max(ttl_ms / 10, std::chrono::milliseconds{500}), ttl_ms / 2);
}

template <class Clock>
class lease_deadline {
 public:
  using time_point = typename Clock::time_point;
  using duration = typename Clock::duration;

  /// How many unanswered keepalives we remember. Past that, a send is not
  /// recorded: its answer is then credited to an earlier send, which only
  /// moves the deadline earlier — the safe direction.
  static constexpr std::size_t max_in_flight = 64;

  /// The lease was granted with `ttl` in answer to a request sent at `grant_sent`.
  lease_deadline(time_point grant_sent, std::chrono::seconds ttl)
      : lease_deadline(grant_sent, ttl, default_margin(ttl)) {}
  lease_deadline(time_point grant_sent, std::chrono::seconds ttl, std::chrono::milliseconds margin)
      : ttl_(ttl),
        margin_(margin),
        last_sent_(grant_sent),
        acked_sent_(grant_sent),
        gone_(ttl <= ttl.zero()) {}

  /// A keepalive request left at `t`.
  void sent(time_point t) {
    last_sent_ = t;
    if (in_flight_.size() < max_in_flight) in_flight_.push_back(t);
  }

  /// The oldest unanswered keepalive was answered with `ttl` (etcd answers in
  /// order). A TTL of zero or less means the lease no longer exists.
  void acknowledged(std::chrono::seconds ttl) {
    if (ttl <= ttl.zero()) {
      gone_ = true;
      return;
    }
    if (in_flight_.empty()) return;  // an answer we did not ask for proves nothing
    acked_sent_ = std::max(acked_sent_, in_flight_.front());
    in_flight_.pop_front();
    ttl_ = ttl;
  }

  /// The keepalive sent at `sent` was answered with `ttl`, whatever came
  /// before it (several streams may be in flight at once). Earlier
  /// unanswered sends are forgotten: an answer is never credited to a send
  /// later than its own.
  void acknowledged_at(time_point sent, std::chrono::seconds ttl) {
    if (ttl <= ttl.zero()) {
      gone_ = true;
      return;
    }
    while (!in_flight_.empty() && in_flight_.front() <= sent) in_flight_.pop_front();
    if (sent < acked_sent_) return;  // a later answer already counted
    acked_sent_ = sent;
    ttl_ = ttl;
  }

  /// A broken keepalive stream never answers what was sent on it: forget
  /// those sends, so an answer on the next stream is not credited to them.
  void forget_in_flight() { in_flight_.clear(); }

  /// When the next keepalive is due: TTL/3 after the last send.
  time_point next_keepalive() const { return last_sent_ + cast(keepalive_interval(ttl_)); }

  /// The last instant at which we may still believe we hold the lease.
  time_point deadline() const { return acked_sent_ + cast(ttl_) - cast(margin_); }

  /// Whether the lease must be presumed lost at `now`.
  bool lost(time_point now) const { return gone_ || now >= deadline(); }

  /// Whether etcd said the lease no longer exists.
  bool gone() const { return gone_; }

  /// The send time of the last acknowledged keepalive (or of the grant).
  time_point acknowledged_send() const { return acked_sent_; }
  std::chrono::seconds ttl() const { return ttl_; }
  std::chrono::milliseconds margin() const { return margin_; }
  std::size_t in_flight() const { return in_flight_.size(); }

 private:
  template <class D>
  static duration cast(D d) {
    return std::chrono::duration_cast<duration>(d);
  }

  std::chrono::seconds ttl_;
  std::chrono::milliseconds margin_;
  time_point last_sent_;
  time_point acked_sent_;
  std::deque<time_point> in_flight_;
  bool gone_;
};

}  // namespace conch::detail
