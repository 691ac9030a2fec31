// conch/policies/transport.hpp — the transport policy: how recipes talk to etcd.
//
// The value types below mirror the subset of etcd v3 that conch uses (KV, Txn,
// Lease, Watch) without pulling in gRPC. `conch::etcd_transport`
// (policies/etcd_transport.hpp) is the only model; the concept exists so the
// requirements are written down and checked, not to invite a fake.
//
// Streams (watch, keepalive) are pull-based: `next(deadline)` blocks at most
// until the deadline and returns `errc::timed_out` if nothing arrived;
// `cancel()` may be called from any thread and makes a blocked `next` return
// `errc::cancelled` promptly. Destroying a stream cancels it and never hangs.
#pragma once

#include "conch/result.hpp"

#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace conch {

using revision = std::int64_t;
using lease_id = std::int64_t;
/// Deadlines for transport calls are on the real monotonic clock: they bound
/// how long we wait for the network, which a fake clock cannot speed up.
using deadline = std::chrono::steady_clock::time_point;

struct key_value {
  std::string key;
  std::string value;
  revision create_revision = 0;
  revision mod_revision = 0;
  std::int64_t version = 0;
  lease_id lease = 0;
  friend bool operator==(const key_value&, const key_value&) = default;
};

/// The smallest key strictly greater than every key starting with `prefix`
/// ("\0" — i.e. the whole keyspace — for an empty prefix), as etcd expects in
/// range_end for a prefix query.
inline std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(prefix.back());
    if (c < 0xff) {
      ++c;
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');
}

struct range_request {
  enum class sort_target { key, version, create, mod, value };
  enum class sort_order { none, ascend, descend };
  std::string key;
  std::string range_end;  ///< empty: just `key`; prefix_end(key): the prefix
  std::int64_t limit = 0;
  revision at_revision = 0;  ///< 0: latest
  sort_order order = sort_order::none;
  sort_target target = sort_target::key;
  bool serializable = false;
  bool keys_only = false;
  bool count_only = false;
  revision min_create_revision = 0;
  revision max_create_revision = 0;

  static range_request prefix(std::string p) {
    range_request r;
    r.range_end = prefix_end(p);
    r.key = std::move(p);
    return r;
  }
};
struct range_response {
  revision header_revision = 0;
  std::vector<key_value> kvs;
  bool more = false;
  std::int64_t count = 0;
};

struct put_request {
  std::string key;
  std::string value;
  lease_id lease = 0;
  bool prev_kv = false;
  bool ignore_value = false;
  bool ignore_lease = false;
};
struct put_response {
  revision header_revision = 0;
  std::optional<key_value> prev_kv;
};

struct delete_request {
  std::string key;
  std::string range_end;
  bool prev_kv = false;
};
struct delete_response {
  revision header_revision = 0;
  std::int64_t deleted = 0;
  std::vector<key_value> prev_kvs;
};

/// One comparison of a txn. Build with the named helpers:
///   compare::create_revision(key) == rev, compare::version(key) == 0, ...
struct compare {
  enum class target { version, create, mod, value, lease };
  enum class relation { equal, greater, less, not_equal };
  std::string key;
  target what = target::version;
  relation rel = relation::equal;
  std::int64_t number = 0;  ///< for version/create/mod/lease
  std::string text;         ///< for value
  std::string range_end;

  struct builder {
    std::string key;
    target what;
    compare make(relation r, std::int64_t n) const { return {key, what, r, n, {}, {}}; }
    compare make(relation r, std::string v) const { return {key, what, r, 0, std::move(v), {}}; }
    friend compare operator==(const builder& b, std::int64_t n) {
      return b.make(relation::equal, n);
    }
    friend compare operator!=(const builder& b, std::int64_t n) {
      return b.make(relation::not_equal, n);
    }
    friend compare operator<(const builder& b, std::int64_t n) { return b.make(relation::less, n); }
    friend compare operator>(const builder& b, std::int64_t n) {
      return b.make(relation::greater, n);
    }
    friend compare operator==(const builder& b, std::string v) {
      return b.make(relation::equal, std::move(v));
    }
    friend compare operator!=(const builder& b, std::string v) {
      return b.make(relation::not_equal, std::move(v));
    }
  };
  static builder version(std::string k) { return {std::move(k), target::version}; }
  static builder create_revision(std::string k) { return {std::move(k), target::create}; }
  static builder mod_revision(std::string k) { return {std::move(k), target::mod}; }
  static builder value(std::string k) { return {std::move(k), target::value}; }
  static builder lease(std::string k) { return {std::move(k), target::lease}; }
};

using request_op = std::variant<range_request, put_request, delete_request>;
using response_op = std::variant<range_response, put_response, delete_response>;

struct txn_request {
  std::vector<compare> compares;
  std::vector<request_op> success;
  std::vector<request_op> failure;
};
struct txn_response {
  revision header_revision = 0;
  bool succeeded = false;
  std::vector<response_op> responses;
};

struct lease_grant_response {
  lease_id id = 0;
  std::int64_t ttl = 0;  ///< seconds, as granted
};
struct lease_ttl_response {
  lease_id id = 0;
  std::int64_t ttl = -1;  ///< remaining seconds; -1 when expired or unknown
  std::int64_t granted_ttl = 0;
  std::vector<std::string> keys;
};

struct watch_request {
  std::string key;
  std::string range_end;
  revision start_revision = 0;  ///< 0: from now
  bool prev_kv = false;
  bool progress_notify = false;
  bool no_put = false;
  bool no_delete = false;

  static watch_request prefix(std::string p, revision from = 0) {
    watch_request w;
    w.range_end = prefix_end(p);
    w.key = std::move(p);
    w.start_revision = from;
    return w;
  }
};
struct watch_event {
  enum class kind { put, del };
  kind type = kind::put;
  key_value kv;
  std::optional<key_value> prev_kv;
};
/// One delivery on a watch. `events` may be empty for a progress notification
/// (`header_revision` then tells how far the watch has seen).
struct watch_batch {
  revision header_revision = 0;
  std::vector<watch_event> events;
};

/// One delivery on a watch set (conch::watch_sets): a batch of events of
/// watch `id`, or that watch's end (`ended`; it is then no longer in the set).
struct watch_set_batch {
  std::int64_t id = 0;
  watch_batch batch;
  std::optional<error> ended;
};

/// Where and how to connect.
struct transport_options {
  std::vector<std::string> endpoints{"127.0.0.1:2379"};  ///< host:port, failover in order
  std::chrono::milliseconds call_timeout{5000};          ///< default per-call deadline
  std::chrono::milliseconds dial_timeout{2000};          ///< for the first connection
  std::string ca_file, cert_file, key_file;              ///< TLS when ca_file is set
  std::string user, password;                            ///< auth when user is set
};

// ---------------------------------------------------------------------------
// The concept.

/// A watch stream: resumes by itself after a stream break (from the last seen
/// revision + 1); reports `errc::compacted` (with error::compact_revision) when
/// the start revision is gone, after which it is finished.
template <class W>
concept watch_stream = requires(W& w, deadline d) {
  { w.next(d) } -> std::same_as<result<watch_batch>>;
  { w.cancel() }
  noexcept;
};

/// A lease keepalive stream: `send()` asks for one renewal, `next(d)` waits
/// for its answer (the new TTL in seconds; 0 means the lease is gone).
template <class K>
concept keepalive_stream = requires(K& k, deadline d) {
  { k.send() } -> std::same_as<result<void>>;
  { k.next(d) } -> std::same_as<result<std::int64_t>>;
  { k.cancel() }
  noexcept;
};

template <class T>
concept transport = requires(T& t, const range_request& rr, const put_request& pr,
                             const delete_request& dr, const txn_request& tr,
                             const watch_request& wr, std::int64_t ttl, lease_id id, deadline d) {
  { t.range(rr, d) } -> std::same_as<result<range_response>>;
  { t.put(pr, d) } -> std::same_as<result<put_response>>;
  { t.delete_range(dr, d) } -> std::same_as<result<delete_response>>;
  { t.txn(tr, d) } -> std::same_as<result<txn_response>>;
  { t.lease_grant(ttl, d) } -> std::same_as<result<lease_grant_response>>;
  { t.lease_revoke(id, d) } -> std::same_as<result<void>>;
  { t.lease_time_to_live(id, d) } -> std::same_as<result<lease_ttl_response>>;
  { t.keepalive(id) } -> keepalive_stream;
  { t.watch(wr) } -> watch_stream;
  { t.default_deadline() } -> std::same_as<deadline>;
};

/// An optional capability: independent txns sent as one write. Each inner
/// txn evaluates its own compares against the state before any of them
/// applies; the answers come back in order. No two may write one key (etcd
/// refuses the whole batch), none should read a key another writes (its
/// reads would see that write, its compares not), and the batch's txn count
/// plus its widest txn's op count stays within etcd's --max-txn-ops (128):
/// logic/txn_batch.hpp composes such batches. Code that uses it checks for it and sends each txn alone otherwise.
template <class T>
concept txn_batching = requires(T& t, const std::vector<txn_request>& batch, deadline d) {
  { t.txn_batch(batch, d) } -> std::same_as<result<std::vector<txn_response>>>;
};

/// Several watches on one stream, each named by a positive id its owner
/// picks and never reuses: add() and remove() return at once and may come
/// from any thread; next() (one thread) hands out one watch's events, or one
/// watch's end, until the deadline (errc::timed_out), or until wake() (the
/// same); cancel() ends it. A watch's start revision must be set: after a
/// broken stream each watch resumes past its last event.
template <class S>
concept watch_set_stream = requires(S& s, std::int64_t id, const watch_request& w, deadline d) {
  {s.add(id, w)};
  {s.remove(id)};
  { s.next(d) } -> std::same_as<result<watch_set_batch>>;
  { s.wake() }
  noexcept;
  { s.cancel() }
  noexcept;
};

/// An optional capability: watch sets. Code that uses it checks for it and
/// opens one stream per watch otherwise.
template <class T>
concept watch_sets = requires(T& t) {
  { t.watch_set() } -> watch_set_stream;
};

}  // namespace conch
