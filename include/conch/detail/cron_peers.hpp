// conch/detail/cron_peers.hpp — which daemon goes first for a tick.
//
// Every daemon may claim every tick (the claim txn decides, see
// cron_txn.hpp), but if all of them tried at once, all but one txn would
// fail, each a write etcd must order. So daemons take turns: each watches
// the claims being made (`<prefix>cron/fire/`), which tells it the live
// daemons (the leases their claims name) and which ticks are taken. For a
// tick, the daemons rank themselves by a hash of (lease, claim key); the
// first claims on time, the next when its turn comes (logic/cron_turns.hpp:
// a step plus the first one's likely queue, capped) if it has not seen the
// claim by then, and so on. A daemon is remembered for `peer_ttl` after its
// last claim seen (long enough to span the gap between bursts of jobs with
// long periods), or until it misses a turn: a daemon that finds a tick
// still unclaimed at its own turn forgets the daemons ranked before it, so
// a dead or stalled one costs at most one round of capped lag. A daemon
// that sees no peers claims everything on time. Order only: at-most-once
// rests on the txn alone.
#pragma once

#include "conch/detail/cron_tick.hpp"
#include "conch/policies/transport.hpp"

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

namespace conch::detail {

/// Pure bookkeeping of the claims seen; every call locks. Times are steady.
class cron_peers {
 public:
  using clock = std::chrono::steady_clock;

  /// A daemon unseen for `peer_ttl` is presumed gone; claims seen are kept
  /// for `memory`.
  explicit cron_peers(std::chrono::seconds peer_ttl = std::chrono::minutes{10},
                      std::chrono::seconds memory = std::chrono::minutes{3})
      : peer_ttl_(peer_ttl), memory_(memory) {}

  /// A claim created (version 1) at `key` with value `value`.
  void saw_claim(const std::string& key, std::string_view value, clock::time_point now) {
    const auto lease = lease_of(value);
    std::lock_guard lock{mutex_};
    if (taken_.insert(key).second) order_.emplace_back(now, key);
    while (!order_.empty() && now - order_.front().first > memory_) {
      taken_.erase(order_.front().second);
      order_.pop_front();
    }
    if (!lease.empty()) peers_[std::string(lease)] = now;
  }

  /// Whether a claim of `key` was seen.
  bool taken(const std::string& key) const {
    std::lock_guard lock{mutex_};
    return taken_.contains(key);
  }

  /// How many live daemons go before `self` (a lease in hex) for `key`.
  std::size_t rank(const std::string& key, const std::string& self, clock::time_point now) {
    std::lock_guard lock{mutex_};
    const auto mine = order_of(self, key);
    std::size_t before = 0;
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (now - it->second > peer_ttl_) {
        it = peers_.erase(it);
        continue;
      }
      if (it->first != self && order_of(it->first, key) < mine) ++before;
      ++it;
    }
    return before;
  }

  /// A tick at `key` came unclaimed to `self`'s turn: the daemons ranked
  /// before `self` for it are presumed gone, until a claim of theirs is seen.
  void missed(const std::string& key, const std::string& self) {
    std::lock_guard lock{mutex_};
    const auto mine = order_of(self, key);
    std::erase_if(peers_,
                  [&](const auto& p) { return p.first != self && order_of(p.first, key) < mine; });
  }

  /// The lease hex a claim record names ("lease":"..."), or empty.
  static std::string_view lease_of(std::string_view value) {
    constexpr std::string_view field = "\"lease\":\"";
    const auto at = value.find(field);
    if (at == std::string_view::npos) return {};
    const auto from = at + field.size();
    const auto end = value.find('"', from);
    return end == std::string_view::npos ? std::string_view{} : value.substr(from, end - from);
  }

 private:
  static std::pair<std::size_t, std::string_view> order_of(std::string_view lease,
                                                           const std::string& key) {
    std::string mix(lease);
    mix += '/';
    mix += key;
    return {std::hash<std::string>{}(mix), lease};
  }

  std::chrono::seconds peer_ttl_, memory_;
  mutable std::mutex mutex_;
  std::unordered_set<std::string> taken_;
  std::deque<std::pair<clock::time_point, std::string>> order_;
  std::map<std::string, clock::time_point> peers_;
};

/// Feeds `peers` every claim created under `fire_root` (`<prefix>cron/fire/`)
/// from now until `stop`; a broken watch is opened again, paced by `retry`.
/// What is missed meanwhile only costs turns: a daemon claims what it has
/// not seen taken.
template <class Backoff, transport T>
void watch_claims(T& t, const std::string& fire_root, cron_peers& peers, Backoff retry,
                  std::stop_token stop) {
  while (!stop.stop_requested()) {
    auto stream = t.watch(watch_request::prefix(fire_root));
    std::stop_callback cancel{stop, [&] { stream.cancel(); }};
    for (;;) {
      auto batch = stream.next(std::chrono::steady_clock::now() + std::chrono::minutes{10});
      if (batch) {
        const auto now = cron_peers::clock::now();
        for (const auto& e : batch->events)
          if (e.type == watch_event::kind::put && e.kv.version == 1)
            peers.saw_claim(e.kv.key, e.kv.value, now);
        retry.reset();
        continue;
      }
      if (batch.error().code == errc::timed_out) continue;
      if (stop.stop_requested() || !cron_pause(retry.next(), stop)) return;
      break;
    }
  }
}

}  // namespace conch::detail
