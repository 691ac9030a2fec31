// conch/etcd/watch_set.hpp — several etcd watches on one stream.
//
// Each watch is named by an id the caller picks (etcd 3.4 accepts a
// client-chosen watch_id), so adding one is a single message on a stream
// that is already open: no new gRPC call, no round trip waited for, no
// thread. Removing one is a cancel message. When the gRPC stream breaks the
// set opens a new one and creates every watch again from one past the last
// event it delivered for it, so each watch's events come once, in order.
// A watch whose start has been compacted away, or that etcd refuses, ends
// alone (next() says so, with its id); the others go on. A set with no
// watch holds no call: the first add() opens one (a session guarding keys
// for a moment only, as a short `conch sema -- CMD` does, costs etcd no
// stream).
#pragma once

#include "conch/etcd/connection.hpp"
#include "conch/etcd/convert.hpp"
#include "conch/etcd/duplex.hpp"
#include "conch/etcd/status.hpp"
#include "conch/etcd/watch.hpp"
#include "conch/policies/transport.hpp"
#include "conch/proto/rpc.grpc.pb.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace conch::detail {

class etcd_watch_set {
 public:
  explicit etcd_watch_set(std::shared_ptr<grpc_connection> conn)
      : s_(std::make_unique<state>(std::move(conn))) {}

  /// Adds watch `id` (positive, never used before in this set) from
  /// `req.start_revision` (which must be set: a resumed stream starts there).
  /// Any thread; returns at once.
  void add(std::int64_t id, const watch_request& req) {
    state& s = *s_;
    std::lock_guard lock{s.m};
    auto [it, fresh] = s.watches.emplace(id, member{req, req.start_revision});
    if (!fresh) return;
    if (s.sent_creates) {
      s.wire.write(create_of(id, it->second));
    } else if (s.parked) {  // next() waits with no call open: it opens one now
      s.parked = false;
      s.wire.ring();
    }
  }

  /// Removes watch `id`: next() delivers nothing of it from now on. Any
  /// thread; returns at once.
  void remove(std::int64_t id) {
    state& s = *s_;
    std::lock_guard lock{s.m};
    if (s.watches.erase(id) == 0) return;
    std::erase_if(s.ready, [id](const watch_set_batch& b) { return b.id == id; });
    if (s.sent_creates) {
      ::etcdserverpb::WatchRequest cancel;
      cancel.mutable_cancel_request()->set_watch_id(id);
      s.wire.write(std::move(cancel));
    }
  }

  /// The next batch of one watch's events, or one watch's end, waiting at
  /// most until `d` (then errc::timed_out; the set goes on). wake() ends the
  /// wait early the same way. errc::cancelled after cancel(). One thread.
  result<watch_set_batch> next(deadline d) {
    state& s = *s_;
    for (;;) {
      {
        std::lock_guard lock{s.m};
        if (!s.ready.empty()) {
          watch_set_batch b = std::move(s.ready.front());
          s.ready.pop_front();
          return b;
        }
      }
      if (auto waited = turn(d); !waited) return std::move(waited).error();
    }
  }

  /// Makes a waiting next() return errc::timed_out soon; any thread.
  void wake() noexcept {
    s_->woken = true;
    std::lock_guard lock{s_->m};
    if (s_->parked)
      s_->wire.ring();  // its alarm is the whole wait
    else
      (void)s_->wire.set_alarm(std::chrono::steady_clock::now());
  }

  /// Makes next() return errc::cancelled promptly, now and from now on.
  void cancel() noexcept { s_->wire.cancel(); }

  std::size_t size() const {
    std::lock_guard lock{s_->m};
    return s_->watches.size();
  }

 private:
  using duplex = grpc_duplex<::etcdserverpb::WatchRequest, ::etcdserverpb::WatchResponse>;

  struct member {
    watch_request req;
    revision next_rev;             // one past the last event delivered
    bool token_refreshed = false;  // refused as if for a stale token, since created
  };

  struct state {
    explicit state(std::shared_ptr<grpc_connection> c) : conn(std::move(c)) {}
    std::shared_ptr<grpc_connection> conn;
    mutable std::mutex m;  // watches, ready, sent_creates
    std::map<std::int64_t, member> watches;
    std::deque<watch_set_batch> ready;
    bool sent_creates = false;  // the current call carries every watch
    bool parked = false;        // next() waits with no call open, for add()
    std::unique_ptr<::etcdserverpb::Watch::Stub> stub;
    grpc_connection::channel_ref ref;
    std::string token;
    bool token_refreshed = false;
    bool reopen_now = false;
    bool retry_pending = false;
    bool worked = false;  // the current call has answered
    std::chrono::milliseconds retry_delay{0};
    std::atomic<bool> woken{false};
    duplex wire;  // last: destroyed (drained) first
  };

  static ::etcdserverpb::WatchRequest create_of(std::int64_t id, const member& w) {
    ::etcdserverpb::WatchRequest create;
    auto& c = *create.mutable_create_request();
    to_pb(w.req, w.next_rev, c);
    c.set_watch_id(id);
    return create;
  }

  // One wait: (re)opens the call when it is idle, then handles one thing
  // that happened (a message may add to `ready`).
  result<void> turn(deadline d) {
    state& s = *s_;
    if (s.wire.cancelled()) return error{errc::cancelled, "watch set cancelled"};
    bool parked = false;  // this turn waits with no call open, for add()
    if (s.wire.idle() && !s.retry_pending) {
      {
        std::lock_guard lock{s.m};
        parked = s.watches.empty();
        if (parked && std::chrono::steady_clock::now() >= d)
          return error{errc::timed_out, "no watch event before the deadline"};
        s.parked = parked;
      }
      if (parked) {
        (void)s.wire.set_alarm(d);  // no call until add() rings, or until `d`
      } else if (auto opened = open(d); !opened) {
        if (opened.error().code == errc::timed_out) return opened.error();
        if (!watch_retryable(opened.error().code)) fail_all(opened.error());
        schedule_retry();
      }
    }
    const auto happened = s.wire.wait(d);
    if (parked) {  // an add() from now on finds the next turn looking at the watches
      std::lock_guard lock{s.m};
      s.parked = false;
    }
    switch (happened) {
      case duplex::event::timeout:
        return error{errc::timed_out, "no watch event before the deadline"};
      case duplex::event::alarm:
        s.retry_pending = false;
        if (s.woken.exchange(false)) return error{errc::timed_out, "woken"};
        break;
      case duplex::event::idle:
        if (s.woken.exchange(false)) return error{errc::timed_out, "woken"};
        break;
      case duplex::event::message:
        on_message(s.wire.message());
        break;
      case duplex::event::finished:
        on_finished();
        break;
    }
    return {};
  }

  result<void> open(deadline d) {
    state& s = *s_;
    if (s.conn->config_error()) return *s.conn->config_error();
    s.worked = false;  // a failure from here on is retried after a pause
    auto stub = fresh_watch_stub(s, d);
    if (!stub) return stub.error();
    std::lock_guard lock{s.m};
    if (!s.wire.open(watch_call(*stub), s.token)) return {};  // cancelled: the next turn reports it
    for (const auto& [id, w] : s.watches) s.wire.write(create_of(id, w));
    s.sent_creates = true;
    return {};
  }

  void schedule_retry() {
    state& s = *s_;
    s.retry_pending = pause_before_reopen(s.wire, s.worked, s.retry_delay);
  }

  // Every watch ends with `why` (the set can never carry them).
  void fail_all(const error& why) {
    state& s = *s_;
    std::lock_guard lock{s.m};
    for (const auto& [id, w] : s.watches) s.ready.push_back({id, {}, why});
    s.watches.clear();
  }

  void on_message(const ::etcdserverpb::WatchResponse& r) {
    state& s = *s_;
    s.worked = true;
    s.retry_delay = std::chrono::milliseconds(0);
    std::lock_guard lock{s.m};
    auto it = s.watches.find(r.watch_id());
    if (it == s.watches.end()) return;  // removed, or not a watch of ours
    member& w = it->second;
    if (r.compact_revision() != 0) {
      s.ready.push_back(
          {it->first,
           {},
           error{errc::compacted,
                 s.ref.endpoint + ": watch from revision " + std::to_string(w.next_rev) +
                     " impossible: history compacted up to " + std::to_string(r.compact_revision()),
                 r.compact_revision()}});
      s.watches.erase(it);
      return;
    }
    if (r.canceled()) {
      const std::string& reason = r.cancel_reason();
      // Once per watch until etcd creates it: another watch's success does
      // not prove this one was refused for a stale token.
      if (refresh_stale_token(*s.conn, s.token, w.token_refreshed, reason)) {
        s.reopen_now = true;  // a new call, every watch again
        s.wire.abort();
        return;
      }
      s.ready.push_back(
          {it->first,
           {},
           error{etcd_errc(grpc::StatusCode::UNKNOWN, reason),
                 s.ref.endpoint + ": etcd cancelled the watch on " + w.req.key + ": " +
                     (reason.empty() ? std::string("no reason given") : reason)}});
      s.watches.erase(it);
      return;
    }
    if (r.created()) {
      s.token_refreshed = false;
      w.token_refreshed = false;
      return;
    }
    watch_batch batch;
    batch.header_revision = r.header().revision();
    for (const auto& e : r.events()) {
      if (e.kv().mod_revision() < w.next_rev) continue;  // a resumed call never repeats
      batch.events.push_back(from_pb(e));
      w.next_rev = std::max(w.next_rev, e.kv().mod_revision() + 1);
    }
    if (r.events_size() == 0) w.next_rev = std::max(w.next_rev, r.header().revision() + 1);
    if (!batch.events.empty()) s.ready.push_back({it->first, std::move(batch), std::nullopt});
  }

  void on_finished() {
    state& s = *s_;
    const grpc::Status status = s.wire.status();
    s.wire.reset();
    {
      std::lock_guard lock{s.m};
      s.sent_creates = false;
    }
    if (s.wire.cancelled()) return;  // the next turn reports it
    if (std::exchange(s.reopen_now, false)) return;
    if (s.conn->has_auth() &&
        refresh_stale_token(*s.conn, s.token, s.token_refreshed, status.error_message(), false))
      return;
    auto err = s.conn->explain(status, s.ref.endpoint);
    if (!watch_retryable(err.code)) fail_all(err);
    if (err.code == errc::unavailable) s.conn->failover(s.ref);
    schedule_retry();
  }

  std::unique_ptr<state> s_;
};

}  // namespace conch::detail
