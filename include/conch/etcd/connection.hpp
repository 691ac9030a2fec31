// conch/etcd/connection.hpp — what every call and stream of one
// etcd_transport shares: the endpoint list with failover, one gRPC channel to
// the current endpoint, TLS credentials and the auth token.
//
// Failover is deliberately simple: endpoints are tried in order; a call or
// stream that finds the current one unavailable moves everybody to the next.
// Only one channel is in use at a time, so unary calls, keepalives and
// watches always share a connection.
#pragma once

#include "conch/etcd/deadline.hpp"
#include "conch/etcd/status.hpp"
#include "conch/policies/transport.hpp"
#include "conch/proto/rpc.grpc.pb.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <grpcpp/grpcpp.h>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace conch::detail {

/// gRPC reads a channel's socket only while something polls it: a call in
/// flight, a connectivity wait, or its backup poller (every 5 s by default).
/// A channel in TRANSIENT_FAILURE has no calls (they fail fast), so after an
/// outage of a few seconds its reconnect attempts were read by the backup
/// poller alone — too late for their connect timeout, over and over: the
/// client never came back. Polling every 100 ms lets a reconnect finish as
/// soon as etcd answers. gRPC reads this when it initializes, so it is set
/// before the first channel exists; a value the process already has wins.
inline void poll_channels_often() {
  static std::once_flag once;
  std::call_once(once, [] { ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", 0); });
}

class grpc_connection {
 public:
  /// The channel a call or stream was started on; `generation` tells whether
  /// someone failed over since.
  struct channel_ref {
    std::shared_ptr<grpc::Channel> channel;
    std::uint64_t generation = 0;
    std::string endpoint;
  };

  explicit grpc_connection(transport_options opts) : opts_(std::move(opts)) {
    poll_channels_often();
    config_error_ = configure();
  }

  const transport_options& options() const { return opts_; }
  /// Set when the options are unusable; every call then returns it.
  const std::optional<error>& config_error() const { return config_error_; }
  bool has_auth() const { return !opts_.user.empty(); }

  channel_ref current() {
    std::lock_guard lock(m_);
    auto& ch = channels_[index_];
    if (!ch) ch = grpc::CreateCustomChannel(endpoints_[index_], creds_, channel_args());
    return {ch, generation_, endpoints_[index_]};
  }

  std::string current_endpoint() const {
    std::lock_guard lock(m_);
    return endpoints_.empty() ? std::string() : endpoints_[index_];
  }

  /// Moves to the next endpoint unless someone already did since `seen`,
  /// skipping endpoints known to be down (their channel failed to connect)
  /// while another one may still be up.
  void failover(const channel_ref& seen) noexcept {
    std::lock_guard lock(m_);
    if (seen.generation != generation_ || endpoints_.size() < 2) return;
    std::size_t next = (index_ + 1) % endpoints_.size();
    for (std::size_t tried = 1; tried < endpoints_.size(); ++tried) {
      const auto& ch = channels_[next];
      if (!ch || ch->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) break;
      next = (next + 1) % endpoints_.size();
      if (next == index_) next = (next + 1) % endpoints_.size();
    }
    index_ = next;
    ++generation_;
  }

  /// The auth token to send ("" without auth), authenticating if needed.
  /// One Authenticate at a time, and no lock held across it: a caller that
  /// finds one under way waits for its outcome only as long as its own
  /// deadline allows. After a failure, callers get that failure back until a
  /// backoff has passed (50 ms, doubling to 1 s), so a stream that reopens on
  /// every failure cannot turn into a stream of Authenticate calls.
  result<std::string> token(deadline d) {
    if (!has_auth()) return std::string();
    std::unique_lock lock(m_);
    for (;;) {
      if (token_) return *token_;
      if (!authenticating_) {
        if (auth_failure_ && std::chrono::steady_clock::now() < auth_retry_at_)
          return *auth_failure_;
        break;
      }
      if (auth_done_.wait_until(lock, d) == std::cv_status::timeout && authenticating_)
        return error{errc::timed_out, current_endpoint_locked() +
                                          ": deadline passed while authenticating as '" +
                                          opts_.user + "'"};
    }
    authenticating_ = true;
    lock.unlock();
    auto outcome = authenticate(d);
    lock.lock();
    authenticating_ = false;
    if (outcome) {
      token_ = *outcome;
      auth_failure_.reset();
      auth_backoff_ = std::chrono::milliseconds{0};
    } else if (outcome.error().code != errc::timed_out) {  // a short deadline is the caller's
      auth_failure_ = outcome.error();
      auth_backoff_ = std::clamp(auth_backoff_ * 2, std::chrono::milliseconds{50},
                                 std::chrono::milliseconds{1000});
      auth_retry_at_ = std::chrono::steady_clock::now() + auth_backoff_;
    }
    auth_done_.notify_all();
    return outcome;
  }

  // One Authenticate, trying each endpoint once; called without m_ held.
  result<std::string> authenticate(deadline d) {
    std::string failures;
    for (std::size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
      auto ref = current();
      grpc::ClientContext ctx;
      ctx.set_deadline(to_grpc_deadline(d));
      ::etcdserverpb::AuthenticateRequest req;
      req.set_name(opts_.user);
      req.set_password(opts_.password);
      ::etcdserverpb::AuthenticateResponse resp;
      auto status = ::etcdserverpb::Auth::NewStub(ref.channel)->Authenticate(&ctx, req, &resp);
      if (status.ok() || message_has(status.error_message(), "authentication is not enabled"))
        return resp.token();  // empty when the server has auth off, like etcd's own client
      auto err = explain(status, ref.endpoint);
      if (err.code != errc::unavailable) {
        if (err.code == errc::invalid_argument) err.code = errc::unauthenticated;
        err.message = ref.endpoint + ": authentication as '" + opts_.user +
                      "' refused: " + status.error_message();
        return err;
      }
      failures += (failures.empty() ? "" : "; ") + err.message;
      failover(ref);
    }
    return error{errc::unavailable, failures};
  }

  std::string current_endpoint_locked() const {
    return endpoints_.empty() ? std::string() : endpoints_[index_];
  }

  /// A one-line error for a failed call or stream on `endpoint`, naming the
  /// cause where gRPC's words would not (a missing client certificate).
  error explain(const grpc::Status& status, std::string_view endpoint) const {
    auto err = status_error(status, endpoint);
    if (tls_ && opts_.cert_file.empty() && refused_without_certificate(status))
      err.message =
          std::string(endpoint) + ": the server requires a client certificate (--cert, --key)";
    return err;
  }

  /// Forgets `seen` so the next token() authenticates again.
  void drop_token(const std::string& seen) {
    std::lock_guard lock(m_);
    if (token_ && *token_ == seen) token_.reset();
  }

  /// Runs one unary call `call(channel_ptr, ctx) -> grpc::Status` with
  /// failover, token refresh and the deadline. A call that is not
  /// `idempotent` is retried elsewhere only when it cannot have reached etcd.
  template <class Call>
  result<void> unary(Call&& call, deadline d, bool idempotent) {
    if (config_error_) return *config_error_;
    bool refreshed = false;
    std::string failures;
    for (std::size_t attempt = 0; attempt < endpoints_.size();) {
      if (std::chrono::steady_clock::now() >= d)
        return error{errc::timed_out, failures.empty() ? current_endpoint() + ": deadline passed"
                                                       : failures + " (then deadline passed)"};
      auto token = this->token(d);
      if (!token) return token.error();
      auto ref = current();
      const auto state = settle(*ref.channel, std::min(d, dial_deadline()));
      if (state == GRPC_CHANNEL_IDLE || state == GRPC_CHANNEL_CONNECTING) {
        if (std::chrono::steady_clock::now() >= d) continue;  // reported as timed out
        failures += (failures.empty() ? "" : "; ") + ref.endpoint + ": no connection within " +
                    std::to_string(opts_.dial_timeout.count()) + "ms";
        failover(ref);
        ++attempt;
        continue;
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(to_grpc_deadline(d));
      if (!token->empty()) ctx.AddMetadata("token", *token);
      const grpc::Status status = call(ref.channel, ctx);
      if (status.ok()) return {};
      if (has_auth() && !refreshed && stale_token(status.error_message())) {
        refreshed = true;
        drop_token(*token);
        continue;
      }
      auto err = explain(status, ref.endpoint);
      if (err.code != errc::unavailable) return err;
      failover(ref);
      failures += (failures.empty() ? "" : "; ") + err.message;
      ++attempt;
      if (!idempotent && state == GRPC_CHANNEL_READY) break;  // it may have been applied
    }
    return error{errc::unavailable, failures};
  }

 private:
  // Lets a fresh or reconnecting channel finish connecting (bounded), so a
  // dead endpoint is told apart from a slow one.
  static grpc_connectivity_state settle(grpc::Channel& ch, deadline until) {
    auto s = ch.GetState(true);
    while (s == GRPC_CHANNEL_IDLE || s == GRPC_CHANNEL_CONNECTING) {
      if (!ch.WaitForStateChange(s, to_grpc_deadline(until))) break;
      s = ch.GetState(true);
    }
    return s;
  }

  deadline dial_deadline() const { return std::chrono::steady_clock::now() + opts_.dial_timeout; }

  static grpc::ChannelArguments channel_args() {
    grpc::ChannelArguments args;
    // Reconnect soon after etcd comes back (gRPC's default backoff grows to 120s).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    // In gRPC this is also the least time a connection attempt may take: a
    // small value makes processes started together on a loaded machine give
    // up before the server's SETTINGS frame arrives. Calls keep their own
    // deadlines, so a generous value only bounds a hung attempt.
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // Notice a silently dead connection under a long watch. etcd refuses
    // pings more often than every 5s, and pings only while calls are active.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    args.SetMaxReceiveMessageSize(-1);  // etcd's own client accepts any size too
    return args;
  }

  static std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::optional<error> configure() {
    bool tls = !opts_.ca_file.empty();
    for (auto ep : opts_.endpoints) {
      for (std::string_view scheme : {"http://", "https://"}) {
        if (ep.rfind(scheme, 0) == 0) {
          tls = tls || scheme == "https://";
          ep.erase(0, scheme.size());
        }
      }
      while (!ep.empty() && ep.back() == '/') ep.pop_back();
      if (ep.empty() || ep.find_first_of(" \t,") != std::string::npos)
        return error{errc::invalid_argument, "bad etcd endpoint '" + ep + "' (want host:port)"};
      if (ep.find(':') == std::string::npos) ep += ":2379";
      endpoints_.push_back(ep);
    }
    if (endpoints_.empty()) return error{errc::invalid_argument, "no etcd endpoint given"};
    channels_.resize(endpoints_.size());
    if (opts_.cert_file.empty() != opts_.key_file.empty())
      return error{errc::invalid_argument, "a client certificate needs both a cert and a key file"};
    if (!opts_.cert_file.empty()) tls = true;
    tls_ = tls;
    if (!tls) {
      creds_ = grpc::InsecureChannelCredentials();
      return std::nullopt;
    }
    grpc::SslCredentialsOptions ssl;
    struct file_ref {
      const std::string& path;
      std::string& into;
      const char* what;
    };
    for (auto f : {file_ref{opts_.ca_file, ssl.pem_root_certs, "CA"},
                   file_ref{opts_.cert_file, ssl.pem_cert_chain, "certificate"},
                   file_ref{opts_.key_file, ssl.pem_private_key, "key"}}) {
      if (f.path.empty()) continue;
      auto text = read_file(f.path);
      if (!text || text->empty())
        return error{errc::invalid_argument,
                     std::string("cannot read TLS ") + f.what + " file '" + f.path + "'"};
      f.into = std::move(*text);
    }
    creds_ = grpc::SslCredentials(ssl);
    return std::nullopt;
  }

  transport_options opts_;
  std::optional<error> config_error_;
  std::vector<std::string> endpoints_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  bool tls_ = false;

  mutable std::mutex m_;  // guards everything below
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::size_t index_ = 0;
  std::uint64_t generation_ = 0;
  std::optional<std::string> token_;
  bool authenticating_ = false;  // one Authenticate under way (m_ not held across it)
  std::condition_variable auth_done_;
  std::optional<error> auth_failure_;  // the last one failed: returned until auth_retry_at_
  std::chrono::steady_clock::time_point auth_retry_at_{};
  std::chrono::milliseconds auth_backoff_{0};
};

}  // namespace conch::detail
