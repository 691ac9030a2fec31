// systemd's notify protocol, end to end: the test plays systemd — it binds a
// unix datagram socket, hands it to `conch elect` / `conchd` as NOTIFY_SOCKET
// with a WATCHDOG_USEC, and reads what they send, against a real etcd.
#include "support/conch_process.hpp"
#include "support/etcd_harness.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using conch::test::conch_run;
using conch::test::temp_dir;

namespace {

/// The receiving end of NOTIFY_SOCKET: every datagram, in arrival order.
class notify_socket {
 public:
  explicit notify_socket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~notify_socket() { ::close(fd_); }

  /// Reads datagrams until one satisfies `match` (true) or `limit` passes.
  bool until(const std::function<bool(const std::string&)>& match,
             std::chrono::milliseconds limit = 20s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      messages.emplace_back(buf, static_cast<std::size_t>(n));
      if (match(messages.back())) return true;
    }
  }
  /// Index of the first message at or after `from` containing `line`, if any.
  std::optional<std::size_t> find(const std::string& line, std::size_t from = 0) const {
    for (std::size_t i = from; i < messages.size(); ++i)
      if (has_line(messages[i], line)) return i;
    return std::nullopt;
  }
  static bool has_line(const std::string& message, const std::string& start) {
    std::size_t at = 0;
    while (at <= message.size()) {
      auto nl = message.find('\n', at);
      if (message.compare(at, start.size(), start) == 0) return true;
      if (nl == std::string::npos) return false;
      at = nl + 1;
    }
    return false;
  }
  std::string all() const {
    std::string s;
    for (const auto& m : messages) s += "[" + m + "] ";
    return s;
  }

  std::vector<std::string> messages;
  const std::string path_;

 private:
  int fd_ = -1;
};

std::vector<std::string> env_for(const std::string& prefix, const std::string& socket = {}) {
  std::vector<std::string> env{"CONCH_ENDPOINTS=" + conch::test::etcd_server::shared().endpoint(),
                               "CONCH_PREFIX=" + prefix};
  if (!socket.empty()) {
    env.push_back("NOTIFY_SOCKET=" + socket);
    env.push_back("WATCHDOG_USEC=400000");  // WATCHDOG=1 at least every 200ms
  }
  return env;
}

auto starts_with(const std::string& line) {
  return [line](const std::string& m) { return notify_socket::has_line(m, line); };
}

}  // namespace

TEST_CASE("conch elect: STATUS while waiting, READY once the child runs, WATCHDOG while held",
          "[notify]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  const std::string first_ran = dir / "first", second_ran = dir / "second";
  conch_run first(dir, "first",
                  {"elect", "office", "--", "sh", "-c", "touch " + first_ran + "; exec sleep 60"},
                  env_for(prefix));
  REQUIRE(conch::test::await([&] { return std::filesystem::exists(first_ran); }));

  notify_socket sock(dir / "notify.sock");
  conch_run second(dir, "second",
                   {"elect", "office", "--", "sh", "-c",
                    "echo \"${NOTIFY_SOCKET:-unset}\" > " + second_ran + "; exec sleep 60"},
                   env_for(prefix, sock.path_));
  // Waiting: the status says so, and the watchdog is fed while the lease holds.
  REQUIRE(sock.until(starts_with("STATUS=waiting for office office")));
  REQUIRE(sock.until(starts_with("WATCHDOG=1")));
  CHECK_FALSE(sock.find("READY=1"));

  first.signal(SIGTERM);
  CHECK(first.wait() == 143);
  REQUIRE(sock.until(starts_with("READY=1")));
  const auto ready = *sock.find("READY=1");
  INFO(sock.all());
  CHECK(sock.messages[ready].find("STATUS=leading office office (token ") != std::string::npos);
  CHECK(sock.messages[ready].find("running pid ") != std::string::npos);
  CHECK(*sock.find("STATUS=waiting for office office") < ready);
  REQUIRE(sock.until(starts_with("WATCHDOG=1")));
  CHECK(sock.find("WATCHDOG=1", ready + 1));

  // The child cannot speak for the wrapper: NOTIFY_SOCKET is not passed on.
  CHECK(conch::test::line_from(second_ran) == "unset");

  second.signal(SIGTERM);
  CHECK(second.wait() == 143);
  REQUIRE(sock.until(starts_with("STOPPING=1")));
  CHECK(sock.find("STOPPING=1", ready));
}

TEST_CASE("conchd: READY once its session holds, then WATCHDOG, STOPPING on SIGTERM", "[notify]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  notify_socket sock(dir / "notify.sock");
  conch_run daemon(dir, "conchd", {}, env_for(prefix, sock.path_), conch::test::conchd_bin());
  REQUIRE(sock.until(starts_with("READY=1")));
  const auto ready = *sock.find("READY=1");
  INFO(sock.all());
  CHECK(sock.messages[ready].find("STATUS=running the jobs under " + prefix) != std::string::npos);
  CHECK(sock.messages[ready].find(", lease ") != std::string::npos);
  // The watchdog is fed after READY, from the loop that follows the lease.
  REQUIRE(sock.until(starts_with("WATCHDOG=1")));
  CHECK(*sock.find("WATCHDOG=1") > ready);

  daemon.signal(SIGTERM);
  CHECK(daemon.wait() == 0);
  REQUIRE(sock.until(starts_with("STOPPING=1")));
}

TEST_CASE("conch elect without NOTIFY_SOCKET runs as before", "[notify]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run run(dir, "plain", {"elect", "office", "--", "true"}, env_for(prefix));
  CHECK(run.wait() == 0);
}
