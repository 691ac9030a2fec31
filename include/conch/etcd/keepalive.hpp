// conch/etcd/keepalive.hpp — renewals of one lease over etcd's
// LeaseKeepAlive stream.
//
// The caller paces renewals: send() asks for one, next() waits for an answer
// (the new TTL; 0 when the lease is gone). A broken stream is reported once
// by next() (the caller's deadline logic decides what that means), and the
// following send() opens a fresh stream on whatever endpoint is current.
// etcd answers one stream's requests in order, one at a time, so a request
// stuck behind a leader election holds up the ones after it: a caller that
// stops waiting calls unresponsive() and renews on a fresh stream instead.
#pragma once

#include "conch/etcd/connection.hpp"
#include "conch/etcd/duplex.hpp"
#include "conch/etcd/status.hpp"
#include "conch/policies/transport.hpp"
#include "conch/proto/rpc.grpc.pb.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace conch::detail {

class etcd_keepalive_stream {
 public:
  etcd_keepalive_stream(std::shared_ptr<grpc_connection> conn, lease_id id)
      : s_(std::make_unique<state>(std::move(conn), id)) {}

  /// Asks for one renewal (opening the stream if needed). Any thread.
  result<void> send() {
    if (!s_) return error{errc::cancelled, "keepalive moved from"};
    state& s = *s_;
    std::lock_guard lock(s.m);
    if (s.wire.cancelled()) return error{errc::cancelled, "keepalive cancelled"};
    if (s.wire.idle())
      if (auto opened = open_locked(); !opened) return opened;
    ::etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(s.id);
    s.wire.write(std::move(req));
    return {};
  }

  /// The answer to a send(): the lease's new TTL in seconds, 0 if the lease
  /// is gone; errc::timed_out if none came before `d`.
  result<std::int64_t> next(deadline d) {
    if (!s_) return error{errc::cancelled, "keepalive moved from"};
    state& s = *s_;
    for (;;) {
      if (s.wire.cancelled()) return error{errc::cancelled, "keepalive cancelled"};
      switch (s.wire.wait(d)) {
        case duplex::event::timeout:
          return error{errc::timed_out, "no keepalive answer before the deadline"};
        case duplex::event::alarm:
          break;
        case duplex::event::idle:
          if (s.wire.cancelled()) break;
          return error{errc::failed_precondition, "keepalive: next() without send()"};
        case duplex::event::message:
          if (s.wire.message().id() == s.id) {
            s.token_refreshed = false;
            return s.wire.message().ttl();
          }
          break;
        case duplex::event::finished:
          if (auto err = on_finished()) return *err;
          break;
      }
    }
  }

  /// The caller stopped waiting for an answer here: the member this stream
  /// talks to is presumed gone (dead or frozen), so streams and calls opened
  /// from now on go to the next endpoint. This stream's call stays open, so a
  /// late answer is still delivered by next(). Any thread.
  void unresponsive() {
    if (!s_) return;
    std::lock_guard lock(s_->m);
    if (!s_->wire.idle()) s_->conn->failover(s_->ref);
  }

  /// Makes a blocked next() return errc::cancelled promptly; any thread.
  void cancel() noexcept {
    if (s_) s_->wire.cancel();
  }

  /// How many next() calls wait on the stream right now: tests await it
  /// (instead of sleeping) before cancelling a blocked next().
  int waiting() const { return s_ ? s_->wire.waiting() : 0; }

  lease_id id() const { return s_ ? s_->id : 0; }

 private:
  using duplex =
      grpc_duplex<::etcdserverpb::LeaseKeepAliveRequest, ::etcdserverpb::LeaseKeepAliveResponse>;

  struct state {
    state(std::shared_ptr<grpc_connection> c, lease_id l) : conn(std::move(c)), id(l) {}
    std::shared_ptr<grpc_connection> conn;
    lease_id id;
    std::mutex m;  // opening vs. resetting the call
    std::unique_ptr<::etcdserverpb::Lease::Stub> stub;
    grpc_connection::channel_ref ref;
    std::string token;
    bool token_refreshed = false;
    duplex wire;  // last: destroyed (drained) first
  };

  result<void> open_locked() {
    state& s = *s_;
    if (s.conn->config_error()) return *s.conn->config_error();
    auto token = s.conn->token(std::chrono::steady_clock::now() + s.conn->options().call_timeout);
    if (!token) return token.error();
    s.token = *token;
    s.ref = s.conn->current();
    s.stub = ::etcdserverpb::Lease::NewStub(s.ref.channel);
    auto* stub = s.stub.get();
    if (!s.wire.open(
            [stub](grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
              return stub->PrepareAsyncLeaseKeepAlive(ctx, cq);
            },
            s.token))
      return error{errc::cancelled, "keepalive cancelled"};
    return {};
  }

  // The call ended: a stale token is renewed and the renewal asked again;
  // anything else is the caller's to see.
  std::optional<error> on_finished() {
    state& s = *s_;
    std::lock_guard lock(s.m);
    const grpc::Status status = s.wire.status();
    s.wire.reset();
    if (s.wire.cancelled()) return error{errc::cancelled, "keepalive cancelled"};
    if (s.conn->has_auth() && !s.token_refreshed && stale_token(status.error_message())) {
      s.token_refreshed = true;
      s.conn->drop_token(s.token);
      if (auto opened = open_locked(); !opened) return opened.error();
      ::etcdserverpb::LeaseKeepAliveRequest req;
      req.set_id(s.id);
      s.wire.write(std::move(req));
      return std::nullopt;
    }
    auto err = s.conn->explain(status, s.ref.endpoint);
    if (status.ok()) err = error{errc::unavailable, s.ref.endpoint + ": keepalive stream closed"};
    if (err.code == errc::unavailable) s.conn->failover(s.ref);
    return err;
  }

  std::unique_ptr<state> s_;
};

}  // namespace conch::detail
