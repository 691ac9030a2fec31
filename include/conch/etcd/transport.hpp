// conch/etcd/transport.hpp — the transport policy over etcd's v3
// gRPC API; the only backend conch has.
//
//   conch::etcd_transport etcd{{.endpoints = {"10.0.0.1:2379", "10.0.0.2:2379"}}};
//   auto put = etcd.put({.key = "conch/x", .value = "1"}, etcd.default_deadline());
//   if (!put) std::cerr << put.error().message << '\n';  // "10.0.0.2:2379: ..."
//   auto w = etcd.watch(conch::watch_request::prefix("conch/", put->header_revision + 1));
//   auto batch = w.next(std::chrono::steady_clock::now() + 5s);
//
// One transport is shared by reference between recipes and threads; all its
// calls and streams share one connection to the current endpoint, and move
// together to the next endpoint when it becomes unavailable. Failures come
// back as values naming the endpoint (conch::errc); bad options (no endpoint,
// unreadable TLS files) make every call fail with errc::invalid_argument, and
// check_options() reports them up front.
//
// Unary calls end by their deadline at the latest. Streams belong to one
// reader thread; cancel() (and a keepalive's send()) may come from any
// thread. A stream may outlive its transport.
#pragma once

#include "conch/etcd/connection.hpp"
#include "conch/etcd/convert.hpp"
#include "conch/etcd/keepalive.hpp"
#include "conch/etcd/watch.hpp"
#include "conch/etcd/watch_set.hpp"
#include "conch/policies/transport.hpp"
#include "conch/proto/rpc.grpc.pb.h"

#include <absl/synchronization/mutex.h>
#include <chrono>
#include <functional>
#include <grpc/support/log.h>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace conch {

/// A watch on an etcd_transport (see conch::watch_stream).
using etcd_watch_stream = detail::etcd_watch_stream;
/// Several watches on one stream of an etcd_transport (see conch::watch_sets).
using etcd_watch_set = detail::etcd_watch_set;
/// Renewals of one lease on an etcd_transport (see conch::keepalive_stream).
using etcd_keepalive_stream = detail::etcd_keepalive_stream;

class etcd_transport {
 public:
  using watch_type = etcd_watch_stream;
  using keepalive_type = etcd_keepalive_stream;

  /// Connects lazily: nothing is dialled before the first call.
  explicit etcd_transport(transport_options opts = {})
      : conn_(std::make_shared<detail::grpc_connection>(std::move(opts))) {}

  etcd_transport(const etcd_transport&) = delete;
  etcd_transport& operator=(const etcd_transport&) = delete;
  etcd_transport(etcd_transport&&) noexcept = default;
  etcd_transport& operator=(etcd_transport&&) noexcept = default;

  /// A one-line reason why `opts` cannot work (no endpoint, a bad endpoint,
  /// an unreadable TLS file), without dialling.
  static result<void> check_options(const transport_options& opts) {
    detail::grpc_connection probe(opts);
    if (probe.config_error()) return *probe.config_error();
    return {};
  }

  /// Silences gRPC's own logging (process-wide): conch's errors already
  /// carry gRPC's reasons, and tools keep stderr for their own diagnostics.
  static void quiet_grpc_log() {
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
    gpr_set_log_function([](gpr_log_func_args*) {});
  }

  /// Turns off abseil's mutex deadlock detection (process-wide; call before
  /// any thread starts). An abseil built without NDEBUG (Debian's) records
  /// the order of every pair of locks gRPC takes, with a stack trace per new
  /// pair, on every lock: CPU for a check that only finds bugs in gRPC.
  static void skip_mutex_deadlock_checks() {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }

  const transport_options& options() const { return conn_->options(); }
  /// The endpoint calls currently go to.
  std::string endpoint() const { return conn_->current_endpoint(); }
  deadline default_deadline() const {
    return std::chrono::steady_clock::now() + conn_->options().call_timeout;
  }

  result<range_response> range(const range_request& req, deadline d) {
    detail::pb::RangeRequest in;
    detail::to_pb(req, in);
    return named(call<range_response>(&detail::pb::KV::Stub::Range, in, d, true), req.key,
                 req.range_end);
  }

  result<put_response> put(const put_request& req, deadline d) {
    detail::pb::PutRequest in;
    detail::to_pb(req, in);
    return named(call<put_response>(&detail::pb::KV::Stub::Put, in, d, false), req.key, {});
  }

  result<delete_response> delete_range(const delete_request& req, deadline d) {
    detail::pb::DeleteRangeRequest in;
    detail::to_pb(req, in);
    return named(call<delete_response>(&detail::pb::KV::Stub::DeleteRange, in, d, false), req.key,
                 req.range_end);
  }

  result<txn_response> txn(const txn_request& req, deadline d) {
    detail::pb::TxnRequest in;
    detail::to_pb(req, in);
    return named(call<txn_response>(&detail::pb::KV::Stub::Txn, in, d, false),
                 req.compares.empty() ? std::string() : req.compares.front().key, {});
  }

  /// Independent txns as one write (conch::txn_batching): one txn with no
  /// compares whose success ops are `batch`, so one raft entry and one
  /// revision for all. Their answers in order, each with that revision. Fails
  /// as a whole (errc::invalid_argument) if two of them write one key, or if
  /// the txn count plus the widest txn's op count exceeds etcd's --max-txn-ops.
  result<std::vector<txn_response>> txn_batch(const std::vector<txn_request>& batch, deadline d) {
    detail::pb::TxnRequest in;
    detail::to_pb(batch, in);
    detail::pb::TxnResponse out;
    auto r = unary<detail::pb::KV>(&detail::pb::KV::Stub::Txn, in, out, d, false);
    if (!r) return named(result<std::vector<txn_response>>(std::move(r).error()), {}, {});
    auto answers = detail::batch_from_pb(out, batch.size());
    if (answers.size() != batch.size())
      return error{errc::internal, endpoint() + ": a txn batch's answer does not match it"};
    return answers;
  }

  /// Discards history before `rev` (watches from earlier revisions then fail
  /// with errc::compacted).
  result<void> compact(revision rev, deadline d, bool physical = false) {
    detail::pb::CompactionRequest in;
    in.set_revision(rev);
    in.set_physical(physical);
    detail::pb::CompactionResponse out;
    return unary<detail::pb::KV>(&detail::pb::KV::Stub::Compact, in, out, d, false);
  }

  result<lease_grant_response> lease_grant(std::int64_t ttl_seconds, deadline d) {
    return lease_grant(ttl_seconds, 0, d);
  }
  /// Grants lease `id` (0: etcd chooses); an id in use is refused.
  /// `sending`, if set, is called just before the request goes out on a
  /// connected channel: a write that needs the lease, sent after that, is
  /// most often applied after the grant (etcd serves the two concurrently).
  result<lease_grant_response> lease_grant(std::int64_t ttl_seconds, lease_id id, deadline d,
                                           const std::function<void()>& sending = {}) {
    detail::pb::LeaseGrantRequest in;
    in.set_ttl(ttl_seconds);
    in.set_id(id);
    detail::pb::LeaseGrantResponse out;
    auto r =
        unary<detail::pb::Lease>(&detail::pb::Lease::Stub::LeaseGrant, in, out, d, false, sending);
    if (!r) return std::move(r).error();
    if (!out.error().empty())
      return error{errc::internal, endpoint() + ": lease grant refused: " + out.error()};
    return lease_grant_response{out.id(), out.ttl()};
  }

  result<void> lease_revoke(lease_id id, deadline d) {
    detail::pb::LeaseRevokeRequest in;
    in.set_id(id);
    detail::pb::LeaseRevokeResponse out;
    return unary<detail::pb::Lease>(&detail::pb::Lease::Stub::LeaseRevoke, in, out, d, false);
  }

  /// ttl is -1 once the lease has expired or been revoked.
  result<lease_ttl_response> lease_time_to_live(lease_id id, deadline d, bool keys = false) {
    detail::pb::LeaseTimeToLiveRequest in;
    in.set_id(id);
    in.set_keys(keys);
    detail::pb::LeaseTimeToLiveResponse out;
    auto r = unary<detail::pb::Lease>(&detail::pb::Lease::Stub::LeaseTimeToLive, in, out, d, true);
    if (!r) return std::move(r).error();
    lease_ttl_response resp{out.id(), out.ttl(), out.grantedttl(), {}};
    for (const auto& k : out.keys()) resp.keys.push_back(k);
    return resp;
  }

  /// A keepalive stream for `id`; nothing is sent before its first send().
  etcd_keepalive_stream keepalive(lease_id id) { return {conn_, id}; }

  /// A watch; it starts when its next() is first called.
  etcd_watch_stream watch(const watch_request& req) { return {conn_, req}; }

  /// An empty watch set (conch::watch_sets); its stream opens at its first next().
  etcd_watch_set watch_set() { return etcd_watch_set{conn_}; }

  /// Reachability and credentials: one cheap read. A permission error counts
  /// as success (etcd answered and knew the user).
  result<void> ping(deadline d) {
    range_request probe;
    probe.key = "conch-ping";
    probe.count_only = true;
    auto r = range(probe, d);
    if (!r && r.error().code != errc::permission_denied) return std::move(r).error();
    return {};
  }

 private:
  // A permission denial names the user and what was asked for.
  template <class R>
  R named(R r, const std::string& key, const std::string& range_end) const {
    if (r || r.error().code != errc::permission_denied) return r;
    auto e = std::move(r).error();
    const auto& user = conn_->options().user;
    e.message += user.empty() ? " (no user: pass --user" : " (user '" + user + "'";
    if (range_end.empty())
      e.message += key.empty() ? "" : ", key '" + key + "'";
    else if (range_end == prefix_end(key))
      e.message += ", prefix '" + key + "'";
    else
      e.message += ", keys from '" + key + "' to '" + range_end + "'";
    e.message += ")";
    return e;
  }

  // One call of `method` on Service (see grpc_connection::unary); `sending`,
  // if set, is called on each attempt just before the request goes out on a
  // connected channel.
  template <class Service, class Method, class In, class Out>
  result<void> unary(Method method, const In& in, Out& out, deadline d, bool idempotent,
                     const std::function<void()>& sending = {}) {
    return conn_->unary(
        [&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& ctx) {
          out.Clear();
          auto stub = Service::NewStub(ch);
          if (sending) sending();
          return ((*stub).*method)(&ctx, in, &out);
        },
        d, idempotent);
  }

  template <class Response, class Method, class In>
  result<Response> call(Method method, const In& in, deadline d, bool idempotent) {
    typename response_of<Method>::type out;
    auto r = unary<detail::pb::KV>(method, in, out, d, idempotent);
    if (!r) return std::move(r).error();
    return detail::from_pb(out);
  }

  // The protobuf response type of a KV::Stub method.
  template <class M>
  struct response_of;
  template <class Stub, class In, class Out>
  struct response_of<grpc::Status (Stub::*)(grpc::ClientContext*, const In&, Out*)> {
    using type = Out;
  };

  std::shared_ptr<detail::grpc_connection> conn_;
};

static_assert(transport<etcd_transport>, "etcd_transport must model conch::transport");
static_assert(txn_batching<etcd_transport>, "etcd_transport sends txn batches");
static_assert(watch_sets<etcd_transport>, "etcd_transport carries watch sets");

}  // namespace conch
