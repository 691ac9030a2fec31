// bench/stats.hpp — samples, percentiles and the cells of the results table.
//
// Percentiles are nearest-rank: p99 of 30 samples is the largest one, which
// is what a reader should expect of a short run on a shared machine.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace conch::bench {

/// Durations in milliseconds (or any other unit a row states).
class samples {
 public:
  void add(double v) { values_.push_back(v); }
  void add(std::chrono::steady_clock::duration d) {
    add(std::chrono::duration<double, std::milli>(d).count());
  }
  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  const std::vector<double>& values() const { return values_; }

  /// Nearest-rank percentile, q in (0, 100]; NaN when empty.
  double percentile(double q) const {
    if (values_.empty()) return std::nan("");
    std::vector<double> v = values_;
    std::sort(v.begin(), v.end());
    auto rank = static_cast<std::size_t>(std::ceil(q / 100.0 * static_cast<double>(v.size())));
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return v[rank - 1];
  }
  double p50() const { return percentile(50); }
  double p99() const { return percentile(99); }
  double sum() const {
    double s = 0;
    for (double v : values_) s += v;
    return s;
  }

  /// True when every value is finite and at least `floor` (sanity, not a target).
  bool sane(double floor = 0) const {
    if (values_.empty()) return false;
    for (double v : values_)
      if (!std::isfinite(v) || v < floor) return false;
    return true;
  }

 private:
  std::vector<double> values_;
};

inline std::string fixed(double v, int digits = 2) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
inline std::string ms(double v) { return fixed(v, v < 10 ? 2 : 1) + " ms"; }
inline std::string times(double v) { return fixed(v, v < 10 ? 2 : 1) + "×"; }

/// One line of the results table. Ratios are the point (absolute times on a
/// shared machine are noise); for a target stated in absolute terms the ratio
/// column carries the measured value the target is compared with.
struct row {
  std::string measurement;
  std::string p50;
  std::string p99;
  std::string baseline;
  std::string ratio;
  std::string target;
  std::string met;  ///< "yes", "NO", or "—" when there is no target
};

inline std::string verdict(bool met) { return met ? "yes" : "NO"; }

}  // namespace conch::bench
