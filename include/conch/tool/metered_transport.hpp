// conch/tool/metered_transport.hpp — a transport that times every etcd call.
//
// Wraps another transport (the etcd one) and records, per method, the call
// latency and the errors by code into a metrics registry; lease keepalive
// answers count as renewals. It is a transport itself, so a recipe runs on it
// unchanged (conchd's policies use it when --metrics is given).
//
//   conch::tool::metered_transport<conch::etcd_transport> t{etcd, &registry};
#pragma once

#include "conch/policies/transport.hpp"
#include "conch/result.hpp"
#include "conch/tool/metrics.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace conch::tool {

/// Declares the families metered_transport writes.
inline void describe_etcd_metrics(metrics_registry& m) {
  m.describe("conch_etcd_request_duration_seconds", metric_type::histogram,
             "Latency of etcd calls by method (range, txn, txn_batch, lease_grant, ...).",
             latency_buckets());
  m.describe("conch_etcd_request_errors_total", metric_type::counter,
             "Failed etcd calls by method and error code.");
  m.describe("conch_lease_renewals_total", metric_type::counter,
             "Lease keepalive answers received (each one renews the session's lease).");
}

template <class Inner>
class metered_transport {
 public:
  metered_transport(Inner& inner, metrics_registry* m) : inner_(inner), m_(m) {}

  auto range(const range_request& r, deadline d) {
    return timed("range", [&] { return inner_.range(r, d); });
  }
  auto put(const put_request& r, deadline d) {
    return timed("put", [&] { return inner_.put(r, d); });
  }
  auto delete_range(const delete_request& r, deadline d) {
    return timed("delete_range", [&] { return inner_.delete_range(r, d); });
  }
  auto txn(const txn_request& r, deadline d) {
    return timed("txn", [&] { return inner_.txn(r, d); });
  }
  /// Only where the inner transport batches txns (conch::txn_batching).
  auto txn_batch(const std::vector<txn_request>& b, deadline d) requires txn_batching<Inner> {
    return timed("txn_batch", [&] { return inner_.txn_batch(b, d); });
  }
  auto lease_grant(std::int64_t ttl, deadline d) {
    return timed("lease_grant", [&] { return inner_.lease_grant(ttl, d); });
  }
  auto lease_grant(std::int64_t ttl, lease_id id, deadline d,
                   const std::function<void()>& sending) requires requires(Inner& t) {
    t.lease_grant(ttl, id, d, sending);
  }
  {
    return timed("lease_grant", [&] { return inner_.lease_grant(ttl, id, d, sending); });
  }
  auto lease_revoke(lease_id id, deadline d) {
    return timed("lease_revoke", [&] { return inner_.lease_revoke(id, d); });
  }
  auto lease_time_to_live(lease_id id, deadline d) {
    return timed("lease_time_to_live", [&] { return inner_.lease_time_to_live(id, d); });
  }
  auto watch(const watch_request& r) { return inner_.watch(r); }
  /// Only where the inner transport carries watch sets (conch::watch_sets).
  auto watch_set() requires watch_sets<Inner> { return inner_.watch_set(); }
  deadline default_deadline() { return inner_.default_deadline(); }

  /// Keepalive answers with a TTL are renewals; errors are counted.
  template <class Stream>
  class keepalive_stream_type {
   public:
    keepalive_stream_type(Stream s, metrics_registry* m) : s_(std::move(s)), m_(m) {}
    result<void> send() { return s_.send(); }
    result<std::int64_t> next(deadline d) {
      auto r = s_.next(d);
      if (m_ && r && *r > 0) m_->add("conch_lease_renewals_total");
      if (m_ && !r)
        m_->add("conch_etcd_request_errors_total",
                {{"method", "keepalive"}, {"code", to_string(r.error().code)}});
      return r;
    }
    void cancel() noexcept { s_.cancel(); }

   private:
    Stream s_;
    metrics_registry* m_;
  };
  auto keepalive(lease_id id) {
    return keepalive_stream_type<decltype(inner_.keepalive(id))>{inner_.keepalive(id), m_};
  }

  Inner& inner() noexcept { return inner_; }

 private:
  template <class F>
  auto timed(const char* method, F&& call) {
    const auto start = std::chrono::steady_clock::now();
    auto r = call();
    if (m_) {
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      m_->observe("conch_etcd_request_duration_seconds", {{"method", method}}, took.count());
      if (!r)
        m_->add("conch_etcd_request_errors_total",
                {{"method", method}, {"code", to_string(r.error().code)}});
    }
    return r;
  }

  Inner& inner_;
  metrics_registry* m_;
};

}  // namespace conch::tool
