// conch/tool/listen_address.hpp — the ADDR:PORT of `--metrics`, checked
// when the command line is read (a bad one is a usage error, exit 64).
//
//   auto a = conch::tool::parse_listen_address("127.0.0.1:9464");  // {host, port}
#pragma once

#include "conch/result.hpp"
#include "conch/tool/flags.hpp"

#include <netdb.h>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace conch::tool {

struct listen_address {
  std::string host;
  int port = 0;
  std::string text() const {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(port);
  }
};

/// "127.0.0.1:9464", "[::1]:9464", "localhost:9464", ":9464" (every address).
inline result<listen_address> parse_listen_address(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return error{errc::invalid_argument, "--metrics: \"" + std::string(text) + "\": " + why};
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("expected ADDR:PORT");
  std::string host(text.substr(0, colon));
  const std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string::npos)
    return bad("an IPv6 address goes in brackets: [::1]:PORT");
  int port = 0;
  bool digits = !port_text.empty() && port_text.size() <= 5;
  for (char c : port_text) digits = digits && c >= '0' && c <= '9';
  if (digits)
    for (char c : port_text) port = port * 10 + (c - '0');
  if (!digits || port < 1 || port > 65535) return bad("the port must be a number from 1 to 65535");
  if (host.empty()) host = "0.0.0.0";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    return bad("unknown address \"" + host + "\": " + ::gai_strerror(rc));
  ::freeaddrinfo(found);
  return listen_address{host, port};
}

/// `--metrics ADDR:PORT` on a command line: declared by the constructor,
/// checked by finish() (a usage error names the flag and exits 64).
struct metrics_flag {
  std::string text;
  explicit metrics_flag(command_line& p) {
    p.text(
        "--metrics", text, "ADDR:PORT",
        "serve Prometheus metrics at http://ADDR:PORT/metrics and the session's health at /health");
  }
  /// Empty when it is fine (`out` set if given), else the exit code (64, the line printed).
  std::optional<int> finish(const command_line& p, std::optional<listen_address>& out) const {
    if (text.empty()) return std::nullopt;
    auto a = parse_listen_address(text);
    if (!a) return usage_error(p, a.error().message);
    out = *a;
    return std::nullopt;
  }
};

}  // namespace conch::tool
