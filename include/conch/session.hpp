// conch/session.hpp — a lease kept alive, and a loud "lost" when it cannot be.
//
// A session grants one etcd lease and renews it every TTL/3 from a thread it
// owns. It tracks a *local deadline* — the send time of the last acknowledged
// keepalive + granted TTL − margin, on the policy's monotonic clock — and
// declares itself lost on the first of:
//   - a keepalive answered "lease gone" (TTL 0 / lease not found),
//   - a DELETE of a guarded key seen on a watch (e.g. `etcdctl lease revoke`
//     deletes the keys attached to the lease: seen within one event delivery),
//   - the local deadline passing (etcd unreachable: lost *before* the server
//     could expire the lease, so whoever holds something stops first).
// Transient failures before the deadline are retried, never reported as lost.
//
//   conch::session s{transport, {.ttl = std::chrono::seconds{10}}};
//   if (auto r = s.start(); !r) return fail(r.error());
//   std::stop_callback on_lost{s.lost_token(), [&] { stop_the_work(); }};
//
// Callbacks on lost_token() run on a session thread: keep them short and never
// close or destroy the session from one. The destructor closes (revokes the
// lease) with a bounded deadline; it never hangs.
#pragma once

#include "conch/logic/hex.hpp"
#include "conch/logic/lease_deadline.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/fwd.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>

namespace conch {

template <class P>
class basic_session {
  static_assert(check_policy_bundle<P>());
  static_assert(check_monotonic_clock_policy<typename P::clock>());

 public:
  using policies = P;
  using transport_type = typename P::transport;
  using clock_type = typename P::clock;
  using time_point = typename clock_type::time_point;

  struct options {
    std::chrono::seconds ttl{10};
    /// Subtracted from the granted TTL for the local deadline; defaults to a
    /// small fraction of the TTL.
    std::optional<std::chrono::milliseconds> margin{};
  };

  explicit basic_session(transport_type& t, options o = {}, clock_type c = {})
      : transport_(t), options_(o), clock_(std::move(c)) {
    static_assert(check_transport_policy<transport_type>());
  }
  basic_session(const basic_session&) = delete;
  basic_session& operator=(const basic_session&) = delete;
  ~basic_session() { (void)close(); }

  /// Grants the lease and starts renewing it.
  result<void> start() {
    if (options_.ttl <= std::chrono::seconds{0})
      return error{errc::invalid_argument, "session ttl must be positive, got " +
                                               std::to_string(options_.ttl.count()) + "s"};
    if (margin() >= options_.ttl)
      return error{errc::invalid_argument, "session margin (" + std::to_string(margin().count()) +
                                               "ms) must be shorter than the ttl"};
    std::lock_guard lock{mutex_};
    if (lease_ != 0 || closed_) return error{errc::failed_precondition, "session already started"};
    const time_point sent = clock_.now();
    auto granted = transport_.lease_grant(options_.ttl.count(), transport_.default_deadline());
    if (!granted) return std::move(granted).error();
    lease_ = granted->id;
    const std::chrono::seconds ttl{granted->ttl > 0 ? granted->ttl : options_.ttl.count()};
    deadline_.emplace(sent, ttl, margin());
    keepalive_ = std::jthread([this] { keep_alive(); });
    return {};
  }

  lease_id lease() const {
    std::lock_guard lock{mutex_};
    return lease_;
  }
  /// The TTL etcd granted (may exceed the requested one).
  std::chrono::seconds ttl() const {
    std::lock_guard lock{mutex_};
    return deadline_ ? deadline_->ttl() : std::chrono::seconds{0};
  }
  std::chrono::milliseconds margin() const {
    return options_.margin ? *options_.margin : detail::default_margin(options_.ttl);
  }

  bool lost() const noexcept { return lost_.stop_requested(); }
  /// Stop is requested on this token when the session is lost (never by close()).
  std::stop_token lost_token() const noexcept { return lost_.get_token(); }
  std::string lost_reason() const {
    std::lock_guard lock{mutex_};
    return lost_reason_;
  }
  /// Moves forward with each acknowledged keepalive; the session is lost when
  /// it passes unrenewed.
  time_point local_deadline() const {
    std::lock_guard lock{mutex_};
    return deadline_ ? deadline_->deadline() : time_point{};
  }

  /// Calls `f` with the new local deadline each time an acknowledged keepalive
  /// moves it, on the keepalive thread (a watchdog renewed at once). Set it
  /// before the deadline matters; `f` must not call back into the session.
  void on_deadline_moved(std::function<void(time_point)> f) {
    std::lock_guard lock{mutex_};
    deadline_moved_ = std::move(f);
  }

  /// Declares the session lost if `key` is deleted (or replaced) from now on.
  /// `create_revision`, when known, also catches a delete + re-create that
  /// happened before the guard's watch started. `seen_at`, when known, is a
  /// revision at which the key was seen alive with that create_revision: the
  /// watch then starts right after it, without reading the key first.
  void guard_key(std::string key, revision create_revision = 0, revision seen_at = 0) {
    std::lock_guard lock{mutex_};
    if (closed_ || guards_.contains(key)) return;
    if (create_revision == 0) seen_at = 0;
    auto& slot = guards_[key];
    slot = std::jthread([this, key, create_revision, seen_at](std::stop_token own) {
      guard(key, create_revision, seen_at, std::move(own));
    });
  }
  /// Stops guarding `key` and waits until its watch is gone, so a delete
  /// issued after this returns (a resign) is never taken for a loss.
  void unguard_key(const std::string& key) {
    std::jthread finished;
    {
      std::lock_guard lock{mutex_};
      auto it = guards_.find(key);
      if (it == guards_.end()) return;
      finished = std::move(it->second);
      guards_.erase(it);
    }
  }  // `finished` stops and joins here, outside the lock

  /// Reserves `key` for one user of this session (an election's candidate
  /// key): false if another user already holds it. Two recipes sharing one
  /// lease and one key would silently share leadership otherwise.
  bool claim(const std::string& key) {
    std::lock_guard lock{mutex_};
    return claims_.insert(key).second;
  }
  void unclaim(const std::string& key) {
    std::lock_guard lock{mutex_};
    claims_.erase(key);
  }

  /// Stops renewing and revokes the lease (deleting every key attached to
  /// it). Idempotent. Never marks the session lost.
  result<void> close() {
    halt_.request_stop();
    std::jthread keepalive;
    std::map<std::string, std::jthread> guards;
    lease_id lease = 0;
    {
      std::lock_guard lock{mutex_};
      keepalive = std::move(keepalive_);
      guards = std::move(guards_);
      guards_.clear();
      if (!closed_) lease = lease_;
      closed_ = true;
    }
    if (keepalive.joinable()) keepalive.join();
    guards.clear();  // joins
    if (lease == 0) return {};
    // A lost session's lease is gone or unreachable: do not wait long for it.
    const deadline d = lost() ? std::chrono::steady_clock::now() + std::chrono::milliseconds{500}
                              : transport_.default_deadline();
    auto r = transport_.lease_revoke(lease, d);
    if (!r && r.error().code != errc::lease_not_found) return r;
    return {};
  }

  transport_type& transport() noexcept { return transport_; }
  clock_type& clock() noexcept { return clock_; }

 private:
  using backoff_type = typename P::backoff;

  using lease_deadline = detail::lease_deadline<clock_type>;

  /// The real-time deadline for a transport call that must return by `local`.
  deadline real_deadline(time_point local) {
    auto left = local - clock_.now();
    if (left < decltype(left)::zero()) left = decltype(left)::zero();
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
  }

  void lose(std::string reason) {
    {
      std::lock_guard lock{mutex_};
      if (lost_.stop_requested() || closed_) return;
      lost_reason_ = std::move(reason);
    }
    lost_.request_stop();  // runs the owner's callbacks: not under our lock
    halt_.request_stop();
  }

  std::string lease_hex() const { return detail::lease_hex(lease_); }

  // The keepalive thread: one renewal every TTL/3 (detail::lease_deadline
  // decides when to send and when the lease must be presumed lost), quicker
  // retries after a failure. One request is in flight at a time, on a stream
  // that is replaced after any failure, so each answer is paired with the
  // send time of its own request.
  void keep_alive() {
    using duration = typename clock_type::duration;
    const std::stop_token halt = halt_.get_token();
    using stream_type = decltype(transport_.keepalive(lease_id{}));
    std::unique_ptr<stream_type> stream;
    backoff_type retry{};
    std::optional<time_point> retry_at;  // set after a failure
    while (!halt.stop_requested()) {
      time_point due, wake;
      {
        std::lock_guard lock{mutex_};
        due = deadline_->deadline();
        wake = std::min(retry_at.value_or(deadline_->next_keepalive()), due);
      }
      if (!clock_.sleep_until(wake, halt)) return;
      if (clock_.now() >= due) {
        lose("lease " + lease_hex() +
             ": local deadline passed with no keepalive acknowledged in time (etcd unreachable?)");
        return;
      }
      if (!stream) stream = std::make_unique<stream_type>(transport_.keepalive(lease_));
      const time_point sent = clock_.now();
      result<std::int64_t> answer = error{errc::unavailable, "keepalive not sent"};
      {
        stream_type* live = stream.get();
        std::stop_callback cancel{halt,
                                  [live] { live->cancel(); }};  // gone before the stream may be
        if (auto s = live->send(); !s) {
          answer = std::move(s).error();
        } else {
          {
            std::lock_guard lock{mutex_};
            deadline_->sent(sent);
          }
          answer = live->next(real_deadline(due));
        }
      }
      if (answer) {
        bool gone = false;
        std::function<void(time_point)> moved;
        time_point now_due{};
        {
          std::lock_guard lock{mutex_};
          deadline_->acknowledged(std::chrono::seconds{*answer});
          gone = deadline_->gone();
          moved = deadline_moved_;
          now_due = deadline_->deadline();
        }
        if (gone) return lose("lease " + lease_hex() + " expired or was revoked");
        if (moved && now_due != due) moved(now_due);
        retry_at.reset();
        retry.reset();
        continue;
      }
      if (answer.error().code == errc::lease_not_found)
        return lose("lease " + lease_hex() + " expired or was revoked");
      if (halt.stop_requested()) return;
      // The broken stream will never answer what it was sent: drop it, and
      // forget those sends so a later answer is not credited to them.
      stream.reset();
      {
        std::lock_guard lock{mutex_};
        forget_unanswered(*deadline_);
        const auto interval =
            std::chrono::duration_cast<duration>(detail::keepalive_interval(deadline_->ttl()));
        retry_at =
            clock_.now() + std::min(std::chrono::duration_cast<duration>(retry.next()), interval);
      }
    }
  }

  // Rebuilds `d` without its unanswered sends (same acknowledged send, TTL, margin).
  static void forget_unanswered(lease_deadline& d) {
    using duration = typename clock_type::duration;
    const time_point acked_sent = d.deadline() - std::chrono::duration_cast<duration>(d.ttl()) +
                                  std::chrono::duration_cast<duration>(d.margin());
    d = lease_deadline(acked_sent, d.ttl(), d.margin());
  }

  // A guard thread: watches one key for its DELETE.
  void guard(const std::string& key, revision create_revision, revision seen_at,
             std::stop_token own) {
    detail::stop_union stop{std::move(own), halt_.get_token()};
    backoff_type retry{};
    revision from = seen_at > 0 ? seen_at + 1 : 0;  // 0: (re)read the key before watching
    auto pause = [&] { return clock_.sleep_until(clock_.now() + retry.next(), stop.token()); };
    while (!stop.stop_requested()) {
      if (from == 0) {
        range_request read;
        read.key = key;
        auto r = transport_.range(read, transport_.default_deadline());
        if (!r) {
          if (!pause()) return;
          continue;
        }
        if (r->kvs.empty()) return lose("guarded key " + key + " is gone");
        if (create_revision != 0 && r->kvs.front().create_revision != create_revision)
          return lose("guarded key " + key + " was deleted and re-created");
        create_revision = r->kvs.front().create_revision;
        from = r->header_revision + 1;
      }
      watch_request w;
      w.key = key;
      w.start_revision = from;
      w.no_put = true;
      auto stream = transport_.watch(w);
      std::stop_callback cancel{stop.token(), [&] { stream.cancel(); }};
      for (;;) {
        auto batch = stream.next(std::chrono::steady_clock::now() + std::chrono::minutes{10});
        if (batch) {
          for (const auto& e : batch->events)
            if (e.type == watch_event::kind::del)
              return lose("guarded key " + key + " was deleted at revision " +
                          std::to_string(e.kv.mod_revision) + " (lease revoked or key removed)");
          from = std::max(from, batch->header_revision + 1);
          retry.reset();
          continue;
        }
        const errc why = batch.error().code;
        if (why == errc::timed_out) continue;
        if (stop.stop_requested()) return;
        if (why == errc::compacted)
          from = 0;  // the gap is unreadable: re-check the key itself
        else if (!pause())
          return;
        break;
      }
    }
  }

  transport_type& transport_;
  const options options_;
  [[no_unique_address]] clock_type clock_;

  mutable std::mutex mutex_;
  lease_id lease_ = 0;
  std::optional<lease_deadline> deadline_;  // set by start()
  std::string lost_reason_;
  std::function<void(time_point)> deadline_moved_;
  bool closed_ = false;
  std::set<std::string> claims_;

  std::stop_source lost_;  // requested when lost: the owner's signal
  std::stop_source halt_;  // requested when lost or closing: our threads' signal
  std::map<std::string, std::jthread> guards_;
  std::jthread keepalive_;
};

}  // namespace conch
