// conch/etcd/watch.hpp — an etcd watch that survives stream breaks.
//
// The stream remembers the next revision it needs (one past the last event,
// or past a progress notification's revision) and, when the gRPC stream
// breaks (etcd restarted, endpoint lost), opens a new one from there, so the
// caller sees every event once, in order. A start revision that has been
// compacted away ends the watch with errc::compacted and the compact revision.
#pragma once

#include "conch/etcd/connection.hpp"
#include "conch/etcd/convert.hpp"
#include "conch/etcd/duplex.hpp"
#include "conch/etcd/status.hpp"
#include "conch/policies/transport.hpp"
#include "conch/proto/rpc.grpc.pb.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace conch::detail {

/// What ends a watch call that a new call may get past.
inline bool watch_retryable(errc c) {
  return c == errc::unavailable || c == errc::internal || c == errc::cancelled ||
         c == errc::timed_out;
}

/// The pause before a watch call is opened again: none after a call that
/// had worked (`delay` back to 0), else 50 ms, doubling up to 1 s. True if
/// `wire`'s alarm was set for it.
template <class Duplex>
bool pause_before_reopen(Duplex& wire, bool worked, std::chrono::milliseconds& delay) {
  if (worked) {
    delay = std::chrono::milliseconds(0);
    return false;
  }
  delay = std::clamp(delay * 2, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  return wire.set_alarm(std::chrono::steady_clock::now() + delay);
}

/// Drops `token` if `reason` may mean it went stale, once per `refreshed`:
/// true if the call should simply be opened again (with a fresh token).
/// etcd 3.4 reports a stale token on a watch as "permission denied": one
/// fresh token tells the two apart.
inline bool refresh_stale_token(grpc_connection& c, const std::string& token, bool& refreshed,
                                const std::string& reason, bool denied_counts = true) {
  const bool maybe_stale = stale_token(reason) || (denied_counts && c.has_auth() &&
                                                   message_has(reason, "permission denied"));
  if (!maybe_stale || refreshed) return false;
  refreshed = true;
  c.drop_token(token);
  return true;
}

/// The first steps of (re)opening a Watch call, shared by both watch kinds
/// (`State`: their shared state): a token, the connection's current
/// channel, a stub on it. The stub, to open the call with watch_call().
template <class State>
result<::etcdserverpb::Watch::Stub*> fresh_watch_stub(State& s, deadline d) {
  auto token = s.conn->token(d);
  if (!token) return token.error();
  s.token = *token;
  s.ref = s.conn->current();
  s.stub = ::etcdserverpb::Watch::NewStub(s.ref.channel);
  return s.stub.get();
}

/// What opens a Watch call on `stub` (for duplex::open).
inline auto watch_call(::etcdserverpb::Watch::Stub* stub) {
  return [stub](grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
    return stub->PrepareAsyncWatch(ctx, cq);
  };
}

class etcd_watch_stream {
 public:
  etcd_watch_stream(std::shared_ptr<grpc_connection> conn, watch_request req)
      : s_(std::make_unique<state>(std::move(conn), std::move(req))) {}

  /// The next batch of events (or a progress notification), waiting at most
  /// until `d` (then errc::timed_out; the watch goes on).
  result<watch_batch> next(deadline d) {
    if (!s_) return error{errc::cancelled, "watch moved from"};
    state& s = *s_;
    if (!s.early.empty()) {
      watch_batch b = std::move(s.early.front());
      s.early.erase(s.early.begin());
      return b;
    }
    for (;;) {
      auto got = turn(d, "no watch event before the deadline");
      if (!got) return std::move(got).error();
      if (*got) return std::move(**got);
    }
  }

  /// Opens the watch now and waits until etcd has created it, so it exists on
  /// the server before the caller reads what it watches. Returns the revision
  /// the watch has covered up to: a watch without a start revision delivers
  /// every event after it. A watch created from "now" is in etcd's synced set
  /// at once; one started from an older revision waits for etcd's 100 ms
  /// resync loop before anything reaches it.
  result<revision> start(deadline d) {
    if (!s_) return error{errc::cancelled, "watch moved from"};
    state& s = *s_;
    while (!s.created) {
      auto got = turn(d, "watch not created before the deadline");
      if (!got) return std::move(got).error();
      if (*got && !(*got)->events.empty())
        s.early.push_back(std::move(**got));  // cannot happen before created; kept anyway
    }
    return s.next_rev - 1;
  }

  /// Makes a blocked next() return errc::cancelled promptly; any thread.
  void cancel() noexcept {
    if (s_) s_->wire.cancel();
  }

  /// How many next() calls wait on the stream right now: tests await it
  /// (instead of sleeping) before cancelling a blocked next().
  int waiting() const { return s_ ? s_->wire.waiting() : 0; }

  /// Where a resumed stream would start: one past everything delivered.
  revision next_revision() const { return s_ ? s_->next_rev : 0; }

 private:
  using duplex = grpc_duplex<::etcdserverpb::WatchRequest, ::etcdserverpb::WatchResponse>;

  struct state {
    state(std::shared_ptr<grpc_connection> c, watch_request r)
        : conn(std::move(c)), req(std::move(r)), next_rev(req.start_revision) {}
    std::shared_ptr<grpc_connection> conn;
    watch_request req;
    revision next_rev;  // 0 until etcd pins "now" for a watch without a start
    std::unique_ptr<::etcdserverpb::Watch::Stub> stub;
    grpc_connection::channel_ref ref;
    std::string token;
    std::optional<error> done;  // the watch is over, for this reason
    bool created = false;       // etcd accepted the current stream's watch
    bool reopen_now = false;    // we ended the call to reopen it (fresh token)
    bool token_refreshed = false;
    bool retry_pending = false;
    std::chrono::milliseconds retry_delay{0};
    std::vector<watch_batch> early;  // events that start() read past
    duplex wire;                     // last: destroyed (drained) first
  };

  // One turn of next()'s and start()'s wait: (re)opens the stream when it is
  // idle, then waits until `d` for one event. A batch that arrived, none yet,
  // or the error that ends the wait (`waiting` says what timed out).
  result<std::optional<watch_batch>> turn(deadline d, const char* waiting) {
    state& s = *s_;
    if (s.done) return *s.done;
    if (s.wire.cancelled()) return error{errc::cancelled, "watch cancelled"};
    if (s.wire.idle() && !s.retry_pending) {
      if (auto opened = open(d); !opened) {
        if (opened.error().code == errc::timed_out) return opened.error();
        if (!watch_retryable(opened.error().code)) return *(s.done = opened.error());
        schedule_retry();
      }
    }
    switch (s.wire.wait(d)) {
      case duplex::event::timeout:
        return error{errc::timed_out, waiting};
      case duplex::event::alarm:
        s.retry_pending = false;
        break;
      case duplex::event::idle:
        break;
      case duplex::event::message:
        return on_message(s.wire.message());
      case duplex::event::finished:
        on_finished();
        break;
    }
    return std::optional<watch_batch>{};
  }

  result<void> open(deadline d) {
    state& s = *s_;
    if (s.conn->config_error()) return *s.conn->config_error();
    s.created = false;  // a failure from here on is retried after a pause
    auto stub = fresh_watch_stub(s, d);
    if (!stub) return stub.error();
    if (!s.wire.open(watch_call(*stub), s.token)) return {};  // cancelled: the loop reports it
    ::etcdserverpb::WatchRequest create;
    to_pb(s.req, s.next_rev, *create.mutable_create_request());
    s.wire.write(std::move(create));
    return {};
  }

  // Waits before reopening after a failed attempt, longer each time; a
  // stream that had been working is reopened at once.
  void schedule_retry() {
    state& s = *s_;
    s.retry_pending = pause_before_reopen(s.wire, s.created, s.retry_delay);
  }

  std::optional<watch_batch> on_message(const ::etcdserverpb::WatchResponse& r) {
    state& s = *s_;
    if (r.created() && !r.canceled()) {
      s.created = true;
      s.token_refreshed = false;
      s.retry_delay = std::chrono::milliseconds(0);
      if (s.next_rev == 0) s.next_rev = r.header().revision() + 1;
    }
    if (r.compact_revision() != 0) {
      s.done =
          error{errc::compacted,
                s.ref.endpoint + ": watch from revision " + std::to_string(s.next_rev) +
                    " impossible: history compacted up to " + std::to_string(r.compact_revision()),
                r.compact_revision()};
      s.wire.abort();
      return std::nullopt;
    }
    if (r.canceled()) {
      const std::string& reason = r.cancel_reason();
      if (refresh_stale_token(*s.conn, s.token, s.token_refreshed, reason)) {
        s.reopen_now = true;
      } else {
        s.done = error{etcd_errc(grpc::StatusCode::UNKNOWN, reason),
                       s.ref.endpoint + ": etcd cancelled the watch: " +
                           (reason.empty() ? std::string("no reason given") : reason)};
        if (s.done->code == errc::permission_denied) s.done->message += whose();
      }
      s.wire.abort();
      return std::nullopt;
    }
    if (r.created()) return std::nullopt;
    watch_batch batch;
    batch.header_revision = r.header().revision();
    const revision floor = s.next_rev;  // a resumed stream never repeats what we delivered
    for (const auto& e : r.events()) {
      if (e.kv().mod_revision() < floor) continue;
      batch.events.push_back(from_pb(e));
      s.next_rev = std::max(s.next_rev, e.kv().mod_revision() + 1);
    }
    if (r.events_size() == 0) {
      // A progress notification: etcd sends it only to a caught-up watcher,
      // so everything up to the header's revision has been delivered.
      s.next_rev = std::max(s.next_rev, r.header().revision() + 1);
      return batch;
    }
    if (batch.events.empty()) return std::nullopt;
    return batch;
  }

  // " (user 'U', prefix 'P')": who was refused what.
  std::string whose() const {
    const state& s = *s_;
    const auto& user = s.conn->options().user;
    std::string text = user.empty() ? " (no user: pass --user" : " (user '" + user + "'";
    if (s.req.range_end.empty())
      text += ", key '" + s.req.key + "'";
    else if (s.req.range_end == prefix_end(s.req.key))
      text += ", prefix '" + s.req.key + "'";
    else
      text += ", keys from '" + s.req.key + "' to '" + s.req.range_end + "'";
    return text + ")";
  }

  void on_finished() {
    state& s = *s_;
    const grpc::Status status = s.wire.status();
    s.wire.reset();
    if (s.done || s.wire.cancelled()) return;  // the loop reports it
    if (s.reopen_now) {
      s.reopen_now = false;
      return;
    }
    if (s.conn->has_auth() &&
        refresh_stale_token(*s.conn, s.token, s.token_refreshed, status.error_message(), false))
      return;
    auto err = s.conn->explain(status, s.ref.endpoint);
    if (!watch_retryable(err.code)) {
      s.done = std::move(err);
      return;
    }
    if (err.code == errc::unavailable) s.conn->failover(s.ref);
    schedule_retry();
  }

  std::unique_ptr<state> s_;
};

}  // namespace conch::detail
