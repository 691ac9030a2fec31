// conch/etcd/convert.hpp — conch's etcd value types <-> etcd's protobuf
// messages. Plain field copies; the enums line up with etcd's by construction.
#pragma once

#include "conch/policies/transport.hpp"
#include "conch/proto/rpc.pb.h"

#include <cstddef>
#include <optional>
#include <variant>
#include <vector>

namespace conch::detail {

namespace pb = ::etcdserverpb;

inline key_value from_pb(const ::mvccpb::KeyValue& kv) {
  return {kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease()};
}

inline void to_pb(const range_request& r, pb::RangeRequest& out) {
  out.set_key(r.key);
  out.set_range_end(r.range_end);
  out.set_limit(r.limit);
  out.set_revision(r.at_revision);
  out.set_sort_order(static_cast<pb::RangeRequest::SortOrder>(r.order));
  out.set_sort_target(static_cast<pb::RangeRequest::SortTarget>(r.target));
  out.set_serializable(r.serializable);
  out.set_keys_only(r.keys_only);
  out.set_count_only(r.count_only);
  out.set_min_create_revision(r.min_create_revision);
  out.set_max_create_revision(r.max_create_revision);
}

inline void to_pb(const put_request& r, pb::PutRequest& out) {
  out.set_key(r.key);
  out.set_value(r.value);
  out.set_lease(r.lease);
  out.set_prev_kv(r.prev_kv);
  out.set_ignore_value(r.ignore_value);
  out.set_ignore_lease(r.ignore_lease);
}

inline void to_pb(const delete_request& r, pb::DeleteRangeRequest& out) {
  out.set_key(r.key);
  out.set_range_end(r.range_end);
  out.set_prev_kv(r.prev_kv);
}

inline void to_pb(const compare& c, pb::Compare& out) {
  out.set_key(c.key);
  out.set_range_end(c.range_end);
  out.set_result(static_cast<pb::Compare::CompareResult>(c.rel));
  out.set_target(static_cast<pb::Compare::CompareTarget>(c.what));
  switch (c.what) {
    case compare::target::version:
      out.set_version(c.number);
      break;
    case compare::target::create:
      out.set_create_revision(c.number);
      break;
    case compare::target::mod:
      out.set_mod_revision(c.number);
      break;
    case compare::target::value:
      out.set_value(c.text);
      break;
    case compare::target::lease:
      out.set_lease(c.number);
      break;
  }
}

inline void to_pb(const request_op& op, pb::RequestOp& out) {
  std::visit(
      [&](const auto& r) {
        using R = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<R, range_request>)
          to_pb(r, *out.mutable_request_range());
        else if constexpr (std::is_same_v<R, put_request>)
          to_pb(r, *out.mutable_request_put());
        else
          to_pb(r, *out.mutable_request_delete_range());
      },
      op);
}

inline void to_pb(const txn_request& t, pb::TxnRequest& out) {
  for (const auto& c : t.compares) to_pb(c, *out.add_compare());
  for (const auto& op : t.success) to_pb(op, *out.add_success());
  for (const auto& op : t.failure) to_pb(op, *out.add_failure());
}

/// Independent txns as the success ops of one txn with no compares.
inline void to_pb(const std::vector<txn_request>& batch, pb::TxnRequest& out) {
  for (const auto& t : batch) to_pb(t, *out.add_success()->mutable_request_txn());
}

inline range_response from_pb(const pb::RangeResponse& r) {
  range_response out;
  out.header_revision = r.header().revision();
  out.kvs.reserve(static_cast<std::size_t>(r.kvs_size()));
  for (const auto& kv : r.kvs()) out.kvs.push_back(from_pb(kv));
  out.more = r.more();
  out.count = r.count();
  return out;
}

inline put_response from_pb(const pb::PutResponse& r) {
  put_response out;
  out.header_revision = r.header().revision();
  if (r.has_prev_kv()) out.prev_kv = from_pb(r.prev_kv());
  return out;
}

inline delete_response from_pb(const pb::DeleteRangeResponse& r) {
  delete_response out;
  out.header_revision = r.header().revision();
  out.deleted = r.deleted();
  for (const auto& kv : r.prev_kvs()) out.prev_kvs.push_back(from_pb(kv));
  return out;
}

inline txn_response from_pb(const pb::TxnResponse& r) {
  txn_response out;
  out.header_revision = r.header().revision();
  out.succeeded = r.succeeded();
  for (const auto& op : r.responses()) {
    if (op.has_response_range())
      out.responses.emplace_back(from_pb(op.response_range()));
    else if (op.has_response_put())
      out.responses.emplace_back(from_pb(op.response_put()));
    else
      out.responses.emplace_back(from_pb(op.response_delete_range()));
  }
  return out;
}

/// The inner answers of a batch (see to_pb above), each with the batch's
/// revision: etcd leaves nested headers empty. Empty if the shape is not a
/// batch's.
inline std::vector<txn_response> batch_from_pb(const pb::TxnResponse& r, std::size_t expected) {
  std::vector<txn_response> out;
  if (static_cast<std::size_t>(r.responses_size()) != expected) return out;
  out.reserve(expected);
  for (const auto& op : r.responses()) {
    if (!op.has_response_txn()) return {};
    out.push_back(from_pb(op.response_txn()));
    out.back().header_revision = r.header().revision();
  }
  return out;
}

inline void to_pb(const watch_request& w, revision start, pb::WatchCreateRequest& out) {
  out.set_key(w.key);
  out.set_range_end(w.range_end);
  out.set_start_revision(start);
  out.set_progress_notify(w.progress_notify);
  out.set_prev_kv(w.prev_kv);
  if (w.no_put) out.add_filters(pb::WatchCreateRequest::NOPUT);
  if (w.no_delete) out.add_filters(pb::WatchCreateRequest::NODELETE);
}

inline watch_event from_pb(const ::mvccpb::Event& e) {
  watch_event out;
  out.type = e.type() == ::mvccpb::Event::DELETE ? watch_event::kind::del : watch_event::kind::put;
  out.kv = from_pb(e.kv());
  if (e.has_prev_kv()) out.prev_kv = from_pb(e.prev_kv());
  return out;
}

}  // namespace conch::detail
