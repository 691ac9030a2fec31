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
//     could expire the lease, so whoever holds something stops first) — or,
//     with options::ride_through, that much later: holders still stop their
//     work at the local deadline, and resume if an answer moves it ahead.
// Transient failures before the deadline are retried, never reported as lost.
//
// start_early() sends the grant without waiting for it (a lease id chosen
// here), so a holder's first write overlaps the grant's round trip.
//
//   conch::session s{transport, {.ttl = std::chrono::seconds{10}}};
//   if (auto r = s.start(); !r) return fail(r.error());
//   std::stop_callback on_lost{s.lost_token(), [&] { stop_the_work(); }};
//
// Callbacks on lost_token() run on a session thread: keep them short and never
// close or destroy the session from one. The destructor closes (revokes the
// lease) with a bounded deadline; it never hangs.
#pragma once

#include "conch/detail/guard_set.hpp"
#include "conch/detail/start_thread.hpp"
#include "conch/detail/waiting.hpp"
#include "conch/fwd.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/lease_deadline.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <iterator>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace conch {
namespace detail {
/// A lease id for a grant that names its own: random, positive, never 0
/// (etcd refuses an id already in use, and the grant then fails).
inline lease_id random_lease_id() {
  std::random_device entropy;
  std::uint64_t id = (std::uint64_t{entropy()} << 32) ^ entropy();
  id &= std::uint64_t{INT64_MAX};
  return id == 0 ? 1 : static_cast<lease_id>(id);
}
}  // namespace detail

template <class P>
class basic_session {
  static_assert(check_policy_bundle<P>());
  static_assert(check_monotonic_clock_policy<typename P::clock>());

 public:
  using policies = P;
  using transport_type = typename P::transport;
  using clock_type = typename P::clock;
  using time_point = typename clock_type::time_point;
  using backoff_type = typename P::backoff;

  struct options {
    std::chrono::seconds ttl{10};
    /// Subtracted from the granted TTL for the local deadline; defaults to a
    /// small fraction of the TTL.
    std::optional<std::chrono::milliseconds> margin{};
    /// Paces retries (keepalives after a failure, guard re-reads) and is the
    /// default of the recipes on this session; each operation copies it.
    backoff_type backoff{};
    /// How long renewals go on after the local deadline has passed before the
    /// session is declared lost. Whoever holds something must stop its work
    /// at the local deadline all the same; an answer that comes within this
    /// time proves the lease alive, moves the deadline forward again, and the
    /// holder may resume (an etcd election longer than the TTL allows need not
    /// cost the lease: a new etcd leader extends every lease it takes over).
    /// 0: lost at the local deadline.
    std::chrono::milliseconds ride_through{0};
    /// How long after guard_key() the key's watch is created, where the
    /// transport carries watch sets (conch::watch_sets). The watch starts
    /// from the revision the key was seen at, so a delete meanwhile is still
    /// caught, only later: up to twice this (the session's one watching
    /// thread wakes at most once per delay). A key held for less than this
    /// (an acquire+release cycle) never costs etcd a watch. 0: at once.
    std::chrono::milliseconds guard_delay{10};
  };

  explicit basic_session(transport_type& t, options o = {}, clock_type c = {})
      : transport_(t),
        options_(o),
        clock_(std::move(c)),
        guard_set_(transport_, clock_, options_.backoff, options_.guard_delay, halt_.get_token(),
                   [this](std::string why) { lose(std::move(why)); }) {
    static_assert(check_transport_policy<transport_type>());
  }
  basic_session(const basic_session&) = delete;
  basic_session& operator=(const basic_session&) = delete;
  ~basic_session() { (void)close(); }

  /// Grants the lease and starts renewing it.
  result<void> start() {
    if (auto bad = check_options(); !bad) return bad;
    std::lock_guard lock{mutex_};
    if (lease_ != 0 || closed_) return error{errc::failed_precondition, "session already started"};
    const time_point sent = clock_.now();
    auto granted = transport_.lease_grant(options_.ttl.count(), transport_.default_deadline());
    if (!granted) return std::move(granted).error();
    lease_ = granted->id;
    const std::chrono::seconds ttl{granted->ttl > 0 ? granted->ttl : options_.ttl.count()};
    deadline_.emplace(sent, ttl, margin());
    // Refused (out of threads): the lease stays ours, so close() revokes it.
    auto keepalive =
        detail::start_thread([this] { loses_on_throw("keepalive", [&] { keep_alive(); }); });
    if (!keepalive)
      return error{errc::unavailable, "session keepalive: " + keepalive.error().message};
    keepalive_ = std::move(*keepalive);
    return {};
  }

  /// Like start(), without waiting for etcd's answer: the lease id is chosen
  /// here (random, 63 bits), the grant is sent from the keepalive thread, and
  /// this returns as soon as it is on its way, so the first write attached to
  /// the lease overlaps the grant's round trip. A write that reaches etcd
  /// before the grant fails with errc::lease_not_found, atomically (a recipe
  /// reports it as errc::lost): once granted() succeeds, such a failed first
  /// step may simply be taken again. A grant that fails loses the session
  /// (granted() says why). The local deadline counts from before the grant
  /// was sent, as with start(). A transport that cannot grant a chosen id
  /// makes this start().
  result<void> start_early() {
    if constexpr (!requires(transport_type & t, lease_id id, const std::function<void()>& f) {
                    t.lease_grant(std::int64_t{}, id, t.default_deadline(), f);
                  }) {
      return start();
    } else {
      if (auto bad = check_options(); !bad) return bad;
      std::shared_ptr<std::latch> sending = std::make_shared<std::latch>(1);
      {
        std::lock_guard lock{mutex_};
        if (lease_ != 0 || closed_)
          return error{errc::failed_precondition, "session already started"};
        lease_ = detail::random_lease_id();
        const time_point sent = clock_.now();  // no later than the grant's send
        deadline_.emplace(sent, options_.ttl, margin());
        grant_pending_ = true;
        auto keepalive = detail::start_thread([this, sending, sent] {
          loses_on_throw("keepalive", [&] {
            if (grant_chosen(*sending, sent)) keep_alive();
          });
        });
        if (!keepalive) {
          lease_ = 0;  // never sent
          deadline_.reset();
          grant_pending_ = false;
          return error{errc::unavailable, "session keepalive: " + keepalive.error().message};
        }
        keepalive_ = std::move(*keepalive);
      }
      sending->wait();
      return {};
    }
  }

  /// Waits for the lease grant's answer: success once etcd has granted the
  /// lease (at once after start()), else why the grant failed.
  result<void> granted() const {
    std::unique_lock lock{mutex_};
    granted_cv_.wait(lock, [this] { return !grant_pending_; });
    if (grant_failure_) return *grant_failure_;
    if (lease_ == 0) return error{errc::failed_precondition, "session not started"};
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
  /// Where the transport carries watch sets, every guarded key of the
  /// session is one watch of one set, created options::guard_delay from now;
  /// else each key has a thread and a stream of its own.
  /// A guard the system refuses a thread for loses the session: the key
  /// cannot be watched, so holding on to it would be a guess.
  void guard_key(std::string key, revision create_revision = 0, revision seen_at = 0) {
    if constexpr (watch_sets<transport_type>) {
      {
        std::lock_guard lock{mutex_};
        if (closed_) return;
      }
      if (auto r = guard_set_.add(key, create_revision, seen_at); !r)
        lose("guarded key " + key + " cannot be watched: " + r.error().message);
      return;
    }
    std::string refused;
    {
      std::lock_guard lock{mutex_};
      if (closed_ || guards_.contains(key)) return;
      if (create_revision == 0) seen_at = 0;
      auto mine = std::make_shared<guard_state>();
      auto t =
          detail::start_thread([this, key, create_revision, seen_at, mine](std::stop_token own) {
            loses_on_throw("guard", [&] {
              guard(key, create_revision, seen_at, mine->disowned, std::move(own));
            });
            mine->ended = true;
          });
      if (t)
        guards_.emplace(key, guard_thread{std::move(*t), std::move(mine)});
      else
        refused = "guarded key " + key + " cannot be watched: " + t.error().message;
    }
    if (!refused.empty()) lose(std::move(refused));  // not under our lock
  }
  /// Stops guarding `key`: once this returns, a delete of it (a resign, a
  /// release) is never taken for a loss. In a watch set this forgets the key;
  /// its watch, if created, is cancelled (one message) a guard delay later. Else nothing is
  /// torn down here, so a release's txn does not wait for it: the guard's
  /// thread sees the delete that usually follows and ends by itself, soon
  /// after. Threads that have ended are joined here; the oldest of too many
  /// still running is stopped (a key left in place); close() stops the rest.
  void unguard_key(const std::string& key) {
    if constexpr (watch_sets<transport_type>) return guard_set_.remove(key);
    std::vector<guard_thread> finished;
    {
      std::lock_guard lock{mutex_};
      auto it = guards_.find(key);
      if (it == guards_.end()) return;
      it->second.state->disowned = true;  // under the lock: see lose_guarded
      auto ended = std::stable_partition(retired_.begin(), retired_.end(),
                                         [](const guard_thread& g) { return !g.state->ended; });
      if (ended - retired_.begin() >= static_cast<std::ptrdiff_t>(max_retired))
        ended = retired_.begin() + static_cast<std::ptrdiff_t>(max_retired) - 1;
      std::move(ended, retired_.end(), std::back_inserter(finished));
      retired_.erase(ended, retired_.end());
      retired_.insert(retired_.begin(), std::move(it->second));  // newest first
      guards_.erase(it);
    }
  }  // joined here, outside the lock

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
    std::map<std::string, guard_thread> guards;
    std::vector<guard_thread> retired;
    lease_id lease = 0;
    {
      std::lock_guard lock{mutex_};
      keepalive = std::move(keepalive_);
      guards = std::move(guards_);
      guards_.clear();
      retired = std::move(retired_);
      retired_.clear();
      if (!closed_) lease = lease_;
      closed_ = true;
    }
    // The revoke goes out while the keepalive and the guards wind down (they
    // were told to stop above; joined below): closed_ is set, so neither
    // takes the revoke's deletions or a refused renewal for a loss.
    result<void> revoked{};
    if (lease != 0) {
      (void)granted();  // an early grant is answered before its revoke goes out
      // A lost session's lease is gone or unreachable: do not wait long for it.
      const deadline d = lost() ? std::chrono::steady_clock::now() + std::chrono::milliseconds{500}
                                : transport_.default_deadline();
      auto r = transport_.lease_revoke(lease, d);
      if (!r && r.error().code != errc::lease_not_found) revoked = std::move(r);
    }
    if (keepalive.joinable()) keepalive.join();
    if constexpr (watch_sets<transport_type>) guard_set_.stop();
    guards.clear();  // joins
    retired.clear();
    return revoked;
  }

  transport_type& transport() noexcept { return transport_; }
  clock_type& clock() noexcept { return clock_; }
  /// The backoff prototype of this session (options::backoff).
  const backoff_type& backoff() const noexcept { return options_.backoff; }

 private:
  using lease_deadline = detail::lease_deadline<clock_type>;

  result<void> check_options() const {
    if (options_.ttl <= std::chrono::seconds{0})
      return error{errc::invalid_argument, "session ttl must be positive, got " +
                                               std::to_string(options_.ttl.count()) + "s"};
    if (margin() >= options_.ttl)
      return error{errc::invalid_argument, "session margin (" + std::to_string(margin().count()) +
                                               "ms) must be shorter than the ttl"};
    return {};
  }

  // The keepalive thread's first step after start_early(): sends the grant of
  // the chosen id (counting `sending` down as it goes out, on a connected
  // channel, so the caller's first write is behind it on the wire) and
  // records its answer; false (the session lost) if it failed. The local
  // deadline already counts from `sent`, taken before the thread started.
  bool grant_chosen(std::latch& sending, time_point sent) {
    const lease_id id = lease();
    bool counted = false;
    auto sent_now = [&] {  // once: a grant sent again elsewhere does not count twice
      if (!std::exchange(counted, true)) sending.count_down();
    };
    auto answer =
        transport_.lease_grant(options_.ttl.count(), id, transport_.default_deadline(), sent_now);
    sent_now();  // never sent (no endpoint answered): start_early() waits no longer
    // Lost first: whoever granted() wakes finds the session lost already.
    if (!answer)
      lose("lease " + detail::lease_hex(id) + " grant failed: " + answer.error().message);
    {
      std::lock_guard lock{mutex_};
      grant_pending_ = false;
      if (answer && answer->ttl > options_.ttl.count())
        deadline_.emplace(sent, std::chrono::seconds{answer->ttl}, margin());
      if (!answer) grant_failure_ = answer.error();
    }
    granted_cv_.notify_all();
    return static_cast<bool>(answer);
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

  // A guard's loss, unless its key was unguarded first (`disowned` is then
  // set, under the same lock). The delete of an unguarded key is usually its
  // owner's release: the guard then lingers a moment (until `stop`) before
  // its watch is torn down, so the teardown does not compete with the
  // handoff that delete starts (the next holder's claim).
  void lose_guarded(const bool& disowned, std::string reason, std::stop_token stop = {}) {
    bool ours = false;
    {
      std::lock_guard lock{mutex_};
      ours = !disowned;
    }
    if (ours) return lose(std::move(reason));
    if (stop.stop_possible()) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock hold{m};
      (void)cv.wait_for(hold, stop, guard_linger, [] { return false; });
    }
  }
  static constexpr std::chrono::milliseconds guard_linger{50};

  bool unguarded(const bool& disowned) const {
    std::lock_guard lock{mutex_};
    return disowned;
  }

  std::string lease_hex() const { return detail::lease_hex(lease_); }

  // A thread's body: what escapes it (memory ran out) loses the session
  // instead of ending the process.
  template <class F>
  void loses_on_throw(const char* what, F&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      lose(std::string(what) + " thread failed: " + e.what());
    }
  }

  // The keepalive thread: one renewal every TTL/3 (detail::lease_deadline
  // decides when to send and when the lease must be presumed lost), quicker
  // retries after a failure. etcd answers a stream's requests one at a time,
  // so a request stuck behind a leader election would hold up every renewal
  // after it: a request unanswered within answer_timeout() is given up (its
  // stream still heard, so a late answer counts) and the renewal goes out
  // again at once on a fresh stream, on the next member. The lease is given
  // up only at the local deadline, when no answer could still save it.
  void keep_alive() {
    const std::stop_token halt = halt_.get_token();
    renewal current;
    std::vector<renewal> stuck;  // given up on, still heard
    backoff_type retry = options_.backoff;
    std::optional<time_point> retry_at;  // set after a failure
    while (!halt.stop_requested()) {
      if (!hear_stuck(stuck)) return;
      time_point due, wake;
      {
        std::lock_guard lock{mutex_};
        due = deadline_->deadline() + cast(options_.ride_through);
        wake = std::min(retry_at.value_or(deadline_->next_keepalive()), due);
      }
      if (clock_.now() >= due) {
        lose("lease " + lease_hex() +
             ": local deadline passed with no keepalive acknowledged in time (etcd unreachable?)");
        return;
      }
      if (current.waiting) {
        auto heard = await_answer(current, stuck, due, halt);
        if (heard == heard_back::lost || halt.stop_requested()) return;
        if (heard == heard_back::answered) {
          retry_at.reset();
          retry.reset();
        } else if (heard == heard_back::given_up) {
          retry_at = clock_.now();  // renew again at once, elsewhere
        } else if (heard == heard_back::broken) {
          retry_at = clock_.now() + std::min(cast(retry.next()), cast(interval()));
        }
        continue;
      }
      if (!conch::sleep_until(clock_, wake, halt)) return;
      if (clock_.now() < due && !send_renewal(current, halt))
        retry_at = clock_.now() + std::min(cast(retry.next()), cast(interval()));
    }
  }

  using stream_type = decltype(std::declval<transport_type&>().keepalive(lease_id{}));
  /// One keepalive stream and its request in flight (at most one).
  struct renewal {
    std::unique_ptr<stream_type> stream;
    time_point sent{};
    bool waiting = false;
  };
  enum class heard_back { answered, waiting, given_up, broken, lost };

  template <class D>
  static typename clock_type::duration cast(D d) {
    return std::chrono::duration_cast<typename clock_type::duration>(d);
  }
  std::chrono::milliseconds interval() const {
    std::lock_guard lock{mutex_};
    return detail::keepalive_interval(deadline_->ttl());
  }
  /// How long one renewal may take before it is given up: short enough that
  /// an unresponsive member is left within a second, and never past the next
  /// renewal's time, so renewals keep their pace while one is stuck.
  std::chrono::milliseconds answer_timeout() const {
    return std::min(interval(), std::chrono::milliseconds{1000});
  }

  // Sends one renewal on `r`'s stream (opening one if needed); false if the
  // stream is broken (it is dropped).
  bool send_renewal(renewal& r, const std::stop_token& halt) {
    if (!r.stream) r.stream = std::make_unique<stream_type>(transport_.keepalive(lease_));
    r.sent = clock_.now();
    stream_type* live = r.stream.get();
    bool sent = false;
    {
      std::stop_callback cancel{halt, [live] { live->cancel(); }};  // gone before the stream is
      sent = static_cast<bool>(live->send());
    }
    if (!sent) {
      drop(r);
      return false;
    }
    std::lock_guard lock{mutex_};
    deadline_->sent(r.sent);
    r.waiting = true;
    return true;
  }

  // Waits for the answer to `r`'s request until it is due, or until the
  // local deadline.
  heard_back await_answer(renewal& r, std::vector<renewal>& stuck, time_point due,
                          const std::stop_token& halt) {
    const time_point give_up = r.sent + cast(answer_timeout());
    result<std::int64_t> answer = error{errc::cancelled, "keepalive not awaited"};
    {
      stream_type* live = r.stream.get();
      std::stop_callback cancel{halt, [live] { live->cancel(); }};  // gone before the stream is
      answer = live->next(detail::real_deadline(clock_, std::min(give_up, due)));
    }
    if (answer) {
      r.waiting = false;
      return credit(r.sent, *answer) ? heard_back::answered : heard_back::lost;
    }
    if (answer.error().code == errc::lease_not_found) {
      lose("lease " + lease_hex() + " expired or was revoked");
      return heard_back::lost;
    }
    if (answer.error().code != errc::timed_out) {
      drop(r);
      return heard_back::broken;
    }
    if (clock_.now() < give_up) return heard_back::waiting;  // the local deadline, or early
    if constexpr (requires { r.stream->unresponsive(); }) r.stream->unresponsive();
    if (stuck.size() >= max_stuck) stuck.erase(stuck.begin());  // the oldest helps least
    stuck.push_back(std::move(r));
    r = renewal{};
    return heard_back::given_up;
  }

  // Streams given up on, polled: a late answer still moves the deadline.
  // False when the lease turned out to be gone.
  bool hear_stuck(std::vector<renewal>& stuck) {
    for (auto it = stuck.begin(); it != stuck.end();) {
      auto answer = it->stream->next(std::chrono::steady_clock::now());
      if (answer) {
        if (!credit(it->sent, *answer)) return false;
      } else if (answer.error().code == errc::lease_not_found) {
        lose("lease " + lease_hex() + " expired or was revoked");
        return false;
      } else if (answer.error().code == errc::timed_out && !outdated(it->sent)) {
        ++it;
        continue;
      }
      it = stuck.erase(it);
    }
    return true;
  }

  bool outdated(time_point sent) const {
    std::lock_guard lock{mutex_};
    return sent <= deadline_->acknowledged_send();
  }

  // Moves the deadline by an answer to the request sent at `sent`; false
  // (and lost) if the answer says the lease is gone.
  // Each move of the deadline is told to on_deadline_moved's callback.
  bool credit(time_point sent, std::int64_t ttl) {
    bool gone = false;
    std::function<void(time_point)> moved;
    time_point before{}, after{};
    {
      std::lock_guard lock{mutex_};
      before = deadline_->deadline();
      deadline_->acknowledged_at(sent, std::chrono::seconds{ttl});
      gone = deadline_->gone();
      after = deadline_->deadline();
      moved = deadline_moved_;
    }
    if (gone)
      lose("lease " + lease_hex() + " expired or was revoked");
    else if (moved && after != before)
      moved(after);
    return !gone;
  }

  // The broken stream will never answer what it was sent: drop it, and
  // forget those sends so a later answer is not credited to them.
  void drop(renewal& r) {
    r = renewal{};
    std::lock_guard lock{mutex_};
    deadline_->forget_in_flight();
  }

  static constexpr std::size_t max_stuck = 2;

  // A guard thread: watches one key for its DELETE.
  void guard(const std::string& key, revision create_revision, revision seen_at, const bool& mine,
             std::stop_token own) {
    detail::stop_union stop{std::move(own), halt_.get_token()};
    backoff_type retry = options_.backoff;
    revision from = seen_at > 0 ? seen_at + 1 : 0;  // 0: (re)read the key before watching
    auto pause = [&] { return detail::pause(clock_, retry, stop.token(), deadline::max()); };
    while (!stop.stop_requested()) {
      if (from == 0) {
        range_request read;
        read.key = key;
        auto r = transport_.range(read, transport_.default_deadline());
        if (!r) {
          if (!pause()) return;
          continue;
        }
        if (r->kvs.empty()) return lose_guarded(mine, "guarded key " + key + " is gone");
        if (create_revision != 0 && r->kvs.front().create_revision != create_revision)
          return lose_guarded(mine, "guarded key " + key + " was deleted and re-created");
        create_revision = r->kvs.front().create_revision;
        from = r->header_revision + 1;
      }
      if (unguarded(mine)) return;  // released before we watched: nothing left to guard
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
              return lose_guarded(mine,
                                  "guarded key " + key + " was deleted at revision " +
                                      std::to_string(e.kv.mod_revision) +
                                      " (lease revoked or key removed)",
                                  stop.token());
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
  bool grant_pending_ = false;              // start_early()'s grant unanswered
  std::optional<error> grant_failure_;
  mutable std::condition_variable granted_cv_;
  std::string lost_reason_;
  std::function<void(time_point)> deadline_moved_;
  bool closed_ = false;
  std::set<std::string> claims_;

  std::stop_source lost_;  // requested when lost: the owner's signal
  std::stop_source halt_;  // requested when lost or closing: our threads' signal
  /// Whether a guard's key was unguarded (under mutex_), and its thread ended.
  struct guard_state {
    bool disowned = false;
    std::atomic<bool> ended{false};
  };
  struct guard_thread {
    std::jthread thread;
    std::shared_ptr<guard_state> state;
  };
  static constexpr std::size_t max_retired = 64;
  // Where the transport carries watch sets, every guarded key is a watch of
  // one set (detail/guard_set.hpp); else each has a thread and a stream.
  struct no_guard_set {
    template <class... A>
    explicit no_guard_set(A&&...) {}
  };
  using guard_set_type =
      std::conditional_t<watch_sets<transport_type>,
                         detail::guard_set<transport_type, clock_type, backoff_type>, no_guard_set>;
  guard_set_type guard_set_;
  std::map<std::string, guard_thread> guards_;
  std::vector<guard_thread> retired_;  // unguarded, not yet joined, newest first
  std::jthread keepalive_;
};

}  // namespace conch
