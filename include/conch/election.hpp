// conch/election.hpp — one leader per office, etcd-recipe compatible.
//
// Layout (etcd's own `concurrency.Election`, so `etcdctl elect` interoperates):
// candidates put `<prefix>elect/<name>/<lease hex>` attached to their session's
// lease; the key with the lowest create_revision leads; its value is the
// holder record. The fencing token comes from the fencing policy: by default
// the leader key's create_revision (counter_fencing: a dense per-office
// counter, bumped in a guarded txn the moment we lead).
//
//   conch::session s{transport};
//   if (auto r = s.start(); !r) return fail(r.error());
//   conch::election office{s, "conch/", "backup"};
//   if (auto r = office.campaign(record_json); !r) return fail(r.error());
//   run_as_leader(office.token(), s.lost_token());   // stop when the session is lost
//   (void)office.resign();                            // fenced delete: the next one leads now
//
// How waiting works: campaign is one txn (create our key if absent, read the
// first-created key and our predecessor). A waiter watches only its immediate
// predecessor — the key created just before ours — starting right after the
// revision it read it at, so no delete is missed and etcd serves the watch
// from its synced set (a watch from an older revision is resynced only every
// 100 ms). When the predecessor goes, the waiter re-reads its own key (it must
// still carry our create_revision) and its new predecessor, if any.
//
// An election object is used from one thread; only `campaign_options::stop`
// and the session's loss interrupt it from elsewhere.
#pragma once

#include "conch/detail/election_observer.hpp"
#include "conch/logic/election_office.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/fwd.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/fencing.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"
#include "conch/session.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace conch {

template <class P>
class basic_election {
  static_assert(check_policy_bundle<P>());

 public:
  using policies = P;
  using session_type = basic_session<P>;
  using transport_type = typename P::transport;
  using clock_type = typename P::clock;
  using fencing_type = typename P::fencing;

  struct campaign_options {
    bool nonblock = false;                             ///< errc::busy at once if another leads
    std::optional<std::chrono::milliseconds> timeout;  ///< errc::timed_out, our key removed
    std::stop_token stop;                              ///< errc::cancelled, our key removed
  };
  /// Follows who leads an office, one change per next() (see detail::leader_observer).
  using observer = detail::leader_observer<P>;

  /// `prefix` is the namespace ("conch/"), `name` the office. A name that
  /// cannot be a key segment makes campaign() fail with errc::invalid_argument.
  basic_election(session_type& s, std::string_view prefix, std::string_view name)
      : session_(s), prefix_(prefix), name_(name) {
    auto office = office_prefix(prefix, name);
    if (office)
      office_ = std::move(*office);
    else
      bad_name_ = std::move(office).error();
  }
  basic_election(const basic_election&) = delete;
  basic_election& operator=(const basic_election&) = delete;
  /// Leaves the office: a fenced delete of our key if we still have one.
  ~basic_election() { withdraw(); }

  /// `<prefix>elect/<name>/`: the key prefix every candidate lives under.
  static result<std::string> office_prefix(std::string_view prefix, std::string_view name) {
    return detail::election_office(prefix, name);
  }

  /// Becomes a candidate with `value` (the holder record) and returns once we
  /// lead. Errors: errc::busy (nonblock, another leads), errc::timed_out,
  /// errc::cancelled (our key removed in all three), errc::lost (the session
  /// was lost, or our key vanished while waiting), errc::failed_precondition
  /// (already a candidate: this object, another election on this session, or
  /// a key under our lease this object did not create).
  result<void> campaign(std::string value, campaign_options o = {}) {
    if (bad_name_) return *bad_name_;
    if (!key_.empty())
      return error{errc::failed_precondition,
                   "already a candidate for office " + office_ + " (key " + key_ + ")"};
    if (session_.lost()) return lost_error();
    const lease_id lease = session_.lease();
    if (lease == 0)
      return error{errc::failed_precondition,
                   "campaign for office " + office_ + " needs a started session"};
    std::string key = detail::contender_key(office_, lease);
    if (!session_.claim(key))
      return error{errc::failed_precondition,
                   "another election on this session already campaigns for office " + office_ +
                       " (key " + key + ")"};
    key_ = std::move(key);

    detail::stop_union stop{o.stop, session_.lost_token()};
    const deadline give_up =
        o.timeout ? std::chrono::steady_clock::now() + *o.timeout : deadline::max();
    auto entered = enter(value, lease, stop, give_up);
    if (!entered) {
      session_.unclaim(key_);
      key_.clear();
      return interrupted(std::move(entered).error(), o);
    }
    if (o.nonblock && (!entered->first || entered->first->key != key_)) {
      std::string holder = entered->first ? entered->first->key : std::string("?");
      withdraw();
      return error{errc::busy, "office " + office_ + " is held by " + holder};
    }
    session_.guard_key(key_, rev_, entered->at);
    auto won = wait(*entered, stop, give_up);
    if (won) won = take_token(give_up);
    if (!won) {
      withdraw();
      return interrupted(std::move(won).error(), o);
    }
    leading_ = true;
    return {};
  }

  bool leading() const noexcept { return leading_; }
  /// Our fencing token while leading (per the fencing policy; by default our
  /// key's create_revision, strictly increasing per office).
  std::int64_t token() const noexcept { return token_; }
  /// What our writes compare to stay fenced (see conch::guarded_txn).
  fence held() const { return {key_, rev_, token_}; }
  /// Our candidate key (empty when not a candidate).
  const std::string& key() const noexcept { return key_; }
  revision create_revision() const noexcept { return rev_; }
  const std::string& name() const noexcept { return name_; }
  const std::string& office() const noexcept { return office_; }

  /// A new value for our key while we lead, without another election.
  result<void> proclaim(std::string value) {
    if (!leading_)
      return error{errc::failed_precondition, "proclaim needs leadership of office " + office_};
    if (session_.lost()) return lost_error();
    // Guarded by our own key whatever the policy: a bare put would re-create it.
    txn_request t;
    t.compares.push_back(holds(held()));
    t.success.emplace_back(put_request{key_, std::move(value), session_.lease()});
    auto r = retried_txn(t, transport().default_deadline());
    if (!r) return r.error().code == errc::lease_not_found ? lost_error() : std::move(r).error();
    if (!r->succeeded) {
      withdraw();
      return error{errc::lost, "no longer leading office " + office_ + ": our key is gone"};
    }
    return {};
  }

  /// Leaves the office (or the queue): a fenced delete of our key, so the
  /// next candidate leads at once. Nothing to do when not a candidate.
  result<void> resign() {
    if (key_.empty()) return {};
    session_.unguard_key(key_);
    auto r = fenced_delete(transport().default_deadline());
    if (!r && !session_.lost() && r.error().code != errc::lease_not_found) {
      session_.guard_key(key_, rev_);  // still ours: the caller may retry
      return r;
    }
    forget();
    return {};
  }

  /// The current leader of `name`, or nullopt when the office is vacant.
  static result<std::optional<key_value>> leader(transport_type& t, std::string_view prefix,
                                                 std::string_view name) {
    auto office = office_prefix(prefix, name);
    if (!office) return std::move(office).error();
    auto r = t.range(first_created(std::move(*office)), t.default_deadline());
    if (!r) return std::move(r).error();
    if (r->kvs.empty()) return std::optional<key_value>{};
    return std::optional<key_value>{std::move(r->kvs.front())};
  }

  /// Calls `on_change(const std::optional<key_value>&)` with the current
  /// leader, then with every change (new leader, new value, vacancy) until
  /// `stop` is requested. Survives stream breaks, etcd restarts and
  /// compaction (it re-reads and keeps going); returns only on stop (ok) or
  /// on an error retrying cannot fix (permission denied, bad credentials).
  template <class F>
  static result<void> observe(transport_type& t, std::string_view prefix, std::string_view name,
                              std::stop_token stop, F&& on_change) {
    if (auto office = office_prefix(prefix, name); !office) return std::move(office).error();
    observer o{t, prefix, name};
    std::stop_callback cancel{stop, [&] { o.cancel(); }};
    for (;;) {
      auto r = o.next(std::chrono::steady_clock::now() + std::chrono::minutes{10});
      if (r) {
        on_change(static_cast<const std::optional<key_value>&>(*r));
        continue;
      }
      if (r.error().code == errc::timed_out) continue;
      if (r.error().code == errc::cancelled) return {};
      return std::move(r).error();
    }
  }

 private:
  using backoff_type = typename P::backoff;

  // What the campaign txn saw, at one revision.
  struct entry {
    std::optional<key_value> first;        // who leads
    std::optional<key_value> predecessor;  // whom we wait for
    bool predecessor_known = false;
    revision at = 0;
  };

  transport_type& transport() { return session_.transport(); }

  static bool retryable(errc e) { return detail::election_retryable(e); }

  static range_request first_created(std::string office) {
    auto r = range_request::prefix(std::move(office));
    r.order = range_request::sort_order::ascend;
    r.target = range_request::sort_target::create;
    r.limit = 1;
    return r;
  }
  // The key created just before `rev` under the office: the one a waiter watches.
  static range_request created_before(std::string office, revision rev) {
    auto r = range_request::prefix(std::move(office));
    r.order = range_request::sort_order::descend;
    r.target = range_request::sort_target::create;
    r.max_create_revision = rev - 1;
    r.limit = 1;
    return r;
  }
  static const range_response* range_at(const txn_response& r, std::size_t i) {
    return i < r.responses.size() ? std::get_if<range_response>(&r.responses[i]) : nullptr;
  }
  static std::optional<key_value> front(const range_response* r) {
    if (!r || r->kvs.empty()) return std::nullopt;
    return r->kvs.front();
  }

  // A call never outlives the caller's patience by much, but always gets a
  // moment: cutting a campaign txn short would only leave its outcome in doubt.
  deadline call_deadline(deadline give_up) {
    const deadline floor = std::chrono::steady_clock::now() + std::chrono::milliseconds{500};
    return std::min(transport().default_deadline(), std::max(give_up, floor));
  }

  // Sleeps one backoff step; false when stopped or past `give_up`.
  bool pause(backoff_type& retry, const detail::stop_union& stop, deadline give_up) {
    const auto left = give_up - std::chrono::steady_clock::now();
    if (left <= left.zero()) return false;
    auto step = std::chrono::duration_cast<std::chrono::steady_clock::duration>(retry.next());
    auto& clock = session_.clock();
    const auto wake = clock.now() + std::chrono::duration_cast<typename clock_type::duration>(
                                        std::min(step, left));
    return clock.sleep_until(wake, stop.token()) && std::chrono::steady_clock::now() < give_up;
  }

  error lost_error() const { return error{errc::lost, "session lost: " + session_.lost_reason()}; }
  // Names why a wait ended early: the session, the owner, or the clock.
  error interrupted(error e, const campaign_options& o) const {
    if (session_.lost()) return lost_error();
    if (e.code == errc::cancelled || o.stop.stop_requested())
      return error{errc::cancelled, "campaign for office " + office_ + " cancelled"};
    if (e.code == errc::timed_out && o.timeout)
      return error{errc::timed_out, "gave up waiting for office " + office_ + " after " +
                                        std::to_string(o.timeout->count()) + "ms"};
    return e;
  }

  // The campaign txn: create our key if absent, and read who leads and who
  // precedes us, all at one revision.
  result<entry> enter(const std::string& value, lease_id lease, const detail::stop_union& stop,
                      deadline give_up) {
    txn_request t;
    t.compares.push_back(compare::create_revision(key_) == 0);
    t.success.emplace_back(put_request{key_, value, lease});
    t.success.emplace_back(first_created(office_));
    auto last_two = range_request::prefix(office_);
    last_two.order = range_request::sort_order::descend;
    last_two.target = range_request::sort_target::create;
    last_two.limit = 2;  // ours (just created: the newest) and the one before it
    t.success.emplace_back(last_two);
    range_request mine;
    mine.key = key_;
    t.failure.emplace_back(mine);
    t.failure.emplace_back(first_created(office_));

    backoff_type retry{};
    bool in_doubt = false;  // an earlier attempt may have committed unseen
    for (;;) {
      auto r = transport().txn(t, call_deadline(give_up));
      if (r && r->succeeded) {
        const auto* newest = range_at(*r, 2);
        if (!range_at(*r, 1) || !newest)
          return error{errc::internal, "campaign txn answered without its reads"};
        rev_ = r->header_revision;
        entry e{front(range_at(*r, 1)), std::nullopt, true, r->header_revision};
        if (newest->kvs.size() > 1) e.predecessor = newest->kvs[1];
        return e;
      }
      if (r) {
        auto own = front(range_at(*r, 0));
        if (own && in_doubt && own->value == value && own->lease == lease) {
          rev_ = own->create_revision;  // our own earlier attempt did commit
          return entry{front(range_at(*r, 1)), std::nullopt, false, r->header_revision};
        }
        return error{errc::failed_precondition,
                     "office " + office_ + " already has a candidate under this session's lease (" +
                         key_ +
                         (own ? ", create_revision " + std::to_string(own->create_revision)
                              : std::string()) +
                         ") that this election did not create"};
      }
      if (r.error().code == errc::lease_not_found) return lost_error();
      if (!retryable(r.error().code)) return std::move(r).error();
      in_doubt = true;
      if (!pause(retry, stop, give_up)) {
        remove_in_doubt(value, lease);
        return error{stop.stop_requested() ? errc::cancelled : errc::timed_out, r.error().message};
      }
    }
  }

  // Gives up on a campaign txn whose outcome we never saw: removes the key
  // only if it carries exactly what we tried to write.
  void remove_in_doubt(const std::string& value, lease_id lease) {
    if (session_.lost()) return;
    txn_request t;
    t.compares.push_back(compare::value(key_) == value);
    t.compares.push_back(compare::lease(key_) == lease);
    t.success.emplace_back(delete_request{key_, {}, false});
    (void)retried_txn(t, transport().default_deadline());
  }

  // Waits until no key created before ours remains.
  result<void> wait(entry seen, const detail::stop_union& stop, deadline give_up) {
    backoff_type retry{};
    bool known = seen.predecessor_known;
    for (;;) {
      if (stop.stop_requested()) return error{errc::cancelled, "stopped"};
      if (!known) {
        // Re-verify our own key and find our predecessor, at one revision.
        txn_request t;
        range_request mine;
        mine.key = key_;
        t.success.emplace_back(mine);
        t.success.emplace_back(created_before(office_, rev_));
        auto r = transport().txn(t, call_deadline(give_up));
        if (!r) {
          if (r.error().code == errc::lease_not_found) return lost_error();
          if (!retryable(r.error().code)) return std::move(r).error();
          if (!pause(retry, stop, give_up)) return error{errc::timed_out, r.error().message};
          continue;
        }
        auto own = front(range_at(*r, 0));
        if (!own || own->create_revision != rev_)
          return error{errc::lost, "our candidate key " + key_ +
                                       " was deleted while waiting for office " + office_ +
                                       " (lease revoked or key removed)"};
        seen.predecessor = front(range_at(*r, 1));
        seen.at = r->header_revision;
      }
      known = false;
      if (!seen.predecessor) return {};

      watch_request w;
      w.key = seen.predecessor->key;
      w.start_revision = seen.at + 1;
      w.no_put = true;
      auto stream = transport().watch(w);
      std::stop_callback cancel{stop.token(), [&] { stream.cancel(); }};
      for (;;) {
        auto batch = stream.next(
            std::min(give_up, std::chrono::steady_clock::now() + std::chrono::minutes{10}));
        if (batch) {
          retry.reset();
          if (std::any_of(batch->events.begin(), batch->events.end(),
                          [](const watch_event& e) { return e.type == watch_event::kind::del; }))
            break;
          continue;
        }
        const errc why = batch.error().code;
        if (why == errc::timed_out && std::chrono::steady_clock::now() < give_up) continue;
        if (why == errc::timed_out || stop.stop_requested()) return std::move(batch).error();
        if (why != errc::compacted && !retryable(why) && why != errc::cancelled)
          return std::move(batch).error();
        if (why != errc::compacted && !pause(retry, stop, give_up))
          return error{errc::timed_out, batch.error().message};
        break;  // re-read: the compacted gap (or the break) may have hidden the delete
      }
    }
  }

  // Once we lead: the token. A policy with acquire ops (counter_fencing) runs
  // them in a txn guarded by our key, so only a sitting leader bumps.
  result<void> take_token(deadline give_up) {
    const fence_site site{key_, detail::fencing_counter_key(prefix_, office_)};
    txn_request t;
    t.compares.push_back(holds(held()));
    const std::size_t first = add_acquire_ops(t, fencing_, site);
    if (t.success.empty()) {
      auto token = fencing_.token({}, rev_);
      if (!token) return std::move(token).error();
      token_ = *token;
      return {};
    }
    auto r = transport().txn(t, call_deadline(give_up));
    if (!r) return r.error().code == errc::lease_not_found ? lost_error() : std::move(r).error();
    if (!r->succeeded)
      return error{errc::lost,
                   "our candidate key " + key_ + " vanished as we took office " + office_};
    auto token = read_token(fencing_, *r, first, rev_);
    if (!token) return std::move(token).error();
    token_ = *token;
    return {};
  }

  result<void> fenced_delete(deadline d) {
    auto r = retried_txn(fenced_release(held()), d);
    if (!r) return std::move(r).error();
    return {};
  }

  // A txn that is safe to repeat (fenced: a second run fails its compare),
  // retried until `d` while etcd is briefly unavailable (just restarted, a
  // leader change, a channel still reconnecting).
  result<txn_response> retried_txn(const txn_request& t, deadline d) {
    backoff_type retry{};
    for (;;) {
      auto r = transport().txn(t, d);
      if (r || !retryable(r.error().code) || r.error().code == errc::compacted) return r;
      const auto left = d - std::chrono::steady_clock::now();
      if (left <= left.zero()) return r;
      const auto step = std::min(
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(retry.next()), left);
      auto& clock = session_.clock();
      if (!clock.sleep_until(
              clock.now() + std::chrono::duration_cast<typename clock_type::duration>(step),
              session_.lost_token()))
        return r;
    }
  }

  // Stops being a candidate: unguard, fenced delete (best effort), forget.
  void withdraw() {
    if (key_.empty()) return;
    session_.unguard_key(key_);
    if (!session_.lost()) (void)fenced_delete(transport().default_deadline());
    forget();
  }
  void forget() {
    session_.unclaim(key_);
    key_.clear();
    rev_ = 0;
    token_ = 0;
    leading_ = false;
  }

  session_type& session_;
  std::string prefix_;
  std::string name_;
  std::string office_;
  std::optional<error> bad_name_;
  [[no_unique_address]] fencing_type fencing_{};
  std::string key_;
  revision rev_ = 0;
  std::int64_t token_ = 0;
  bool leading_ = false;
};

}  // namespace conch
