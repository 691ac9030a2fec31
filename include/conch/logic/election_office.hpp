// conch/logic/election_office.hpp — who leads an office, from its candidates.
//
// Pure logic for observing an election: the office is the set of candidate
// keys under `<prefix>elect/<name>/`; the one with the lowest create_revision
// leads (etcd's own election rule). An observer reads the candidates once,
// then applies watch events; it never needs another read until its watch
// breaks or is compacted.
#pragma once

#include "conch/logic/txn_read.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace conch::detail {

class office_view {
 public:
  void reset(const std::vector<key_value>& candidates) {
    by_key_.clear();
    for (const auto& kv : candidates) by_key_[kv.key] = kv;
  }

  void apply(const watch_event& e) {
    if (e.type == watch_event::kind::del)
      by_key_.erase(e.kv.key);
    else
      by_key_[e.kv.key] = e.kv;
  }

  /// The candidate with the lowest create_revision, if any.
  std::optional<key_value> leader() const {
    const key_value* best = nullptr;
    for (const auto& [key, kv] : by_key_)
      if (!best || kv.create_revision < best->create_revision) best = &kv;
    if (!best) return std::nullopt;
    return *best;
  }

  std::size_t candidates() const noexcept { return by_key_.size(); }

 private:
  std::map<std::string, key_value> by_key_;
};

/// Whether an observer should report `now` after having reported `before`:
/// a different holder, a re-created key, or a new value (proclaim).
inline bool leader_changed(const std::optional<key_value>& before,
                           const std::optional<key_value>& now) {
  if (before.has_value() != now.has_value()) return true;
  if (!now) return false;
  return before->key != now->key || before->create_revision != now->create_revision ||
         before->mod_revision != now->mod_revision;
}

/// Reads the first-created candidate of `office`: who leads.
inline range_request first_created(std::string office) {
  auto r = range_request::prefix(std::move(office));
  r.order = range_request::sort_order::ascend;
  r.target = range_request::sort_target::create;
  r.limit = 1;
  return r;
}

/// Reads the candidate created just before `rev`: the one a waiter watches.
inline range_request created_before(std::string office, revision rev) {
  auto r = range_request::prefix(std::move(office));
  r.order = range_request::sort_order::descend;
  r.target = range_request::sort_target::create;
  r.max_create_revision = rev - 1;
  r.limit = 1;
  return r;
}

/// The newest held markers (logic/lock_delay.hpp) created before `rev`
/// (0: any), keys only.
inline range_request markers_before(std::string marker_dir, revision rev, std::int64_t limit) {
  auto r = range_request::prefix(std::move(marker_dir));
  r.order = range_request::sort_order::descend;
  r.target = range_request::sort_target::create;
  r.keys_only = true;
  if (rev > 1) r.max_create_revision = rev - 1;
  r.limit = limit;
  return r;
}

/// The campaign txn, as small as etcd's own recipe plus the lock delay's
/// marker: create `key` if absent and read, at the same revision, the three
/// newest candidates, keys only (answer 1: ours and up to two ahead of it,
/// enough to know whether one alone is ahead of us); put our held marker
/// `marker` with it (no lease: it outlives an unclean loss) and read the two
/// newest markers, keys only (answer 3: ours and the one before it); if `key`
/// exists, read it (answer 0). `leader` adds a read of who leads (answer 4 on
/// success, 1 on failure), for a message.
inline txn_request campaign_txn(const std::string& office, const std::string& key,
                                const std::string& value, lease_id lease,
                                const std::string& marker_dir, const std::string& marker,
                                bool leader = false) {
  txn_request t;
  t.compares.push_back(compare::create_revision(key) == 0);
  t.success.emplace_back(put_request{key, value, lease});
  auto newest = range_request::prefix(office);
  newest.order = range_request::sort_order::descend;
  newest.target = range_request::sort_target::create;
  newest.limit = 3;
  newest.keys_only = true;
  t.success.emplace_back(std::move(newest));
  t.success.emplace_back(put_request{marker, key, 0});
  t.success.emplace_back(markers_before(marker_dir, 0, 2));
  range_request mine;
  mine.key = key;
  t.failure.emplace_back(mine);
  if (leader) {
    t.success.emplace_back(first_created(office));
    t.failure.emplace_back(first_created(office));
  }
  return t;
}

/// What the campaign txn (or a waiter's re-read) saw, at one revision.
struct campaign_entry {
  std::optional<key_value> first;        ///< who leads, when read
  std::optional<key_value> predecessor;  ///< whom we wait for
  bool predecessor_known = false;        ///< false: re-read it before waiting
  revision at = 0;
  /// The predecessor is the only candidate ahead of us: once it goes, we
  /// lead (a candidate created later is never ahead of us).
  bool sole = false;
  /// The newest held marker created before our key: the predecessor's own
  /// (same create_revision), or, with no predecessor, a stale one.
  std::optional<key_value> marker_before{};
};

/// The entry from a campaign_txn that created our key.
inline result<campaign_entry> parse_campaign(const txn_response& r, bool leader = false) {
  const auto* newest = range_at(r, 1);
  if (!newest || !range_at(r, 3) || (leader && !range_at(r, 4)))
    return error{errc::internal, "campaign txn answered without its reads"};
  campaign_entry e{std::nullopt, std::nullopt, true, r.header_revision, false};
  if (newest->kvs.size() > 1) e.predecessor = newest->kvs[1];
  e.sole = newest->kvs.size() == 2;
  if (const auto* markers = range_at(r, 3))
    for (const auto& kv : markers->kvs)
      if (kv.create_revision < r.header_revision) {
        e.marker_before = kv;
        break;
      }
  if (leader)
    e.first = front(range_at(r, 4));
  else if (!e.predecessor)
    e.first = front(newest);  // ours: nobody is ahead
  else if (e.sole)
    e.first = e.predecessor;
  return e;
}

/// A waiter's re-read: its own key (answer 0), the two candidates created
/// just before it (answer 1: its predecessor first, keys only) and the newest
/// held marker created before it (answer 2), at one revision.
inline txn_request predecessor_txn(const std::string& office, const std::string& key, revision rev,
                                   const std::string& marker_dir) {
  txn_request t;
  range_request mine;
  mine.key = key;
  t.success.emplace_back(mine);
  auto before = created_before(office, rev);
  before.limit = 2;
  before.keys_only = true;
  t.success.emplace_back(std::move(before));
  t.success.emplace_back(markers_before(marker_dir, rev, 1));
  return t;
}

/// From a predecessor_txn's answer: false if our key (created at `rev`) is
/// gone; else the predecessor (answer 1), the newest marker before us (answer
/// 2) and the revision, into `seen`.
inline bool read_predecessor(const txn_response& r, revision rev, campaign_entry& seen) {
  auto own = front(range_at(r, 0));
  if (!own || own->create_revision != rev) return false;
  const auto* before = range_at(r, 1);
  seen.predecessor = front(before);
  seen.sole = before && before->kvs.size() == 1;
  seen.marker_before = front(range_at(r, 2));
  seen.at = r.header_revision;
  return true;
}

}  // namespace conch::detail
