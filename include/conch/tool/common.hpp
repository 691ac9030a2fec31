// conch/tool/common.hpp — the flags every conch tool shares (SPEC "common flags").
//
// `--endpoints` (env CONCH_ENDPOINTS, comma-separated, default 127.0.0.1:2379),
// `--prefix` (env CONCH_PREFIX, default conch/), `--ttl`, `--kill-after`,
// `--cacert --cert --key`, `--user` (password from CONCH_PASSWORD), `--json`.
// Flags win over the environment. No gRPC here: parsing a command line needs
// no connection (and fuzzes without one).
//
//   conch::tool::command_line p{"conch elect", "NAME [flags] -- CMD ARGS..."};
//   conch::tool::common_flags common{p};
//   if (auto r = p.parse(args); !r) ...;
//   auto opts = common.finish();   // result<common_options>: validated
#pragma once

#include "conch/logic/duration.hpp"
#include "conch/logic/keys.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"
#include "conch/tool/flags.hpp"

#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace conch::tool {

struct common_options {
  std::vector<std::string> endpoints{"127.0.0.1:2379"};
  std::string prefix{"conch/"};
  std::chrono::seconds ttl{10};
  std::chrono::milliseconds kill_after{std::chrono::seconds(5)};
  std::string cacert, cert, key;
  std::string user, password;
  bool json = false;

  transport_options transport() const {
    transport_options t;
    t.endpoints = endpoints;
    t.ca_file = cacert;
    t.cert_file = cert;
    t.key_file = key;
    t.user = user;
    t.password = password;
    return t;
  }
};

/// "a, b,c" -> {"a","b","c"}; an empty entry is an error.
inline result<std::vector<std::string>> split_endpoints(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    std::string_view part =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
    if (part.empty())
      return error{errc::invalid_argument, "empty endpoint in \"" + std::string(text) + "\""};
    out.emplace_back(part);
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

/// Binds the common flags to a command line; finish() validates after the parse.
class common_flags {
 public:
  /// `supervises`: the tool runs a child under a lease (--ttl, --kill-after).
  explicit common_flags(command_line& p, bool supervises = true) : supervises_(supervises) {
    if (const char* e = std::getenv("CONCH_PASSWORD")) opts_.password = e;
    p.text("--endpoints", endpoints_, "LIST", "etcd endpoints, comma-separated", "CONCH_ENDPOINTS");
    p.text("--prefix", prefix_, "PREFIX", "key namespace", "CONCH_PREFIX");
    if (supervises) {
      p.duration("--ttl", ttl_, "lease TTL, whole seconds", "10s");
      p.duration("--kill-after", opts_.kill_after,
                 "SIGKILL the child's group this long after SIGTERM", "5s");
    }
    p.text("--cacert", opts_.cacert, "FILE", "CA certificate: talk TLS to etcd");
    p.text("--cert", opts_.cert, "FILE", "client certificate (with --key)");
    p.text("--key", opts_.key, "FILE", "client private key");
    p.text("--user", opts_.user, "NAME", "etcd user; the password comes from env CONCH_PASSWORD");
    p.flag("--json", opts_.json, "machine-readable output");
  }

  /// The options, validated; errors name the flag (or variable) at fault.
  result<common_options> finish() {
    common_options o = opts_;
    auto eps = split_endpoints(endpoints_);
    if (!eps) return error{errc::invalid_argument, endpoints_source() + ": " + eps.error().message};
    o.endpoints = std::move(*eps);
    o.prefix = conch::detail::normalize_prefix(prefix_);
    if (supervises_) {
      if (ttl_ < std::chrono::seconds(1) ||
          ttl_ % std::chrono::seconds(1) != std::chrono::milliseconds(0))
        return error{errc::invalid_argument, "--ttl: " + conch::detail::format_duration(ttl_) +
                                                 " is not a whole number of seconds (at least 1s)"};
      o.ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl_);
    }
    if (o.cert.empty() != o.key.empty())
      return error{errc::invalid_argument,
                   o.cert.empty() ? "--key needs --cert" : "--cert needs --key"};
    return o;
  }

 private:
  /// CLI11 fills --endpoints from CONCH_ENDPOINTS when the flag is absent: a
  /// value equal to the variable's is named after the variable.
  std::string endpoints_source() const {
    const char* e = std::getenv("CONCH_ENDPOINTS");
    return e && endpoints_ == e ? "CONCH_ENDPOINTS" : "--endpoints";
  }

  bool supervises_;
  common_options opts_;
  std::string endpoints_ = "127.0.0.1:2379";
  std::string prefix_ = "conch/";
  std::chrono::milliseconds ttl_{std::chrono::seconds(10)};
};

}  // namespace conch::tool
