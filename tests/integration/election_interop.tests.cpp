// Interop with etcd's own election recipe (etcdctl elect): same layout, one leader between them.
#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/records.hpp"
#include "conch/policies/default_policies.hpp"

#include "support/catch_result.hpp"
#include "support/etcd_harness.hpp"
#include "support/eventually.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;
using conch::test::etcd_server;
using steady = std::chrono::steady_clock;

namespace {

using conch::test::eventually;

// A long-running etcdctl (elect holds until signalled), its output in a file.
// Killed by pid on destruction, also when a test fails.
class etcdctl_process {
 public:
  etcdctl_process(const etcd_server& etcd, std::vector<std::string> args)
      : out_path_(std::filesystem::path(etcd.dir()) /
                  ("etcdctl-" + std::to_string(++count_) + ".out")) {
    std::vector<std::string> argv{"etcdctl", "--endpoints=" + etcd.url(), "--dial-timeout=2s"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> env{"ETCDCTL_API=3"};
    for (char** e = environ; *e; ++e)
      if (std::string_view(*e).substr(0, 12) != "ETCDCTL_API=") env.emplace_back(*e);
    std::vector<char*> cenv;
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = ::posix_spawnp(&pid_, "etcdctl", &actions, nullptr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = 0;
    REQUIRE(rc == 0);
  }
  ~etcdctl_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
  }
  etcdctl_process(const etcdctl_process&) = delete;
  etcdctl_process& operator=(const etcdctl_process&) = delete;

  std::string output() const {
    std::ifstream in(out_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  bool printed(const std::string& text, std::chrono::milliseconds within = 10s) const {
    return eventually([&] { return output().find(text) != std::string::npos; }, within);
  }
  // SIGTERM: etcdctl elect resigns (a fenced delete of its key) and exits.
  int terminate(std::chrono::milliseconds within = 10s) {
    ::kill(pid_, SIGTERM);
    const auto until = steady::now() + within;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (steady::now() >= until) return -1;
      std::this_thread::sleep_for(5ms);
    }
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  void reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
  }
  static inline int count_ = 0;
  std::filesystem::path out_path_;
  pid_t pid_ = 0;
};

struct contender {
  conch::session session;
  conch::election office;
  contender(conch::etcd_transport& t, const std::string& prefix, const std::string& name)
      : session(t, conch::session::options{std::chrono::seconds{30}, {}}),
        office(session, prefix, name) {
    REQUIRE(session.start());
  }
};

std::vector<conch::key_value> candidates(conch::etcd_transport& t, const std::string& office) {
  auto r = t.range(conch::range_request::prefix(office), t.default_deadline());
  REQUIRE(r);
  return r->kvs;
}

std::string holder_json(const conch::session& s, const std::string& name) {
  conch::detail::holder_record h{};
  h.host = "interop-test";
  h.pid = static_cast<std::int64_t>(::getpid());
  h.name = name;
  h.lease = conch::detail::lease_hex(s.lease());
  return conch::detail::encode_record(h);
}

}  // namespace

TEST_CASE("etcdctl elect -l prints conch's leader key and holder record") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  contender a{t, prefix, "office"};
  const auto record = holder_json(a.session, "office");
  REQUIRE(a.office.campaign(record));

  // etcdctl names the election by its key prefix and appends "/" itself.
  etcdctl_process listen{etcd, {"elect", "-l", prefix + "elect/office"}};
  REQUIRE(listen.printed(a.office.key()));
  REQUIRE(listen.printed(record));
}

TEST_CASE("an etcdctl contender waits behind a conch leader and takes over when it resigns") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";
  contender a{t, prefix, "office"};
  REQUIRE(a.office.campaign("conch-a"));

  etcdctl_process rival{etcd, {"elect", prefix + "elect/office", "etcdctl-proposal"}};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 10s));
  // Queued, not leading: etcdctl prints its key only once elected.
  CHECK_FALSE(rival.printed(office, 300ms));
  auto who = conch::election::leader(t, prefix, "office");
  REQUIRE(who);
  REQUIRE(who->has_value());
  CHECK((*who)->key == a.office.key());

  REQUIRE(a.office.resign());
  REQUIRE(rival.printed(office));
  who = conch::election::leader(t, prefix, "office");
  REQUIRE(who);
  REQUIRE(who->has_value());
  CHECK((*who)->value == "etcdctl-proposal");
  CHECK(rival.output().find((*who)->key) != std::string::npos);
  CHECK(rival.terminate() == 0);
}

TEST_CASE("a conch contender waits behind an etcdctl leader and takes over when it resigns") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";

  etcdctl_process rival{etcd, {"elect", prefix + "elect/office", "etcdctl-proposal"}};
  REQUIRE(rival.printed(office));  // elected: the office was vacant

  contender b{t, prefix, "office"};
  std::stop_source stop;
  conch::election::campaign_options o;
  o.stop = stop.get_token();
  auto done = std::async(std::launch::async, [&] { return b.office.campaign("conch-b", o); });
  struct stop_on_exit {
    std::stop_source& s;
    ~stop_on_exit() { s.request_stop(); }
  } guard{stop};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 10s));
  CHECK(done.wait_for(300ms) == std::future_status::timeout);  // never both lead

  conch::election::campaign_options busy;
  busy.nonblock = true;
  contender c{t, prefix, "office"};
  auto r = c.office.campaign("conch-c", busy);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == conch::errc::busy);

  REQUIRE(rival.terminate() == 0);  // SIGTERM: etcdctl resigns
  REQUIRE(done.wait_for(10s) == std::future_status::ready);
  REQUIRE(done.get());
  CHECK(b.office.leading());
  auto left = candidates(t, office);
  REQUIRE(left.size() == 1);
  CHECK(left[0].value == "conch-b");
}

TEST_CASE("an etcdctl leader's resign (no held marker) counts as unclean: the lock delay applies") {
  auto& etcd = etcd_server::shared();
  conch::etcd_transport t{etcd.client_options()};
  const auto prefix = conch::test::unique_prefix();
  const auto office = prefix + "elect/office/";

  etcdctl_process rival{etcd, {"elect", prefix + "elect/office", "etcdctl-proposal"}};
  REQUIRE(rival.printed(office));

  contender b{t, prefix, "office"};
  std::stop_source stop;
  conch::election::campaign_options o;
  o.stop = stop.get_token();
  o.lock_delay = 1500ms;
  steady::time_point returned{};
  auto done = std::async(std::launch::async, [&] {
    auto r = b.office.campaign("conch-b", o);
    returned = steady::now();
    return r;
  });
  struct stop_on_exit {
    std::stop_source& s;
    ~stop_on_exit() { s.request_stop(); }
  } guard{stop};
  REQUIRE(eventually([&] { return candidates(t, office).size() == 2; }, 10s));

  const auto resigned = steady::now();
  REQUIRE(rival.terminate() == 0);  // a bare delete of its key: nothing says it was clean
  REQUIRE(done.wait_for(15s) == std::future_status::ready);
  REQUIRE(done.get());
  CHECK(b.office.leading());
  CHECK(returned >= resigned + 1500ms);
}
