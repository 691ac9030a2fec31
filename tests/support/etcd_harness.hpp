// tests/support/etcd_harness.hpp — a real etcd for integration tests.
//
// Each test binary starts its own single-member etcd from PATH, in a fresh
// temp dir, on free loopback ports, and tears it down by pid: on destruction,
// at exit, and on abort or a fatal signal (and, via PR_SET_PDEATHSIG, when
// the test binary itself is SIGKILLed). Tests share it and stay apart by key
// prefix:
//
//   auto& etcd = conch::test::etcd_server::shared();
//   conch::etcd_transport t{etcd.client_options()};
//   auto prefix = conch::test::unique_prefix();
//
// Fault helpers: stop()/start()/restart() keep ports and data; revoke_lease()
// and compact() act through etcdctl, as an operator would. TLS (certificates
// made with openssl in the temp dir) and auth are per-instance options.
#pragma once

#include "conch/policies/transport.hpp"

#include "etcd_harness_process.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <signal.h>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace conch::test {

/// A key prefix no other test (in this or another process) uses.
inline std::string unique_prefix() {
  static const std::string run_id = [] {
    std::random_device rd;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), static_cast<unsigned>(::getpid()));
    return std::string(buf);
  }();
  static std::atomic<int> counter{0};
  return "t/" + run_id + "/" + std::to_string(counter.fetch_add(1) + 1) + "/";
}

/// How an etcd_server is started.
struct etcd_options {
  bool tls = false;               ///< serve clients over TLS (certs made in the temp dir)
  bool client_cert_auth = false;  ///< require a client certificate (implies tls)
  /// etcd's --experimental-watch-progress-notify-interval; 0 keeps etcd's default.
  std::chrono::milliseconds progress_notify_interval{0};
  /// etcd's --quota-backend-bytes (past it, writes fail: "database space exceeded"); 0: default.
  std::int64_t quota_backend_bytes = 0;
};

/// One real single-member etcd (see the file comment).
class etcd_server {
 public:
  using options = etcd_options;

  explicit etcd_server(options opts = {}) : opts_(opts) {
    if (opts_.client_cert_auth) opts_.tls = true;
    etcd_path_ = harness_detail::find_in_path("etcd");
    char tmpl[] = "/tmp/conch-etcd-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("etcd harness: mkdtemp failed");
    dir_ = tmpl;
    try {
      if (opts_.tls) make_certificates();
      // A free port can be taken by someone else before etcd binds it: retry.
      for (int attempt = 0;; ++attempt) {
        client_port_ = harness_detail::free_loopback_port();
        peer_port_ = harness_detail::free_loopback_port();
        try {
          start();
          break;
        } catch (const std::exception&) {
          if (attempt == 2) throw;
        }
      }
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      throw;
    }
  }

  ~etcd_server() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  etcd_server(const etcd_server&) = delete;
  etcd_server& operator=(const etcd_server&) = delete;

  /// One etcd per test binary, started on first use, killed at exit or abort.
  static etcd_server& shared() {
    static etcd_server instance;
    return instance;
  }

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }
  std::string url() const { return (opts_.tls ? "https://" : "http://") + endpoint(); }
  int client_port() const { return client_port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& dir() const { return dir_; }
  const options& opts() const { return opts_; }

  /// TLS material (empty without tls): the CA, and a client certificate/key
  /// signed by it.
  std::string ca_file() const { return opts_.tls ? dir_ + "/ca.crt" : std::string(); }
  std::string cert_file() const { return opts_.tls ? dir_ + "/client.crt" : std::string(); }
  std::string key_file() const { return opts_.tls ? dir_ + "/client.key" : std::string(); }

  /// What a conch client needs to reach this etcd (TLS files when tls is on,
  /// the client certificate when client_cert_auth is on; no user).
  conch::transport_options client_options() const {
    conch::transport_options o;
    o.endpoints = {endpoint()};
    o.call_timeout = std::chrono::milliseconds(5000);
    o.dial_timeout = std::chrono::milliseconds(2000);
    if (opts_.tls) o.ca_file = ca_file();
    if (opts_.client_cert_auth) {
      o.cert_file = cert_file();
      o.key_file = key_file();
    }
    return o;
  }

  /// Kills etcd (SIGKILL, as a crash would) and reaps it. Data stays.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    harness_detail::forget(pid_);
    pid_ = 0;
  }

  /// Starts etcd on the same ports and data dir and waits until it serves.
  void start() {
    if (pid_ > 0) return;
    spawn();
    wait_healthy();
  }

  void restart() {
    stop();
    start();
  }

  /// Runs `etcdctl <args>` (ETCDCTL_API=3) against this etcd, as root once
  /// auth is enabled; stdout+stderr go to *out. Returns the exit code.
  int etcdctl(const std::vector<std::string>& args, std::string* out = nullptr) const {
    std::vector<std::string> argv{"etcdctl", "--endpoints=" + url(), "--dial-timeout=2s",
                                  "--command-timeout=5s"};
    if (opts_.tls) {
      argv.push_back("--cacert=" + ca_file());
      argv.push_back("--cert=" + cert_file());
      argv.push_back("--key=" + key_file());
    }
    if (!root_password_.empty()) argv.push_back("--user=root:" + root_password_);
    argv.insert(argv.end(), args.begin(), args.end());
    return harness_detail::run(argv, {"ETCDCTL_API=3"}, out, std::chrono::seconds(15));
  }

  /// etcdctl that must succeed; returns its output.
  std::string etcdctl_ok(const std::vector<std::string>& args) const {
    std::string out;
    int rc = etcdctl(args, &out);
    if (rc != 0) {
      std::string cmd;
      for (auto& a : args) cmd += " " + a;
      throw std::runtime_error("etcd harness: etcdctl" + cmd + " failed (" + std::to_string(rc) +
                               "): " + out);
    }
    return out;
  }

  /// The store's current revision.
  conch::revision current_revision() const {
    return harness_detail::json_int(etcdctl_ok({"get", "conch-harness-probe", "-w", "json"}),
                                    "revision");
  }

  /// Revokes a lease the way an operator would (`etcdctl lease revoke`).
  void revoke_lease(conch::lease_id id) const {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(id));
    etcdctl_ok({"lease", "revoke", hex});
  }

  /// Compacts the history up to the current revision; returns that revision.
  conch::revision compact() const {
    auto rev = current_revision();
    etcdctl_ok({"compaction", "--physical", std::to_string(rev)});
    return rev;
  }

  /// Creates `user` with a role granting readwrite on `prefix` only. Works
  /// before or after enable_auth().
  void add_user(const std::string& user, const std::string& password,
                const std::string& prefix) const {
    const std::string role = "role-" + user;
    etcdctl_ok({"role", "add", role});
    etcdctl_ok({"role", "grant-permission", role, "--prefix=true", "readwrite", prefix});
    etcdctl_ok({"user", "add", user, "--new-user-password=" + password});
    etcdctl_ok({"user", "grant-role", user, role});
  }

  /// Turns auth on with a root user; from then on etcdctl() runs as root.
  void enable_auth(const std::string& root_password = "conch-root-pw") {
    etcdctl_ok({"user", "add", "root", "--new-user-password=" + root_password});
    etcdctl_ok({"user", "grant-role", "root", "root"});
    etcdctl_ok({"auth", "enable"});
    root_password_ = root_password;
  }

  /// The tail of etcd's log, for failure messages.
  std::string log_tail(std::size_t bytes = 2000) const {
    std::ifstream in(dir_ + "/etcd.log");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > bytes ? all.substr(all.size() - bytes) : all;
  }

 private:
  void make_certificates() {
    auto openssl = [&](std::vector<std::string> args) {
      args.insert(args.begin(), "openssl");
      std::string out;
      if (harness_detail::run(args, {}, &out, std::chrono::seconds(30)) != 0)
        throw std::runtime_error("etcd harness: openssl " + args[1] + " failed: " + out);
    };
    auto path = [&](const char* name) { return dir_ + "/" + name; };
    {
      std::ofstream(path("server.ext")) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                           "extendedKeyUsage=serverAuth,clientAuth\n";
      std::ofstream(path("client.ext")) << "extendedKeyUsage=clientAuth\n";
    }
    const std::vector<std::string> ec_key{"-newkey", "ec", "-pkeyopt",
                                          "ec_paramgen_curve:prime256v1", "-nodes"};
    auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    openssl(with({"req", "-x509", "-days", "2", "-subj", "/CN=conch-test-ca", "-keyout",
                  path("ca.key"), "-out", path("ca.crt")},
                 ec_key));
    for (const char* who : {"server", "client"}) {
      std::string w = who;
      openssl(with({"req", "-subj", "/CN=conch-test-" + w, "-keyout", path((w + ".key").c_str()),
                    "-out", path((w + ".csr").c_str())},
                   ec_key));
      openssl({"x509", "-req", "-days", "2", "-in", path((w + ".csr").c_str()), "-CA",
               path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial", "-out",
               path((w + ".crt").c_str()), "-extfile", path((w + ".ext").c_str())});
    }
  }

  void spawn() {
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    std::vector<std::string> args{
        etcd_path_,
        "--name=conch-test",
        "--data-dir=" + dir_ + "/data",
        "--listen-client-urls=" + url(),
        "--advertise-client-urls=" + url(),
        "--listen-peer-urls=" + peer,
        "--initial-advertise-peer-urls=" + peer,
        "--initial-cluster=conch-test=" + peer,
        "--initial-cluster-state=new",
        // One member: no peer to wait for, so short timeouts only make
        // (re)starts elect themselves quickly.
        "--heartbeat-interval=10",
        "--election-timeout=100",
        "--logger=zap",
        "--log-level=warn",
    };
    if (opts_.tls) {
      args.push_back("--cert-file=" + dir_ + "/server.crt");
      args.push_back("--key-file=" + dir_ + "/server.key");
      args.push_back("--trusted-ca-file=" + dir_ + "/ca.crt");
    }
    if (opts_.client_cert_auth) args.push_back("--client-cert-auth");
    if (opts_.quota_backend_bytes > 0)
      args.push_back("--quota-backend-bytes=" + std::to_string(opts_.quota_backend_bytes));
    if (opts_.progress_notify_interval.count() > 0)
      args.push_back("--experimental-watch-progress-notify-interval=" +
                     std::to_string(opts_.progress_notify_interval.count()) + "ms");

    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int log = ::open((dir_ + "/etcd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0) throw std::runtime_error("etcd harness: cannot open etcd.log");
    // Only the main thread lives as long as the process, so only then can
    // the child safely die with its parent thread.
    const bool die_with_parent = ::syscall(SYS_gettid) == ::getpid();
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      if (die_with_parent) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
      }
      ::dup2(null, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log);
    ::close(null);
    if (pid < 0) throw std::runtime_error("etcd harness: fork failed");
    pid_ = pid;
    harness_detail::remember(pid_);
  }

  void wait_healthy() {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        harness_detail::forget(pid_);
        pid_ = 0;
        throw std::runtime_error("etcd harness: etcd exited at start; log:\n" + log_tail());
      }
      if (harness_detail::port_accepts(client_port_) &&
          etcdctl({"endpoint", "health", "--command-timeout=2s"}) == 0)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    throw std::runtime_error("etcd harness: etcd not healthy within 20s; log:\n" + log_tail());
  }

  options opts_;
  std::string etcd_path_;
  std::string dir_;
  int client_port_ = 0;
  int peer_port_ = 0;
  pid_t pid_ = 0;
  std::string root_password_;
};

}  // namespace conch::test
