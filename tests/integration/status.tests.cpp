// `conch status` as a real process against a real etcd: offices, semaphores
// and jobs in one view; --watch redraws on changes.
#include "support/conch_process.hpp"
#include "support/etcd_harness.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using conch::test::await;
using conch::test::conch_run;
using conch::test::temp_dir;
using json = nlohmann::json;

namespace {

std::vector<std::string> env_for(const std::string& prefix) {
  return {"CONCH_ENDPOINTS=" + conch::test::etcd_server::shared().endpoint(),
          "CONCH_PREFIX=" + prefix};
}

std::vector<std::string> touch_and_sleep(const std::string& file) {
  return {"sh", "-c", "touch " + file + "; exec sleep 60"};
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("conch status: leaders, waiters in order, slots and jobs", "[status]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  const auto env = env_for(prefix);
  conch_run leader(dir, "leader", cat({"elect", "web", "--"}, touch_and_sleep(dir / "leader")),
                   env);
  REQUIRE(await([&] { return std::filesystem::exists(dir / "leader"); }));
  conch_run waiter(dir, "waiter", {"elect", "web", "--", "true"}, env);
  conch_run slot(dir, "slot",
                 cat({"sema", "pool", "--max", "2", "--"}, touch_and_sleep(dir / "slot")), env);
  REQUIRE(await([&] { return std::filesystem::exists(dir / "slot"); }));
  conch_run add(dir, "add", {"cron", "add", "backup", "--schedule", "@daily", "--", "true"}, env);
  REQUIRE(add.wait() == 0);

  json view;
  REQUIRE(await([&] {  // the waiter's key is written soon after it starts
    conch_run st(dir, "status", {"status", "--json"}, env);
    if (st.wait() != 0) return false;
    view = json::parse(st.out());
    return view["offices"].size() == 1 && view["offices"][0]["waiters"].size() == 1;
  }));
  INFO(view.dump(2));
  const auto& web = view["offices"][0];
  CHECK(web["name"] == "web");
  CHECK(web["leader"]["pid"] == leader.pid());
  CHECK(web["leader"]["token"].get<long long>() > 0);
  CHECK(web["leader"].contains("age_s"));
  CHECK(web["waiters"][0]["pid"] == waiter.pid());
  REQUIRE(view["semaphores"].size() == 1);
  CHECK(view["semaphores"][0]["name"] == "pool");
  CHECK(view["semaphores"][0]["max"] == 2);
  REQUIRE(view["semaphores"][0]["holders"].size() == 1);
  CHECK(view["semaphores"][0]["holders"][0]["pid"] == slot.pid());
  REQUIRE(view["jobs"].size() == 1);
  CHECK(view["jobs"][0]["name"] == "backup");

  conch_run text(dir, "text", {"status"}, env);
  REQUIRE(text.wait() == 0);
  CHECK(text.out().find("web  leader ") != std::string::npos);
  CHECK(text.out().find("waiting 1. ") != std::string::npos);
  CHECK(text.out().find("pool  1 of 2 held") != std::string::npos);
  CHECK(text.out().find("backup  @daily  next ") != std::string::npos);

  conch_run names(dir, "names", {"status", "--names"}, env);
  REQUIRE(names.wait() == 0);
  CHECK(names.out() == "elect web\nsema pool\ncron backup\n");
}

TEST_CASE("conch status --watch redraws when something changes under the prefix", "[status]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  const auto env = env_for(prefix);
  conch_run watch(dir, "watch", {"status", "--watch", "--json"}, env);
  REQUIRE(await([&] { return conch::test::lines_of(watch.out()).size() == 1; }));
  CHECK(json::parse(conch::test::lines_of(watch.out())[0])["jobs"].empty());

  conch_run add(dir, "add", {"cron", "add", "nightly", "--schedule", "@daily", "--", "true"}, env);
  REQUIRE(add.wait() == 0);
  REQUIRE(await([&] { return conch::test::lines_of(watch.out()).size() >= 2; }));
  CHECK(json::parse(conch::test::lines_of(watch.out()).back())["jobs"][0]["name"] == "nightly");

  watch.signal(SIGTERM);
  CHECK(watch.wait() == 0);
}

TEST_CASE("conch status: etcd unreachable exits 69 with one line", "[status]") {
  temp_dir dir;
  conch_run st(dir, "down", {"status", "--endpoints", "127.0.0.1:1"}, {});
  CHECK(st.wait() == 69);
  CHECK(conch::test::lines_of(st.err()).size() == 1);
}
