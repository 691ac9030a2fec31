// conch/etcd/status.hpp — what a gRPC status from etcd means to conch.
//
// etcd reports most failures as a gRPC code plus a fixed "etcdserver: ..."
// message; the message is the precise part (several conditions share a code),
// so it is matched first and the code is the fallback.
#pragma once

#include "conch/result.hpp"

#include <grpcpp/support/status.h>
#include <string>
#include <string_view>

namespace conch::detail {

inline bool message_has(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

/// The kind of failure an etcd error message or gRPC code stands for.
inline errc etcd_errc(grpc::StatusCode code, std::string_view message) {
  if (message_has(message, "required revision has been compacted")) return errc::compacted;
  if (message_has(message, "requested lease not found")) return errc::lease_not_found;
  if (message_has(message, "permission denied")) return errc::permission_denied;
  if (message_has(message, "invalid auth token") ||
      message_has(message, "user name or password is invalid") ||
      message_has(message, "invalid user ID or password") ||
      message_has(message, "revision of auth store is old") ||
      message_has(message, "user name is empty"))
    return errc::unauthenticated;
  switch (code) {
    case grpc::StatusCode::OK:
      return errc::internal;  // not an error; callers check first
    case grpc::StatusCode::UNAVAILABLE:
      return errc::unavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return errc::timed_out;
    case grpc::StatusCode::CANCELLED:
      return errc::cancelled;
    case grpc::StatusCode::OUT_OF_RANGE:
      return errc::compacted;
    case grpc::StatusCode::NOT_FOUND:
      return errc::lease_not_found;
    case grpc::StatusCode::PERMISSION_DENIED:
      return errc::permission_denied;
    case grpc::StatusCode::UNAUTHENTICATED:
      return errc::unauthenticated;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return errc::invalid_argument;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return errc::failed_precondition;
    default:
      return errc::internal;
  }
}

/// A one-line error naming the endpoint that reported it.
inline error status_error(const grpc::Status& s, std::string_view endpoint) {
  std::string text(endpoint);
  text += ": ";
  if (message_has(s.error_message(), "user name is empty"))
    text += "etcd requires authentication: pass --user";  // etcd's words name the symptom only
  else
    text +=
        s.error_message().empty() ? to_string(etcd_errc(s.error_code(), {})) : s.error_message();
  return {etcd_errc(s.error_code(), s.error_message()), std::move(text)};
}

/// Whether a failed TLS connection looks like the server hanging up after
/// the handshake asked for a client certificate we did not have.
inline bool refused_without_certificate(const grpc::Status& s) {
  const auto& m = s.error_message();
  return s.error_code() == grpc::StatusCode::UNAVAILABLE &&
         (message_has(m, "Endpoint read failed") || message_has(m, "Socket closed") ||
          message_has(m, "andshake") || message_has(m, "certificate"));
}

/// True when the server rejected our auth token (expired, or issued before a
/// restart or an auth change): a fresh token makes the same call succeed.
inline bool stale_token(std::string_view message) {
  return message_has(message, "invalid auth token") ||
         message_has(message, "revision of auth store is old");
}

}  // namespace conch::detail
