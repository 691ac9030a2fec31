// tests/support/prometheus.hpp — plain HTTP on loopback and the Prometheus
// text format, for the tests and the benchmark that read /metrics.
//
//   auto a = http_get(port, "/health");               // status and body
//   const std::string text = metrics_text(port);      // a whole /metrics text
//   metric_sum(text, "grpc_server_handled_total", {"grpc_method=\"Put\""})
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace conch::test {

/// The whole reply (status line, headers, body) to `request` sent to
/// 127.0.0.1:`port`, read until the server closes or is silent for 5 s;
/// empty if it cannot connect.
inline std::string http_exchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string raw;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[16384];
    for (pollfd p{fd, POLLIN, 0}; ::poll(&p, 1, 5000) > 0;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      raw.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return raw;
}

/// The body of the HTTP reply `raw`: what follows the blank line that ends
/// its headers (empty if they never end).
inline std::string http_body(const std::string& raw) {
  const auto end = raw.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : raw.substr(end + 4);
}

struct http_answer {
  int status = 0;
  std::string body;
};

/// GET http://127.0.0.1:port/path over HTTP/1.1 (Connection: close);
/// nothing if it cannot connect or the reply is not HTTP/1.1.
inline std::optional<http_answer> http_get(int port, const std::string& path) {
  const std::string raw = http_exchange(
      port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || raw.size() < 12) return std::nullopt;
  return http_answer{std::stoi(raw.substr(9, 3)), http_body(raw)};
}

/// The /metrics text of a plain-HTTP server on 127.0.0.1:`port` (empty if
/// unreadable). Asked over HTTP/1.0, so that a server which does not know
/// the length beforehand (etcd's) sends it whole rather than in chunks.
inline std::string metrics_text(int port) {
  return http_body(http_exchange(port, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"));
}

/// The sum of the samples of `name` in a /metrics text whose labels contain
/// every one of `labels` (fragments such as `grpc_method="Put"`); nothing if
/// no sample matches.
inline std::optional<double> metric_sum(const std::string& text, const std::string& name,
                                        const std::vector<std::string>& labels = {}) {
  std::optional<double> sum;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size() ||
        (line[name.size()] != ' ' && line[name.size()] != '{'))
      continue;
    const auto space = line.rfind(' ');
    const std::string series = line.substr(0, space);
    if (std::all_of(labels.begin(), labels.end(),
                    [&](const std::string& l) { return series.find(l) != std::string::npos; }))
      sum = sum.value_or(0) + std::strtod(line.c_str() + space + 1, nullptr);
  }
  return sum;
}

}  // namespace conch::test
