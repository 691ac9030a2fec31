// conch/logic/election_office.hpp — who leads an office, from its candidates.
//
// Pure logic for observing an election: the office is the set of candidate
// keys under `<prefix>elect/<name>/`; the one with the lowest create_revision
// leads (etcd's own election rule). An observer reads the candidates once,
// then applies watch events; it never needs another read until its watch
// breaks or is compacted.
#pragma once

#include "conch/policies/transport.hpp"

#include <map>
#include <optional>
#include <string>
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

}  // namespace conch::detail
