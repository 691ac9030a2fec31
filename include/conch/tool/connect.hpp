// conch/tool/connect.hpp — reach etcd at start, or say exactly why not.
//
// A tool that cannot reach etcd must fail at once with exit 69 and one line
// naming the endpoint and the reason, not wait, retry or half-start a child.
//
//   conch::etcd_transport etcd{opts.transport()};
//   if (int code = conch::tool::require_etcd(etcd, opts, "conch elect")) return code;
#pragma once

#include "conch/etcd.hpp"
#include "conch/exit_codes.hpp"
#include "conch/tool/common.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

namespace conch::tool {

/// 0 if `o` can work at all (no dialling); otherwise prints the reason to
/// stderr and returns 64 (a malformed endpoint, an unreadable TLS file).
inline int check_etcd_options(const common_options& o, std::string_view program) {
  if (auto ok = etcd_transport::check_options(o.transport()); !ok) {
    std::cerr << program << ": " << ok.error().message << "\n";
    return exit_code::usage;
  }
  return 0;
}

/// Prints why etcd cannot be used ("etcd unavailable: ENDPOINTS: why") and
/// returns 69.
inline int etcd_unavailable(const error& e, const common_options& o, std::string_view program) {
  std::string why = e.message;
  bool named = false;
  for (const auto& ep : o.endpoints) named = named || why.find(ep) != std::string::npos;
  if (!named) {  // always say where we tried
    std::string all;
    for (const auto& ep : o.endpoints) all += (all.empty() ? "" : ",") + ep;
    why = all + ": " + why;
  }
  std::cerr << program << ": etcd unavailable: " << why << "\n";
  return exit_code::unavailable;
}

/// 0 if etcd answers (auth included); otherwise prints the reason to stderr
/// and returns the exit code: 64 for options that cannot work (a malformed
/// endpoint, an unreadable TLS file), 69 for etcd unreachable or refusing us.
inline int require_etcd(etcd_transport& etcd, const common_options& o, std::string_view program) {
  if (int code = check_etcd_options(o, program)) return code;
  auto ping = etcd.ping(etcd.default_deadline());
  if (!ping) return etcd_unavailable(ping.error(), o, program);
  return 0;
}

/// Starts a holding tool's session early (basic_session::start_early): the
/// grant then overlaps the acquire's first write. 0 once under way; otherwise
/// prints why and returns 69, a failed grant (the first call to fail when
/// etcd is unreachable) reported as a ping's failure would be.
template <class Session>
int start_session_early(Session& session, const common_options& o, std::string_view program) {
  auto s = session.start_early();
  if (s) return 0;
  if (s.error().code == errc::invalid_argument) {
    std::cerr << program << ": cannot start a session: " << s.error().message << "\n";
    return exit_code::unavailable;
  }
  return etcd_unavailable(s.error(), o, program);
}

/// The transport of a holding tool (conch elect, conch sema): it lives as
/// long as the process, whose main ends with leave(), so the gRPC channel is
/// never torn down — a teardown that waits on gRPC's threads, for nothing
/// once the lease is revoked.
inline etcd_transport& process_transport(const common_options& o) {
  return *new etcd_transport{o.transport()};  // NOLINT: deliberately never freed
}

/// Ends the tool process with `code` at once: the streams flushed, no
/// destructors or exit handlers run (gRPC's shutdown among them). For a
/// tool's main, once every claim is released and its lease revoked.
[[noreturn]] inline void leave(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace conch::tool
