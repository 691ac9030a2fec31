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

#include <iostream>
#include <string>
#include <string_view>

namespace conch::tool {

/// 0 if etcd answers (auth included); otherwise prints the reason to stderr
/// and returns the exit code: 64 for options that cannot work (a malformed
/// endpoint, an unreadable TLS file), 69 for etcd unreachable or refusing us.
inline int require_etcd(etcd_transport& etcd, const common_options& o, std::string_view program) {
  if (auto ok = etcd_transport::check_options(o.transport()); !ok) {
    std::cerr << program << ": " << ok.error().message << "\n";
    return exit_code::usage;
  }
  auto ping = etcd.ping(etcd.default_deadline());
  if (!ping) {
    std::string why = ping.error().message;
    bool named = false;
    for (const auto& e : o.endpoints) named = named || why.find(e) != std::string::npos;
    if (!named) {  // always say where we tried
      std::string all;
      for (const auto& e : o.endpoints) all += (all.empty() ? "" : ",") + e;
      why = all + ": " + why;
    }
    std::cerr << program << ": etcd unavailable: " << why << "\n";
    return exit_code::unavailable;
  }
  return 0;
}

}  // namespace conch::tool
