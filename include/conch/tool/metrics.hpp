// conch/tool/metrics.hpp — counters, gauges and histograms, and the
// Prometheus text exposition format (version 0.0.4) they are scraped in.
//
// No HTTP here: the registry is plain data behind a mutex, and
// format_exposition() is a pure function of it (tool/metrics_server.hpp
// serves it). Families are declared once, series appear on first use.
//
//   conch::tool::metrics_registry m;
//   m.describe("conch_cron_ticks_claimed_total", metric_type::counter, "Ticks this daemon
//   claimed."); m.add("conch_cron_ticks_claimed_total", {{"job", "backup"}});
//   m.describe("conch_cron_run_duration_seconds", metric_type::histogram, "...", {0.1, 1, 10});
//   m.observe("conch_cron_run_duration_seconds", {}, 0.42);
//   std::string text = m.exposition();
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conch::tool {

enum class metric_type { counter, gauge, histogram };

/// Label name/value pairs, in the order they are printed.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// One labelled series: a value, or a histogram's buckets, sum and count.
struct metric_series {
  double value = 0;
  std::vector<std::uint64_t> buckets{};  ///< per upper bound, not cumulative
  double sum = 0;
  std::uint64_t count = 0;
};

struct metric_family {
  std::string name, help;
  metric_type type = metric_type::counter;
  std::vector<double> bounds{};  ///< histogram upper bounds, ascending (+Inf implied)
  std::map<metric_labels, metric_series> series{};
};

namespace metrics_detail {

/// A sample value: integers without a fraction, +Inf/-Inf/NaN spelled out.
inline std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return std::to_string(static_cast<std::int64_t>(v));
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// Escapes a label value (\\, \", \n) or help text (\\, \n).
inline std::string escape(std::string_view s, bool quote) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quote)
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

inline std::string labels_text(const metric_labels& labels,
                               const std::pair<std::string, std::string>* extra = nullptr) {
  if (labels.empty() && !extra) return {};
  std::string out = "{";
  auto one = [&](const std::pair<std::string, std::string>& l) {
    if (out.size() > 1) out += ',';
    out += l.first + "=\"" + escape(l.second, true) + "\"";
  };
  for (const auto& l : labels) one(l);
  if (extra) one(*extra);
  return out + "}";
}

inline const char* type_name(metric_type t) {
  switch (t) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    case metric_type::histogram:
      return "histogram";
  }
  return "untyped";
}

inline void histogram_lines(std::string& out, const metric_family& f, const metric_labels& labels,
                            const metric_series& s) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= f.bounds.size(); ++i) {
    cumulative += i < s.buckets.size() ? s.buckets[i] : 0;
    const std::pair<std::string, std::string> le{
        "le", i < f.bounds.size() ? number(f.bounds[i]) : "+Inf"};
    out += f.name + "_bucket" + labels_text(labels, &le) + " " + std::to_string(cumulative) + "\n";
  }
  out += f.name + "_sum" + labels_text(labels) + " " + number(s.sum) + "\n";
  out += f.name + "_count" + labels_text(labels) + " " + std::to_string(s.count) + "\n";
}

}  // namespace metrics_detail

/// The text exposition of `families`, in the order given. A family with no
/// series and no labels prints one zero sample, so it is visible before use.
inline std::string format_exposition(const std::vector<metric_family>& families) {
  std::string out;
  for (const auto& f : families) {
    out += "# HELP " + f.name + " " + metrics_detail::escape(f.help, false) + "\n";
    out += "# TYPE " + f.name + " " + metrics_detail::type_name(f.type) + "\n";
    if (f.series.empty()) {
      if (f.type == metric_type::histogram)
        metrics_detail::histogram_lines(out, f, {}, {});
      else
        out += f.name + " 0\n";
      continue;
    }
    for (const auto& [labels, s] : f.series) {
      if (f.type == metric_type::histogram)
        metrics_detail::histogram_lines(out, f, labels, s);
      else
        out += f.name + metrics_detail::labels_text(labels) + " " +
               metrics_detail::number(s.value) + "\n";
    }
  }
  return out;
}

/// Adds `v` to the histogram series `s` whose upper bounds are `bounds`.
inline void observe_into(metric_series& s, const std::vector<double>& bounds, double v) {
  if (s.buckets.size() != bounds.size() + 1) s.buckets.assign(bounds.size() + 1, 0);
  std::size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++s.buckets[i];
  s.sum += v;
  ++s.count;
}

/// Families by name, safe to update from any thread.
class metrics_registry {
 public:
  /// Declares a family (again: no-op). Histograms take their upper bounds.
  void describe(const std::string& name, metric_type type, std::string help,
                std::vector<double> bounds = {}) {
    std::lock_guard lock{mutex_};
    if (index_.count(name)) return;
    index_[name] = families_.size();
    families_.push_back({name, std::move(help), type, std::move(bounds), {}});
  }
  /// Counter or gauge += v. Undeclared names are ignored.
  void add(const std::string& name, const metric_labels& labels = {}, double v = 1) {
    std::lock_guard lock{mutex_};
    if (auto* f = find(name)) f->series[labels].value += v;
  }
  /// Gauge = v.
  void set(const std::string& name, const metric_labels& labels, double v) {
    std::lock_guard lock{mutex_};
    if (auto* f = find(name)) f->series[labels].value = v;
  }
  /// Histogram: one observation.
  void observe(const std::string& name, const metric_labels& labels, double v) {
    std::lock_guard lock{mutex_};
    if (auto* f = find(name)) observe_into(f->series[labels], f->bounds, v);
  }
  /// The current value of a counter or gauge series (0 if never touched).
  double value(const std::string& name, const metric_labels& labels = {}) const {
    std::lock_guard lock{mutex_};
    auto it = index_.find(name);
    if (it == index_.end()) return 0;
    auto s = families_[it->second].series.find(labels);
    return s == families_[it->second].series.end() ? 0 : s->second.value;
  }
  std::string exposition() const {
    std::lock_guard lock{mutex_};
    return format_exposition(families_);
  }

 private:
  metric_family* find(const std::string& name) {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &families_[it->second];
  }

  mutable std::mutex mutex_;
  std::vector<metric_family> families_;
  std::map<std::string, std::size_t> index_;
};

/// Latency buckets (seconds) for etcd calls and lags: 1 ms to 10 s.
inline std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}
/// Run-duration buckets (seconds): 10 ms to an hour.
inline std::vector<double> duration_buckets() {
  return {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
}

}  // namespace conch::tool
