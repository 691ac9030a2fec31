// conch/tool/metrics_server.hpp — `--metrics ADDR:PORT`: serve a registry
// (tool/metrics.hpp) over HTTP/1.1 with Boost.Beast, on one thread of its own.
//
//   GET /metrics   the Prometheus text exposition, 200
//   GET /health    200 "ok" while `healthy()` holds (the session is alive),
//                  503 with the reason otherwise
//   (HEAD as GET without the body; another path 404, another method 405)
//
// Only the tools include this; the library core knows nothing of it. One
// io_context on one thread serves every connection: a client gets
// `metrics_http::timeout` to send a request (or the next one on a kept-alive
// connection) and to take the answer, then is dropped, so a slow or silent
// client holds one descriptor for a while and never the daemon or another
// scraper; past `metrics_http::max_connections` a new one is closed at once.
// A bad address is errc::invalid_argument (exit 64, parse_listen_address), a
// port that cannot be bound (in use, not ours) errc::unavailable naming it
// (exit 69).
//
//   auto addr = conch::tool::parse_listen_address("127.0.0.1:9464");   // result<listen_address>
//   auto server = conch::tool::metrics_server::start(*addr, registry, [&] { return std::string();
//   });
#pragma once

#include "conch/result.hpp"
#include "conch/tool/listen_address.hpp"
#include "conch/tool/metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace conch::tool {

namespace metrics_http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;
using responder = std::function<response(const request&)>;

/// How long a client may take to send a whole request (or, kept alive, the
/// next one) and to take a whole answer.
inline constexpr std::chrono::seconds timeout{5};
/// Connections served at once; a client past these is closed on accept.
inline constexpr std::size_t max_connections = 64;
/// The largest request head and body read; a larger request is answered 400.
inline constexpr std::uint32_t max_request = 8192;

/// One client: read a request, answer it, again while it keeps the connection.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(tcp::socket socket, const responder& answer, std::size_t& open)
      : stream_(std::move(socket)), answer_(answer), open_(open) {
    ++open_;
  }
  ~connection() { --open_; }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void read() {
    parser_.emplace();
    parser_->header_limit(max_request);
    parser_->body_limit(max_request);
    stream_.expires_after(timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout) return;
    if (ec && ec.category() != http::make_error_code(http::error::bad_method).category())
      return;  // reset, aborted: nothing to answer
    bool head = false;
    if (ec) {  // not HTTP, or too large: answer 400 and close
      res_ = response{http::status::bad_request, 11};
      res_.set(http::field::content_type, "text/plain; charset=utf-8");
      res_.body() = "bad request\n";
      res_.keep_alive(false);
    } else {
      const request& req = parser_->get();
      res_ = answer_(req);
      res_.keep_alive(req.keep_alive());
      head = req.method() == http::verb::head;
    }
    write(head);
  }
  void write(bool head) {
    if (head) {  // the length of the body GET would have, and no body
      res_.content_length(res_.body().size());
      res_.body().clear();
    } else {
      res_.prepare_payload();
    }
    stream_.expires_after(timeout);
    http::async_write(stream_, res_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec) return;
                        if (self->res_.keep_alive()) return self->read();
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{max_request};
  std::optional<http::request_parser<http::string_body>> parser_;
  response res_;
  const responder& answer_;
  std::size_t& open_;
};

}  // namespace metrics_http

class metrics_server {
 public:
  /// "" while healthy, else the reason /health gives with its 503.
  using health_check = std::function<std::string()>;

  /// Binds `addr` and serves on a thread of its own until destroyed.
  static result<std::unique_ptr<metrics_server>> start(const listen_address& addr,
                                                       const metrics_registry& registry,
                                                       health_check health) {
    auto s = std::unique_ptr<metrics_server>(new metrics_server(registry, std::move(health)));
    if (auto why = s->listen(addr); !why.empty())
      return error{errc::unavailable, "--metrics: cannot listen on " + addr.text() + ": " + why};
    s->accept();
    s->thread_ = std::thread([p = s.get()] { p->run(); });
    return s;
  }
  ~metrics_server() {
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  /// The answer to one request (what a connection sends back).
  metrics_http::response answer(const metrics_http::request& req) const {
    namespace http = metrics_http::http;
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    metrics_http::response res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    if (path != "/metrics" && path != "/health") {
      res.result(http::status::not_found);
      res.body() = "not found\n";
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET, HEAD");
    } else if (path == "/metrics") {
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = registry_.exposition();
    } else {
      const std::string why = health_ ? health_() : std::string();
      if (!why.empty()) res.result(http::status::service_unavailable);
      res.body() = why.empty() ? "ok\n" : why + "\n";
    }
    return res;
  }

 private:
  metrics_server(const metrics_registry& registry, health_check health)
      : registry_(registry),
        health_(std::move(health)),
        respond_([this](const metrics_http::request& r) { return answer(r); }) {}

  /// Binds the first address `addr` resolves to that takes it; "" or why not.
  std::string listen(const listen_address& addr) {
    using metrics_http::tcp;
    metrics_http::beast::error_code ec;
    tcp::resolver resolver(ioc_);
    const auto found =
        resolver.resolve(addr.host, std::to_string(addr.port),
                         tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec) return ec.message();
    std::string why = "no address to listen on";
    for (const auto& entry : found) {
      metrics_http::beast::error_code ignored;
      acceptor_.close(ignored);
      acceptor_.open(entry.endpoint().protocol(), ec);
      if (ec) continue;
      // Not inherited by the commands the tools start, and SO_REUSEADDR only:
      // a port another process serves is "in use", not shared.
      ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
      acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor_.bind(entry.endpoint(), ec);
      if (!ec) acceptor_.listen(tcp::socket::max_listen_connections, ec);
      if (!ec) acceptor_.non_blocking(true, ec);
      if (!ec) return {};
      why = ec.message();
    }
    acceptor_.close(ec);
    return why;
  }

  /// Waits for a client; accept4 rather than async_accept so the socket is
  /// close-on-exec from the start (the tools fork while this thread runs).
  void accept() {
    acceptor_.async_wait(metrics_http::tcp::acceptor::wait_read,
                         [this](metrics_http::beast::error_code ec) {
                           if (ec == metrics_http::asio::error::operation_aborted) return;
                           if (ec || !take()) return pause();
                           accept();
                         });
  }
  /// Takes one client off the queue; false when out of descriptors.
  bool take() {
    const int fd =
        ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM;
    if (open_ >= metrics_http::max_connections) {
      ::close(fd);
      return true;
    }
    metrics_http::tcp::socket socket(ioc_);
    metrics_http::beast::error_code ec;
    socket.assign(acceptor_.local_endpoint(ec).protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      return true;
    }
    std::make_shared<metrics_http::connection>(std::move(socket), respond_, open_)->read();
    return true;
  }
  /// Out of descriptors (or the wait failed): try again a little later
  /// rather than spin on a listening socket that stays readable.
  void pause() {
    pause_.expires_after(std::chrono::milliseconds(100));
    pause_.async_wait([this](metrics_http::beast::error_code ec) {
      if (!ec) accept();
    });
  }
  void run() noexcept {
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (...) {  // one answer failed (out of memory): keep serving the others
      }
    }
  }

  const metrics_registry& registry_;
  health_check health_;
  metrics_http::responder respond_;
  std::size_t open_ = 0;  // connections alive (only the server's thread touches it)
  metrics_http::asio::io_context ioc_{1};
  metrics_http::tcp::acceptor acceptor_{ioc_};
  metrics_http::asio::steady_timer pause_{ioc_};
  std::thread thread_;
};

}  // namespace conch::tool
