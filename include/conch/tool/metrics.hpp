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
#include <type_traits>
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
  /// Its labels as printed, `{job="a"}`, rendered once when the registry
  /// makes the series (empty: no labels, or rendered at each exposition).
  std::string labels_text{};
};

struct metric_family {
  std::string name, help;
  metric_type type = metric_type::counter;
  std::vector<double> bounds{};  ///< histogram upper bounds, ascending (+Inf implied)
  std::map<metric_labels, metric_series> series{};
};

namespace metrics_detail {

/// Appends a sample value: integers without a fraction, +Inf/-Inf/NaN spelled out.
inline void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  auto r = v == std::floor(v) && std::fabs(v) < 1e15
               ? std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(v))
               : std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

inline std::string number(double v) {
  std::string out;
  append_number(out, v);
  return out;
}

/// Appends a label value (\\, \", \n escaped) or help text (\\, \n).
inline void append_escaped(std::string& out, std::string_view s, bool quote) {
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
}

/// `{a="b",c="d"}`, or nothing without labels.
inline std::string labels_text(const metric_labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (const auto& [name, value] : labels) {
    if (out.size() > 1) out += ',';
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
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

/// One sample line: `name<suffix><labels> value`, with `le="<le>"` added to
/// the labels when `le` is not empty.
template <class Value>
void sample_line(std::string& out, const metric_family& f, std::string_view suffix,
                 const std::string& labels, std::string_view le, Value v) {
  out += f.name;
  out += suffix;
  if (!le.empty()) {
    if (labels.empty())
      out += '{';
    else
      out.append(labels, 0, labels.size() - 1).push_back(',');
    out += "le=\"";
    out += le;
    out += "\"}";
  } else {
    out += labels;
  }
  out += ' ';
  if constexpr (std::is_same_v<Value, double>)
    append_number(out, v);
  else
    out += std::to_string(v);
  out += '\n';
}

inline void histogram_lines(std::string& out, const metric_family& f,
                            const std::vector<std::string>& les, const std::string& labels,
                            const metric_series& s) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < les.size(); ++i) {
    cumulative += i < s.buckets.size() ? s.buckets[i] : 0;
    sample_line(out, f, "_bucket", labels, les[i], cumulative);
  }
  sample_line(out, f, "_sum", labels, {}, s.sum);
  sample_line(out, f, "_count", labels, {}, s.count);
}

/// Appends one family: HELP, TYPE and its samples.
inline void family_text(std::string& out, const metric_family& f) {
  out += "# HELP " + f.name + " ";
  append_escaped(out, f.help, false);
  out += "\n# TYPE " + f.name + " " + type_name(f.type) + "\n";
  std::vector<std::string> les;  // the buckets' le values, +Inf last
  if (f.type == metric_type::histogram) {
    for (double b : f.bounds) les.push_back(number(b));
    les.emplace_back("+Inf");
  }
  if (f.series.empty()) {
    if (f.type == metric_type::histogram)
      histogram_lines(out, f, les, {}, {});
    else
      out += f.name + " 0\n";
    return;
  }
  std::string scratch;
  for (const auto& [labels, s] : f.series) {
    const std::string& text =
        s.labels_text.empty() && !labels.empty() ? (scratch = labels_text(labels)) : s.labels_text;
    if (f.type == metric_type::histogram)
      histogram_lines(out, f, les, text, s);
    else
      sample_line(out, f, "", text, {}, s.value);
  }
}

}  // namespace metrics_detail

/// The text exposition of `families`, in the order given. A family with no
/// series and no labels prints one zero sample, so it is visible before use.
/// `size_hint`: the length of the last exposition, reserved up front.
inline std::string format_exposition(const std::vector<metric_family>& families,
                                     std::size_t size_hint = 0) {
  std::string out;
  out.reserve(size_hint + size_hint / 8);
  for (const auto& f : families) metrics_detail::family_text(out, f);
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
    if (auto* f = find(name)) series(*f, labels).value += v;
  }
  /// Gauge = v.
  void set(const std::string& name, const metric_labels& labels, double v) {
    std::lock_guard lock{mutex_};
    if (auto* f = find(name)) series(*f, labels).value = v;
  }
  /// Histogram: one observation.
  void observe(const std::string& name, const metric_labels& labels, double v) {
    std::lock_guard lock{mutex_};
    if (auto* f = find(name)) observe_into(series(*f, labels), f->bounds, v);
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
    std::string text = format_exposition(families_, last_size_);
    last_size_ = text.size();
    return text;
  }

 private:
  metric_family* find(const std::string& name) {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &families_[it->second];
  }
  // The series of `labels`, made (with its label text rendered) on first use.
  static metric_series& series(metric_family& f, const metric_labels& labels) {
    auto [it, made] = f.series.try_emplace(labels);
    if (made) it->second.labels_text = metrics_detail::labels_text(labels);
    return it->second;
  }

  mutable std::mutex mutex_;
  std::vector<metric_family> families_;
  std::map<std::string, std::size_t> index_;
  mutable std::size_t last_size_ = 0;  // the last exposition's length
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
