// conch/tool/metrics_server.hpp — `--metrics ADDR:PORT`: serve a registry
// (tool/metrics.hpp) over HTTP with cpp-httplib.
//
//   GET /metrics   the Prometheus text exposition, 200
//   GET /health    200 "ok" while `healthy()` holds (the session is alive),
//                  503 with the reason otherwise
//
// Only the tools link this (cpp-httplib); the library core knows nothing of it.
// A bad address is errc::invalid_argument (exit 64), a port that cannot be
// bound (in use, not ours) errc::unavailable naming it (exit 69).
//
//   auto addr = conch::tool::parse_listen_address("127.0.0.1:9464");   // result<listen_address>
//   auto server = conch::tool::metrics_server::start(*addr, registry, [&] { return std::string();
//   });
#pragma once

#include "conch/result.hpp"
#include "conch/tool/listen_address.hpp"
#include "conch/tool/metrics.hpp"

#include <cerrno>
#include <cstring>
#include <functional>
#include <httplib.h>
#include <memory>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <thread>

namespace conch::tool {

class metrics_server {
 public:
  /// "" while healthy, else the reason /health gives with its 503.
  using health_check = std::function<std::string()>;

  /// Binds `addr` and serves on a thread of its own until destroyed.
  static result<std::unique_ptr<metrics_server>> start(const listen_address& addr,
                                                       const metrics_registry& registry,
                                                       health_check health) {
    auto s = std::unique_ptr<metrics_server>(new metrics_server(registry, std::move(health)));
    // SO_REUSEADDR only: a port another process serves is "in use", not shared.
    s->server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    errno = 0;
    if (!s->server_.bind_to_port(addr.host, addr.port)) {
      const int err = errno;
      return error{errc::unavailable,
                   "--metrics: cannot listen on " + addr.text() + ": " +
                       (err ? std::strerror(err) : "address in use or not available")};
    }
    s->thread_ = std::thread([p = s.get()] { p->server_.listen_after_bind(); });
    return s;
  }
  ~metrics_server() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

 private:
  metrics_server(const metrics_registry& registry, health_check health)
      : registry_(registry), health_(std::move(health)) {
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(registry_.exposition(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const std::string why = health_ ? health_() : std::string();
      res.status = why.empty() ? 200 : 503;
      res.set_content(why.empty() ? "ok\n" : why + "\n", "text/plain; charset=utf-8");
    });
  }

  const metrics_registry& registry_;
  health_check health_;
  httplib::Server server_;
  std::thread thread_;
};

}  // namespace conch::tool
