// conch/detail/cron_lease.hpp — the cron daemon's lease: one session named in
// every claim, replaced when lost, but only once the runs under it are over.
#pragma once

#include "conch/detail/cron_tick.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace conch::detail {

/// The session a cron daemon names in its claims. Runs hold a copy of the
/// shared pointer while their child runs, which is how a replacement knows
/// to wait for them.
template <class Session>
class cron_lease {
 public:
  using session_type = Session;
  using transport_type = typename Session::transport_type;
  using clock_type = typename Session::clock_type;

  /// Every session is built with `session_options` (TTL, backoff prototype)
  /// and `clock` (copies share one time); `say` reports a loss.
  cron_lease(transport_type& t, typename Session::options session_options,
             std::chrono::milliseconds kill_after, clock_type clock,
             std::function<void(cron_event)> say)
      : transport_(t),
        session_options_(std::move(session_options)),
        kill_after_(kill_after),
        clock_(std::move(clock)),
        say_(std::move(say)) {}

  /// The session to name in a claim; a lost one is replaced by a new one,
  /// but only once the runs started under it have ended: the supervisor of
  /// each saw the loss and stopped its group (kill_after bounds the wait).
  /// Claims made under the old lease then read as zombies unless their
  /// result is recorded, which is the truth: their claimer's lease is gone.
  result<std::shared_ptr<Session>> current() {
    std::lock_guard lock{mutex_};
    if (session_ && !session_->lost()) return session_;
    if (session_ && !loss_reported_) {
      say_({.what = cron_event::kind::error,
            .message = "lease lost (" + session_->lost_reason() +
                       "); granting a new one once its runs are stopped"});
      loss_reported_ = true;
    }
    const auto bound = std::chrono::steady_clock::now() + kill_after_ + std::chrono::seconds{2};
    while (session_ && session_.use_count() > 1 && std::chrono::steady_clock::now() < bound)
      (void)cron_pause(std::chrono::milliseconds{10}, {});
    auto fresh = std::make_shared<Session>(transport_, session_options_, clock_);
    if (auto r = fresh->start(); !r) return std::move(r).error();
    session_ = std::move(fresh);
    id_ = session_->lease();
    loss_reported_ = false;
    return session_;
  }

  /// The lease named in claims now (0 before the first current()). Never
  /// blocks, not even while current() waits to replace a lost lease.
  lease_id lease() const { return id_.load(); }
  std::optional<typename Session::time_point> local_deadline() const {
    std::lock_guard lock{mutex_};
    if (!session_) return std::nullopt;
    return session_->local_deadline();
  }

  /// Revokes the lease (the runs under it are over).
  void close() {
    std::shared_ptr<Session> session;
    {
      std::lock_guard lock{mutex_};
      session = std::move(session_);
      id_ = 0;
    }
    if (session) (void)session->close();
  }

 private:
  transport_type& transport_;
  typename Session::options session_options_;
  std::chrono::milliseconds kill_after_;
  [[no_unique_address]] clock_type clock_;
  std::function<void(cron_event)> say_;

  mutable std::mutex mutex_;
  std::shared_ptr<Session> session_;
  std::atomic<lease_id> id_{0};  ///< session_'s lease, readable without the lock
  bool loss_reported_ = false;
};

}  // namespace conch::detail
