// conch/detail/candidate_line.hpp — how an election candidate waits for the office.
//
// basic_election's waiting (election.hpp tells the protocol): watch the one
// candidate created just before ours until it goes, re-reading only when the
// watch cannot tell what changed. The recipe validates and names errors; this
// talks to etcd.
#pragma once

#include "conch/detail/lock_delay.hpp"
#include "conch/detail/waiting.hpp"
#include "conch/logic/election_office.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <optional>
#include <string>
#include <utility>

namespace conch::detail {

/// Whose wait: the office, our key and its create_revision.
struct candidate {
  const std::string& office;
  const std::string& key;
  revision rev;
};

/// One candidate's wait in line for an office. Used from one thread.
template <class Session>
class candidate_line {
 public:
  using policies = typename Session::policies;
  using backoff_type = typename policies::backoff;
  using transport_type = typename policies::transport;
  using entry = campaign_entry;

  using handover_type = election_handover<Session>;

  candidate_line(Session& s, handover_type& handover) : session_(s), io_(s), handover_(handover) {}

 private:
  enum class step { lead, reread, known };
  using stream_type =
      decltype(std::declval<transport_type&>().watch(std::declval<const watch_request&>()));

 public:
  // Re-verifies our own key and finds our predecessor and the newest held
  // marker before us, at one revision.
  result<void> reread(entry& seen, const candidate& me, backoff_type& retry, const stop_union& stop,
                      deadline give_up) {
    for (;;) {
      auto r = transport().txn(handover_.predecessor_txn(me.office, me.key, me.rev),
                               io_.call_deadline(give_up));
      if (!r) {
        if (r.error().code == errc::lease_not_found) return io_.lost_error();
        if (!retryable(r.error().code)) return std::move(r).error();
        if (!io_.pause(retry, stop.token(), give_up))
          return error{errc::timed_out, r.error().message};
        continue;
      }
      if (!read_predecessor(*r, me.rev, seen))
        return error{errc::lost, "our candidate key " + me.key +
                                     " was deleted while waiting for office " + me.office +
                                     " (lease revoked or key removed)"};
      handover_.after_read(seen);
      return {};
    }
  }

  // Waits until no key created before ours remains; `seen` is the last read
  // (or what the watch told), for the lock delay.
  result<void> wait(entry& seen, const candidate& me, const backoff_type& prototype,
                    const stop_union& stop, deadline give_up) {
    backoff_type retry = prototype;
    bool known = seen.predecessor_known;
    if (known) handover_.after_read(seen);
    for (;;) {
      if (stop.stop_requested()) return error{errc::cancelled, "stopped"};
      if (!known)
        if (auto r = reread(seen, me, retry, stop, give_up); !r) return r;
      if (!seen.predecessor) return {};
      auto next = await_predecessor(seen, me, retry, stop, give_up);
      if (!next) return std::move(next).error();
      if (*next == step::lead) return {};
      known = *next == step::known;
    }
  }

  // Watches our predecessor until it goes. Its watch is created from "now"
  // and acknowledged first (etcd serves it from its synced set at once); a
  // re-read follows only if anything was written since `seen`. A delete of
  // the sole candidate ahead of us means we lead, with no re-read, unless the
  // lock delay must read whether it was clean (election_handover::lead_on_delete).
  result<step> await_predecessor(entry& seen, const candidate& me, backoff_type& retry,
                                 const stop_union& stop, deadline give_up) {
    spent_.reset();
    watch_request w;
    w.key = seen.predecessor->key;
    w.no_put = true;
    w.start_revision = startable_watch<stream_type> ? 0 : seen.at + 1;
    auto stream = transport().watch(w);
    if constexpr (startable_watch<stream_type>) {
      auto created = stream.start(io_.call_deadline(give_up));
      if (!created) {
        if (!retryable(created.error().code)) return std::move(created).error();
        if (!io_.pause(retry, stop.token(), give_up))
          return error{errc::timed_out, created.error().message};
        return step::reread;
      }
      if (*created > seen.at) {  // something was written since: is it still the one?
        const std::string watched = w.key;
        if (auto r = reread(seen, me, retry, stop, give_up); !r) return std::move(r).error();
        if (!seen.predecessor || seen.predecessor->key != watched) return step::known;
      }
    }
    const revision floor = seen.at;
    bool deleted = false;
    auto gone = io_.watch_until(stream, stop, give_up, retry, [&](const watch_batch& b) {
      for (const auto& e : b.events)
        if (e.kv.mod_revision > floor && e.type == watch_event::kind::del) deleted = true;
      return deleted;
    });
    if (!gone) return std::move(gone).error();
    spent_.emplace(std::move(stream));  // cancelled later (spent_), not while we take office
    if (deleted && seen.sole && handover_.lead_on_delete(seen)) return step::lead;
    return step::reread;  // a gap may hide a change, or the lock delay needs the marker
  }

  // Closes the watch of our last wait (kept open while we took office).
  void close_spent() { spent_.reset(); }

 private:
  auto& transport() { return session_.transport(); }

  Session& session_;
  waiting<Session> io_;
  handover_type& handover_;           // our held marker and the lock delay
  std::optional<stream_type> spent_;  // a cancelled watch, destroyed off the handoff's path
};

}  // namespace conch::detail
