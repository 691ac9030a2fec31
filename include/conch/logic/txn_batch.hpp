// conch/logic/txn_batch.hpp — which waiting txns may share one write.
//
// Pure: a batch (conch::txn_batching) carries independent txns as one etcd
// txn. etcd evaluates every inner txn's compares against the state before
// the batch, then applies the ops in order; so a batch answers each txn as
// if it had been sent alone only when no txn in it reads, compares or writes
// a key that another one writes. etcd itself refuses a batch in which two
// txns write one key ("duplicate key given in txn request"), and one that
// spends more than --max-txn-ops (128 by default) ops along its nesting: the
// batch's txn count plus the largest inner txn's count of compares, of
// success ops or of failure ops (etcd 3.4 passes an inner txn what the outer
// level left). A txn that conflicts waits for the next batch, and so does
// every later txn that conflicts with it: txns that touch a key go in the
// order they came.
#pragma once

#include "conch/policies/transport.hpp"

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace conch::detail {

/// How big one batch may grow.
struct batch_limits {
  std::size_t max_ops = 128;         ///< etcd's default --max-txn-ops, along the nesting
  std::size_t max_bytes = 1u << 20;  ///< keys and values; etcd takes 1.5 MiB requests by default
};

/// The keys a txn touches, by whether it writes them: [key, end) where an
/// empty end is the key alone and nullopt is every key from `key` on.
class touched_keys {
 public:
  struct span {
    std::string_view key;
    std::optional<std::string_view> end;  ///< nullopt: to the end of the keyspace
    bool single = true;
  };

  /// Whether `t` reads or compares a key this set writes, or writes one it touches.
  bool conflicts(const txn_request& t) const {
    bool hit = false;
    visit(t, [&](const span& s, bool write) { hit = hit || overlaps(s, write); });
    return hit;
  }
  void add(const txn_request& t) {
    visit(t, [&](const span& s, bool write) { add(s, write); });
  }

  /// Calls `f(span, writes)` for each compare and op of `t` (both branches).
  template <class F>
  static void visit(const txn_request& t, F&& f) {
    for (const auto& c : t.compares) f(make(c.key, c.range_end), false);
    for (const auto* ops : {&t.success, &t.failure})
      for (const auto& op : *ops) {
        if (const auto* r = std::get_if<range_request>(&op)) f(make(r->key, r->range_end), false);
        if (const auto* p = std::get_if<put_request>(&op)) f(make(p->key, {}), true);
        if (const auto* d = std::get_if<delete_request>(&op)) f(make(d->key, d->range_end), true);
      }
  }

 private:
  static span make(std::string_view key, std::string_view range_end) {
    if (range_end.empty()) return {key, key, true};
    if (range_end == std::string_view("\0", 1)) return {key, std::nullopt, false};
    return {key, range_end, false};
  }
  static bool below_end(std::string_view k, const span& s) {
    return s.single ? k == s.key : !s.end || k < *s.end;
  }
  static bool meet(const span& a, const span& b) {
    return a.key <= b.key ? below_end(b.key, a) : below_end(a.key, b);
  }

  bool overlaps(const span& s, bool write) const {
    for (const auto& [r, w] : ranges_)
      if ((w || write) && meet(r, s)) return true;
    if (s.single) {
      auto it = points_.find(s.key);
      return it != points_.end() && (it->second || write);
    }
    for (auto it = points_.lower_bound(s.key); it != points_.end() && below_end(it->first, s); ++it)
      if (it->second || write) return true;
    return false;
  }
  void add(const span& s, bool write) {
    if (!s.single) {
      ranges_.push_back({s, write});
      return;
    }
    auto [it, fresh] = points_.try_emplace(s.key, write);
    if (!fresh) it->second = it->second || write;
  }

  std::map<std::string_view, bool> points_;    // single keys: written?
  std::vector<std::pair<span, bool>> ranges_;  // key ranges: written?
};

/// The bytes a txn puts on the wire, near enough to keep a batch under
/// etcd's request size limit.
inline std::size_t txn_bytes(const txn_request& t) {
  std::size_t n = 0;
  for (const auto& c : t.compares) n += c.key.size() + c.range_end.size() + c.text.size() + 16;
  for (const auto* ops : {&t.success, &t.failure})
    for (const auto& op : *ops)
      std::visit(
          [&](const auto& r) {
            n += r.key.size() + 16;
            if constexpr (requires { r.value; }) n += r.value.size();
            if constexpr (requires { r.range_end; }) n += r.range_end.size();
          },
          op);
  return n;
}

/// The ops one level of a txn spends of --max-txn-ops, as etcd counts them.
inline std::size_t txn_ops(const txn_request& t) {
  return std::max({t.compares.size(), t.success.size(), t.failure.size()});
}

/// Which of `waiting` (txns in the order they came) go in the next batch,
/// by index, in that order: the first always (a batch of one is sent as a
/// plain txn); each later one unless it conflicts with one before it (taken
/// or not), or the batch would exceed the op count or byte budget.
/// `waiting[i]` must stay valid during the call (the result refers to none).
inline std::vector<std::size_t> compose_batch(const std::vector<const txn_request*>& waiting,
                                              batch_limits limits = {}) {
  std::vector<std::size_t> batch;
  touched_keys seen;
  std::size_t bytes = 0, widest = 0;
  for (std::size_t i = 0; i < waiting.size(); ++i) {
    const txn_request& t = *waiting[i];
    const std::size_t size = txn_bytes(t), ops = std::max(widest, txn_ops(t));
    if (!batch.empty() &&
        (bytes + size > limits.max_bytes || batch.size() + 1 + ops > limits.max_ops))
      break;
    if (batch.empty() || !seen.conflicts(t)) {
      batch.push_back(i);
      bytes += size;
      widest = ops;
    }
    seen.add(t);
  }
  return batch;
}

}  // namespace conch::detail
