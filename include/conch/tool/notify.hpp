// conch/tool/notify.hpp — tell systemd how a Type=notify service is doing.
//
// The sd_notify protocol, spoken directly (no libsystemd): one datagram per
// message, newline-separated VAR=value lines, sent to the unix socket named by
// $NOTIFY_SOCKET (a path, or "@name" for an abstract socket). With no
// NOTIFY_SOCKET every call is a no-op, so the tools behave the same outside
// systemd.
//
//   READY=1      the service is up: conchd holds its session, elect runs its child
//   STATUS=...   one line for `systemctl status`: what it holds or waits for
//   WATCHDOG=1   still alive: sent only while the lease is being renewed, at
//                least every half of $WATCHDOG_USEC (systemd's WatchdogSec=)
//   STOPPING=1   shutting down
//
// The variables are read once, before main() runs and before any thread
// exists, and removed from the environment, so a child the tool starts cannot
// speak for it (a binary that includes this header gets that behaviour).
//
//   auto n = conch::tool::notifier::from_environment();
//   n.status("waiting for office report");
//   n.ready("leading office report (token 42)");
//   n.feed(session.local_deadline());   // from the loop that watches the lease
#pragma once

#include "conch/result.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace conch::tool {

class notifier {
 public:
  using clock = std::chrono::steady_clock;

  /// A notifier that sends nothing.
  notifier() = default;
  notifier(std::string socket, std::optional<std::chrono::microseconds> watchdog)
      : socket_(std::move(socket)), watchdog_(watchdog) {}
  notifier(notifier&& o) noexcept : socket_(std::move(o.socket_)), watchdog_(o.watchdog_) {}

  /// The notifier systemd asked for (see captured_notify_environment).
  static notifier from_environment();

  bool enabled() const noexcept { return !socket_.empty(); }
  /// systemd's watchdog interval (WatchdogSec=), if it watches this process.
  std::optional<std::chrono::microseconds> watchdog_interval() const noexcept { return watchdog_; }

  /// Sends `message` (VAR=value lines) as one datagram. No-op when disabled.
  result<void> send(std::string_view message) const {
    if (!enabled()) return {};
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_.size() >= sizeof addr.sun_path)
      return error{errc::invalid_argument, "NOTIFY_SOCKET is too long: " + socket_};
    std::memcpy(addr.sun_path, socket_.data(), socket_.size());
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return error{errc::unavailable, std::string("notify socket: ") + std::strerror(errno)};
    const auto n = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                            reinterpret_cast<const sockaddr*>(&addr), len);
    const int err = errno;
    ::close(fd);
    if (n < 0) return error{errc::unavailable, "notify " + socket_ + ": " + std::strerror(err)};
    return {};
  }

  /// READY=1, with a STATUS= line when `status` is not empty.
  void ready(std::string_view status = {}) {
    (void)send(status.empty() ? std::string("READY=1") : "READY=1\nSTATUS=" + one_line(status));
  }
  void status(std::string_view status) { (void)send("STATUS=" + one_line(status)); }
  void stopping(std::string_view status = {}) {
    (void)send(status.empty() ? std::string("STOPPING=1")
                              : "STOPPING=1\nSTATUS=" + one_line(status));
  }

  /// Feeds systemd's watchdog from the loop that watches the lease: sends
  /// WATCHDOG=1 if `lease_deadline` (the session's local deadline) is still
  /// ahead and half the watchdog interval passed since the last one. A lease
  /// that stops being renewed stops the keepalive, and systemd restarts us.
  /// Returns whether a WATCHDOG=1 went out.
  bool feed(clock::time_point lease_deadline, clock::time_point now = clock::now()) {
    if (!enabled() || !watchdog_ || now >= lease_deadline) return false;
    std::lock_guard lock{mutex_};
    if (last_feed_ && now - *last_feed_ < *watchdog_ / 2) return false;
    last_feed_ = now;
    return static_cast<bool>(send("WATCHDOG=1"));
  }

 private:
  static std::string one_line(std::string_view s) {
    std::string out(s);
    for (char& c : out)
      if (c == '\n' || c == '\r') c = ' ';
    return out;
  }

  std::string socket_;
  std::optional<std::chrono::microseconds> watchdog_;
  std::mutex mutex_;
  std::optional<clock::time_point> last_feed_;
};

/// How often a loop should look at the lease to feed systemd's watchdog in
/// time (a quarter of its interval); a day when there is none.
inline std::chrono::milliseconds notify_every(const notifier& n) {
  if (!n.enabled() || !n.watchdog_interval()) return std::chrono::hours(24);
  return std::max(
      std::chrono::milliseconds(10),
      std::chrono::duration_cast<std::chrono::milliseconds>(*n.watchdog_interval() / 4));
}

namespace notify_detail {

/// NOTIFY_SOCKET and the watchdog interval, as systemd gave them.
struct notify_environment {
  std::string socket;
  std::optional<std::chrono::microseconds> watchdog;

  /// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then unsets them.
  /// The watchdog applies only if WATCHDOG_PID is unset or names this process.
  static notify_environment capture() {
    notify_environment env;
    if (const char* s = std::getenv("NOTIFY_SOCKET"); s && *s) env.socket = s;
    if (const char* u = std::getenv("WATCHDOG_USEC"); u && *u) {
      char* end = nullptr;
      const unsigned long long usec = std::strtoull(u, &end, 10);
      const char* pid = std::getenv("WATCHDOG_PID");
      const bool ours =
          !pid || !*pid || std::strtol(pid, nullptr, 10) == static_cast<long>(::getpid());
      if (end && *end == '\0' && usec > 0 && ours) env.watchdog = std::chrono::microseconds(usec);
    }
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    return env;
  }
};

/// Captured during static initialisation: single-threaded, before main().
inline const notify_environment captured_notify_environment = notify_environment::capture();

}  // namespace notify_detail

inline notifier notifier::from_environment() {
  return notifier{notify_detail::captured_notify_environment.socket,
                  notify_detail::captured_notify_environment.watchdog};
}

}  // namespace conch::tool
