// tests/invariant/overlap.hpp — the interval analysis behind the invariant
// harness: how many holders ran at once, when more than allowed did, whether
// each such stretch is excused by an induced loss, and whether fencing tokens
// only ever grew. Pure: no I/O, times are plain nanoseconds on one clock
// (CLOCK_MONOTONIC of the machine every process runs on).
//
// An interval is one child's run, [start, end): from the start record it wrote
// before doing anything to the end record it wrote before exiting — or, for a
// child killed by SIGKILL (which writes nothing), to the instant it was seen
// dead. Two intervals that touch (one ends at t, the next starts at t) do not
// overlap.
//
//   auto report = judge_overlap(intervals, capacity, windows, bound);
//   if (!report.ok()) print(report.stretches[report.unexcused[0]]);
//   auto breaks = token_breaks(intervals);   // empty when tokens only grew
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace conch::invariant {

/// Nanoseconds on the shared monotonic clock.
using nanos = std::int64_t;

inline constexpr nanos ms = 1'000'000;

/// One child's run while its wrapper held an office or a slot.
struct interval {
  std::string holder{};    ///< the wrapper that ran it
  std::int64_t token = 0;  ///< CONCH_REV: the fencing token
  int slot = 0;            ///< CONCH_SLOT (0 for an office)
  nanos start = 0;
  nanos end = 0;              ///< exclusive
  bool observed_end = false;  ///< no end record: the instant it was seen dead (an upper bound)
};

/// A stretch of time during which more than `capacity` intervals ran.
struct stretch {
  nanos begin = 0;
  nanos end = 0;
  int peak = 0;                        ///< the most intervals alive at once in it
  std::vector<std::size_t> members{};  ///< every interval alive at some point of it
  nanos length() const { return end - begin; }
};

namespace detail_overlap {
struct edge {
  nanos at;
  int delta;  // -1 end, +1 start: ends sort first, so touching intervals never overlap
  std::size_t index;
  bool operator<(const edge& o) const {
    return std::tie(at, delta, index) < std::tie(o.at, o.delta, o.index);
  }
};

inline std::vector<edge> edges_of(const std::vector<interval>& xs) {
  std::vector<edge> es;
  es.reserve(xs.size() * 2);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const nanos end = std::max(xs[i].start, xs[i].end);
    if (end == xs[i].start) continue;  // empty: never alive
    es.push_back({xs[i].start, +1, i});
    es.push_back({end, -1, i});
  }
  std::sort(es.begin(), es.end());
  return es;
}
}  // namespace detail_overlap

/// The most intervals alive at any one instant.
inline int max_concurrency(const std::vector<interval>& xs) {
  int alive = 0, most = 0;
  for (const auto& e : detail_overlap::edges_of(xs)) {
    alive += e.delta;
    most = std::max(most, alive);
  }
  return most;
}

/// How many intervals are alive at instant `t`.
inline int alive_at(const std::vector<interval>& xs, nanos t) {
  int n = 0;
  for (const auto& x : xs)
    if (x.start <= t && t < x.end) ++n;
  return n;
}

/// Every maximal stretch during which more than `capacity` intervals ran, in time order.
inline std::vector<stretch> excess_stretches(const std::vector<interval>& xs, int capacity) {
  std::vector<stretch> out;
  std::set<std::size_t> alive;
  bool open = false;
  stretch cur;
  const auto es = detail_overlap::edges_of(xs);
  for (std::size_t i = 0; i < es.size();) {
    // All edges of one instant first: a handover at t (one ends, one starts)
    // neither ends a stretch nor starts one.
    const nanos t = es[i].at;
    std::vector<std::size_t> started;
    for (; i < es.size() && es[i].at == t; ++i) {
      if (es[i].delta > 0) {
        alive.insert(es[i].index);
        started.push_back(es[i].index);
      } else {
        alive.erase(es[i].index);
      }
    }
    const int n = static_cast<int>(alive.size());
    if (!open && n > capacity) {
      open = true;
      cur = stretch{t, t, n, std::vector<std::size_t>(alive.begin(), alive.end())};
    } else if (open && n > capacity) {
      cur.peak = std::max(cur.peak, n);
      cur.members.insert(cur.members.end(), started.begin(), started.end());
    } else if (open) {
      open = false;
      cur.end = t;
      std::sort(cur.members.begin(), cur.members.end());
      cur.members.erase(std::unique(cur.members.begin(), cur.members.end()), cur.members.end());
      out.push_back(std::move(cur));
    }
  }
  return out;  // every interval ends, so no stretch is left open
}

/// The time after an induced loss event during which excess overlap is
/// excused: [begin, end] where begin is when the fault was applied and end
/// the latest instant its effects may last (the stated window).
struct window {
  nanos begin = 0;
  nanos end = 0;
  std::string cause{};
};

/// Windows that overlap or touch merged into one (causes joined by "; ").
inline std::vector<window> merge_windows(std::vector<window> ws) {
  std::sort(ws.begin(), ws.end(),
            [](const window& a, const window& b) { return a.begin < b.begin; });
  std::vector<window> out;
  for (auto& w : ws) {
    if (!out.empty() && w.begin <= out.back().end) {
      out.back().end = std::max(out.back().end, w.end);
      out.back().cause += "; " + w.cause;
    } else {
      out.push_back(std::move(w));
    }
  }
  return out;
}

/// Whether [s.begin, s.end] lies inside one window of the merged set.
inline bool excused(const stretch& s, const std::vector<window>& merged) {
  return std::any_of(merged.begin(), merged.end(),
                     [&](const window& w) { return w.begin <= s.begin && s.end <= w.end; });
}

/// The causes of every window that intersects `s` (for reports).
inline std::vector<std::string> causes_near(const stretch& s, const std::vector<window>& ws) {
  std::vector<std::string> out;
  for (const auto& w : ws)
    if (w.begin <= s.end && s.begin <= w.end) out.push_back(w.cause);
  return out;
}

/// The verdict on "at most `capacity` at once, except within a stated window
/// after a loss, and never for longer than `bound`".
struct overlap_report {
  int capacity = 0;
  int max_concurrency = 0;
  std::vector<stretch> stretches;      ///< every excess stretch
  std::vector<std::size_t> unexcused;  ///< stretches outside every window (indices into stretches)
  std::vector<std::size_t> too_long;   ///< stretches longer than the bound
  nanos longest = 0;                   ///< the longest stretch (0 when there is none)
  bool ok() const { return unexcused.empty() && too_long.empty(); }
};

inline overlap_report judge_overlap(const std::vector<interval>& xs, int capacity,
                                    std::vector<window> windows, nanos bound) {
  overlap_report r;
  r.capacity = capacity;
  r.max_concurrency = max_concurrency(xs);
  r.stretches = excess_stretches(xs, capacity);
  const auto merged = merge_windows(std::move(windows));
  for (std::size_t i = 0; i < r.stretches.size(); ++i) {
    const auto& s = r.stretches[i];
    r.longest = std::max(r.longest, s.length());
    if (!excused(s, merged)) r.unexcused.push_back(i);
    if (s.length() > bound) r.too_long.push_back(i);
  }
  return r;
}

/// Two intervals of one slot, in order of start, whose tokens did not grow.
struct token_break {
  std::size_t earlier = 0;
  std::size_t later = 0;
};

/// Per slot (an office is slot 0), in order of start: every token is
/// strictly greater than the one before. Returns each pair that is not.
inline std::vector<token_break> token_breaks(const std::vector<interval>& xs) {
  std::vector<std::size_t> order(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(xs[a].slot, xs[a].start, a) < std::tie(xs[b].slot, xs[b].start, b);
  });
  std::vector<token_break> out;
  for (std::size_t k = 1; k < order.size(); ++k) {
    const auto& a = xs[order[k - 1]];
    const auto& b = xs[order[k]];
    if (a.slot == b.slot && b.token <= a.token) out.push_back({order[k - 1], order[k]});
  }
  return out;
}

/// Handover gaps: for each interval that ended while others waited, how long
/// until the next interval (of any slot) started. Returns the longest gap
/// from an end to the first start after it, among ends in [from, to).
inline nanos longest_handover(const std::vector<interval>& xs, nanos from, nanos to) {
  std::vector<nanos> starts;
  for (const auto& x : xs) starts.push_back(x.start);
  std::sort(starts.begin(), starts.end());
  nanos worst = 0;
  for (const auto& x : xs) {
    if (x.end < from || x.end >= to) continue;
    auto it = std::lower_bound(starts.begin(), starts.end(), x.end);
    if (it != starts.end()) worst = std::max(worst, *it - x.end);
  }
  return worst;
}

}  // namespace conch::invariant
