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
// Lock delay: campaign also puts our held marker (logic/lock_delay.hpp) and
// resign deletes it with our key, in the same txns. A leader lost uncleanly
// leaves its marker; with `campaign_options::lock_delay`, the next leader's
// campaign returns only that long after it first saw the stale marker (or saw
// an unmarked candidate, such as an `etcdctl elect` one, vanish ahead of it).
//
// How waiting works: campaign is one txn, as small as etcd's own recipe
// (create our key if absent, read the three newest candidates, keys only)
// plus the lock delay's (put our marker, read the two newest markers). A
// waiter watches only its immediate predecessor — the key created just before
// ours. The watch is created from "now" and acknowledged before the waiter
// relies on it, so etcd serves it from its synced set (a watch from an older
// revision waits for etcd's 100 ms resync), with a re-read only if something
// was written since. When the predecessor goes and it was the only candidate
// ahead (a key created later is never ahead of ours), the waiter leads without
// a read, as etcd's own recipe does (our key's own loss is the session guard's
// to report) — unless a lock delay is set and the predecessor had a marker:
// then the re-read tells whether its marker went with it (a clean resign, we
// lead at once) or was left (an unclean loss, we sit out the delay); an
// unmarked predecessor's delete always counts as unclean. Otherwise the
// waiter re-reads its own key, its new predecessor and the newest marker.
//
// An election object is used from one thread; only `campaign_options::stop`
// and the session's loss interrupt it from elsewhere.
#pragma once

#include "conch/detail/candidate_line.hpp"
#include "conch/detail/election_observer.hpp"
#include "conch/detail/lock_delay.hpp"
#include "conch/detail/waiting.hpp"
#include "conch/fwd.hpp"
#include "conch/logic/election_office.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/lock_delay.hpp"
#include "conch/logic/stop_union.hpp"
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
  using backoff_type = typename P::backoff;

  /// nonblock (errc::busy at once if another leads), timeout, stop, and the
  /// backoff prototype for this campaign, proclaim and resign (empty: the session's).
  using campaign_options = detail::wait_options<backoff_type>;
  /// Follows who leads an office, one change per next() (see detail::leader_observer).
  using observer = detail::leader_observer<P>;

  /// `prefix` is the namespace ("conch/"), `name` the office. A name that
  /// cannot be a key segment makes campaign() fail with errc::invalid_argument.
  basic_election(session_type& s, std::string_view prefix, std::string_view name)
      : session_(s), io_(s), backoff_(s.backoff()), prefix_(prefix), name_(name), handover_(s) {
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

  /// Becomes a candidate with `value` (the holder record); returns once we lead and any
  /// lock delay is over. Errors: errc::busy (nonblock: another leads, or a delay runs),
  /// errc::timed_out, errc::cancelled (our key removed in all three), errc::lost (session
  /// lost, or our key vanished while waiting), errc::failed_precondition (already a
  /// candidate: this object, another election on this session, or a foreign key under our lease).
  result<void> campaign(std::string value, campaign_options o = {}) {
    if (bad_name_) return *bad_name_;
    if (!key_.empty())
      return error{errc::failed_precondition,
                   "already a candidate for office " + office_ + " (key " + key_ + ")"};
    if (session_.lost()) return io_.lost_error();
    const lease_id lease = session_.lease();
    if (lease == 0)
      return error{errc::failed_precondition,
                   "campaign for office " + office_ + " needs a started session"};
    backoff_ = o.backoff.value_or(session_.backoff());
    std::string key = detail::contender_key(office_, lease);
    if (!session_.claim(key))
      return error{errc::failed_precondition,
                   "another election on this session already campaigns for office " + office_ +
                       " (key " + key + ")"};
    key_ = std::move(key);
    handover_.start(detail::held_marker_dir(prefix_, office_), lease, o.lock_delay);

    detail::stop_union stop{o.stop, session_.lost_token()};
    const deadline give_up = detail::give_up_at(o.timeout);
    auto entered = enter(value, lease, o.nonblock, stop, give_up);
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
    if (won) won = handover_.sit_out(*entered, rev_, o.nonblock, stop, give_up, office_);
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
    if (session_.lost()) return io_.lost_error();
    // Guarded by our own key whatever the policy: a bare put would re-create it.
    txn_request t;
    t.compares.push_back(holds(held()));
    t.success.emplace_back(put_request{key_, std::move(value), session_.lease()});
    auto r = io_.retried_txn(t, transport().default_deadline(), backoff_);
    if (!r)
      return r.error().code == errc::lease_not_found ? io_.lost_error() : std::move(r).error();
    if (!r->succeeded) {
      withdraw();
      return error{errc::lost, "no longer leading office " + office_ + ": our key is gone"};
    }
    return {};
  }

  /// Leaves the office (or queue): a fenced delete of our key and held marker, so the next
  /// leads at once, no lock delay; call it once our work has stopped. No-op if no candidate.
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
    return detail::read_leader(t, std::move(*office));
  }

  /// Calls `on_change(const std::optional<key_value>&)` with the current
  /// leader, then with every change (new leader, new value, vacancy) until
  /// `stop` is requested. Survives stream breaks, etcd restarts and
  /// compaction (it re-reads and keeps going); returns only on stop (ok) or
  /// on an error retrying cannot fix (permission denied, bad credentials).
  /// Its pauses wait on `c` and are paced by copies of `backoff`; the overload
  /// taking a session uses the session's transport, clock and backoff.
  template <class F>
  static result<void> observe(transport_type& t, std::string_view prefix, std::string_view name,
                              std::stop_token stop, F&& on_change, clock_type c = {},
                              backoff_type backoff = {}) {
    if (auto office = office_prefix(prefix, name); !office) return std::move(office).error();
    observer o{t, prefix, name, std::move(c), {.backoff = std::move(backoff)}};
    return o.follow(std::move(stop), std::forward<F>(on_change));
  }
  template <class F>
  static result<void> observe(session_type& s, std::string_view prefix, std::string_view name,
                              std::stop_token stop, F&& on_change) {
    return observe(s.transport(), prefix, name, std::move(stop), std::forward<F>(on_change),
                   s.clock(), s.backoff());
  }

 private:
  using entry = detail::campaign_entry;

  transport_type& transport() { return session_.transport(); }

  error interrupted(error e, const campaign_options& o) const {
    return io_.interrupted(std::move(e), o.stop, o.timeout, "campaign for office " + office_,
                           "office " + office_);
  }

  // The campaign txn: create our key if absent, and read who leads and who
  // precedes us, all at one revision.
  result<entry> enter(const std::string& value, lease_id lease, bool leader,
                      const detail::stop_union& stop, deadline give_up) {
    const txn_request t = handover_.campaign_txn(office_, key_, value, lease, leader);
    auto made = io_.create(t, key_, value, lease, stop, give_up, backoff_);
    if (!made) return std::move(made).error();
    const txn_response& r = made->response;
    if (r.succeeded) {
      auto e = detail::parse_campaign(r, leader);
      if (e) rev_ = r.header_revision;
      return e;
    }
    if (made->ours) {
      rev_ = made->own->create_revision;  // our own earlier attempt did commit
      auto first = leader ? detail::front(detail::range_at(r, 1)) : std::nullopt;
      return entry{std::move(first), std::nullopt, false, r.header_revision, false};
    }
    const auto& own = made->own;
    return error{
        errc::failed_precondition,
        "office " + office_ + " already has a candidate under this session's lease (" + key_ +
            (own ? ", create_revision " + std::to_string(own->create_revision) : std::string()) +
            ") that this election did not create"};
  }

  // Waits until no key created before ours remains (detail::candidate_line);
  // `seen` is left with what the lock delay needs.
  result<void> wait(entry& seen, const detail::stop_union& stop, deadline give_up) {
    return line_.wait(seen, {office_, key_, rev_}, backoff_, stop, give_up);
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
    auto r = transport().txn(t, io_.call_deadline(give_up));
    if (!r)
      return r.error().code == errc::lease_not_found ? io_.lost_error() : std::move(r).error();
    if (!r->succeeded)
      return error{errc::lost,
                   "our candidate key " + key_ + " vanished as we took office " + office_};
    auto token = read_token(fencing_, *r, first, rev_);
    if (!token) return std::move(token).error();
    token_ = *token;
    return {};
  }

  result<void> fenced_delete(deadline d) {
    auto r = io_.retried_txn(handover_.release_txn(held()), d, backoff_);
    if (!r) return std::move(r).error();
    return {};
  }

  // Stops being a candidate: unguard, fenced delete (best effort), forget.
  void withdraw() {
    if (key_.empty()) return;
    session_.unguard_key(key_);
    if (!session_.lost()) (void)fenced_delete(transport().default_deadline());
    forget();
  }
  void forget() {
    line_.close_spent();
    session_.unclaim(key_);
    key_.clear();
    rev_ = 0;
    token_ = 0;
    leading_ = false;
  }

  session_type& session_;
  detail::waiting<session_type> io_;
  backoff_type backoff_;  // the prototype: each operation paces its retries with a copy
  std::string prefix_;
  std::string name_;
  std::string office_;
  detail::election_handover<session_type> handover_;  // our held marker, the lock delay
  std::optional<error> bad_name_;
  [[no_unique_address]] fencing_type fencing_{};
  std::string key_;
  revision rev_ = 0;
  std::int64_t token_ = 0;
  bool leading_ = false;
  detail::candidate_line<session_type> line_{session_, handover_};
};

}  // namespace conch
