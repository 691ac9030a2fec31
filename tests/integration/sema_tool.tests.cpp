// `conch sema` as real processes against a real etcd: each line of the tool
// contract (SPEC §3 "semaphore") is a test here.
#include "conch/logic/hex.hpp"
#include "conch/process/group.hpp"

#include "support/conch_process.hpp"
#include "support/etcd_harness.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using conch::test::await;
using conch::test::conch_run;
using conch::test::line_from;
using conch::test::lines_of;
using conch::test::temp_dir;
using json = nlohmann::json;

namespace {

std::vector<std::string> env_for(const std::string& prefix) {
  return {"CONCH_ENDPOINTS=" + conch::test::etcd_server::shared().endpoint(),
          "CONCH_PREFIX=" + prefix};
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// A child that records its environment and pid, and holds until `<tag>.release` exists.
std::vector<std::string> holding_child(const temp_dir& dir, const std::string& tag) {
  return {"sh", "-c",
          "echo \"$CONCH_SLOT $CONCH_REV $CONCH_KEY $CONCH_LEASE $CONCH_NAME\" > \"$1.env\"; echo "
          "$$ > \"$1.pid\"; "
          "while [ ! -e \"$1.release\" ]; do sleep 0.02; done",
          "sh", dir / tag};
}

/// `conch sema pool --max N -- <holding child>` as contender `tag`.
std::vector<std::string> contend(const temp_dir& dir, const std::string& tag, int max,
                                 std::vector<std::string> flags = {}) {
  auto args = cat({"sema", "pool", "--max", std::to_string(max)}, flags);
  return cat(cat(args, {"--"}), holding_child(dir, tag));
}

void release(const temp_dir& dir, const std::string& tag) {
  std::ofstream(dir / (tag + ".release")).put('\n');
}
bool started(const temp_dir& dir, const std::string& tag) {
  return std::filesystem::exists(dir / (tag + ".env"));
}

struct child_env {
  int slot = -1;
  long long rev = 0;
  std::string key, lease, name;
};
child_env env_of(const temp_dir& dir, const std::string& tag) {
  std::stringstream fields(line_from(dir / (tag + ".env")));
  child_env e;
  fields >> e.slot >> e.rev >> e.key >> e.lease >> e.name;
  return e;
}

/// `conch sema pool --max N --who --json`, parsed.
json who(const temp_dir& dir, const std::string& prefix, int max) {
  for (int attempt = 1;; ++attempt) {
    conch_run w(dir, "who", {"sema", "pool", "--max", std::to_string(max), "--who", "--json"},
                env_for(prefix));
    auto code = w.wait();
    REQUIRE(code);
    // An observer that could not connect (a loaded machine) just looks again.
    if (*code == 69 && attempt < 3) continue;
    INFO("stderr: " << w.err());
    REQUIRE((*code == 0 || *code == 1));
    return json::parse(w.out());
  }
}

/// Waits until --who shows `holders` slots held and `waiters` waiting; returns
/// that listing. On failure, says what the `runs` wrote to stderr.
json await_who(const temp_dir& dir, const std::string& prefix, int max, std::size_t holders,
               std::size_t waiters, std::vector<conch_run*> runs = {}) {
  json seen;
  bool ok = await(
      [&] {
        seen = who(dir, prefix, max);
        return seen["slots"].size() == holders && seen["waiters"].size() == waiters;
      },
      20s);
  std::string said;
  for (auto* r : runs)
    said += "\n  pid " + std::to_string(r->pid()) + (r->running() ? " (running): " : " (ended): ") +
            r->err();
  INFO("last --who: " << seen.dump() << said);
  REQUIRE(ok);
  return seen;
}

}  // namespace

TEST_CASE("sema: N+1 contenders run exactly N children; a release lets the last one in", "[sema]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", contend(dir, "a", 2), env_for(prefix));
  conch_run b(dir, "b", contend(dir, "b", 2), env_for(prefix));
  conch_run c(dir, "c", contend(dir, "c", 2), env_for(prefix));
  auto listing = await_who(dir, prefix, 2, 2, 1, {&a, &b, &c});

  const auto waiter_pid = listing["waiters"][0]["pid"].get<pid_t>();
  std::vector<std::string> holders;
  std::string waiting;
  const std::vector<std::pair<std::string, conch_run*>> all{{"a", &a}, {"b", &b}, {"c", &c}};
  for (const auto& [tag, run] : all) {
    if (run->pid() == waiter_pid)
      waiting = tag;
    else
      holders.push_back(tag);
  }
  REQUIRE(holders.size() == 2);
  REQUIRE_FALSE(waiting.empty());
  for (const auto& h : holders) line_from(dir / (h + ".env"));  // both children run...
  CHECK_FALSE(started(dir, waiting));                           // ...the third does not

  const int freed = env_of(dir, holders[0]).slot;
  release(dir, holders[0]);
  REQUIRE(await([&] { return started(dir, waiting); }));
  CHECK(env_of(dir, waiting).slot == freed);
  await_who(dir, prefix, 2, 2, 0);
}

TEST_CASE("sema: a release promotes exactly the next waiter by revision", "[sema]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", contend(dir, "a", 1), env_for(prefix));
  const auto first = env_of(dir, "a");
  conch_run b(dir, "b", contend(dir, "b", 1), env_for(prefix));
  await_who(dir, prefix, 1, 1, 1, {&a, &b});
  conch_run c(dir, "c", contend(dir, "c", 1), env_for(prefix));
  auto listing = await_who(dir, prefix, 1, 1, 2, {&a, &b, &c});
  CHECK(listing["waiters"][0]["pid"] == b.pid());
  CHECK(listing["waiters"][1]["pid"] == c.pid());
  CHECK(listing["waiters"][0]["queued"].get<long long>() <
        listing["waiters"][1]["queued"].get<long long>());

  release(dir, "a");
  CHECK(a.wait() == 0);
  const auto second = env_of(dir, "b");
  CHECK_FALSE(started(dir, "c"));
  CHECK(second.slot == 0);
  CHECK(second.rev > first.rev);  // the slot's token grows across successions
  listing = await_who(dir, prefix, 1, 1, 1);
  CHECK(listing["slots"][0]["pid"] == b.pid());
  CHECK(listing["waiters"][0]["pid"] == c.pid());

  release(dir, "b");
  CHECK(b.wait() == 0);
  CHECK(env_of(dir, "c").rev > second.rev);
  release(dir, "c");
  CHECK(c.wait() == 0);
}

TEST_CASE(
    "sema --who: slots with holder, token and since, waiters in order; nobody holding exits 1",
    "[sema]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  {
    conch_run empty(dir, "empty", {"sema", "pool", "--max", "2", "--who"}, env_for(prefix));
    CHECK(empty.wait() == 1);
    CHECK(lines_of(empty.err()).size() == 1);
  }
  conch_run a(dir, "a", contend(dir, "a", 1), env_for(prefix));
  const auto held = env_of(dir, "a");
  conch_run b(dir, "b", contend(dir, "b", 1), env_for(prefix));
  await_who(dir, prefix, 1, 1, 1);

  // The child's environment names its slot, key, token, lease and semaphore.
  CHECK(held.slot == 0);
  CHECK(held.key == prefix + "sema/pool/max=1/slot/0");
  CHECK(held.name == "pool");

  conch_run human(dir, "human", {"sema", "pool", "--max", "1", "--who"}, env_for(prefix));
  CHECK(human.wait() == 0);
  auto out = lines_of(human.out());
  REQUIRE(out.size() == 3);
  CHECK(out[0] == "pool: 1 of 1 slots held, 1 waiting");
  CHECK(out[1].starts_with("slot 0  " + held.key));
  CHECK(out[1].find("pid=" + std::to_string(a.pid())) != std::string::npos);
  CHECK(out[1].find("token=" + std::to_string(held.rev)) != std::string::npos);
  CHECK(out[1].find("lease=" + held.lease) != std::string::npos);
  CHECK(out[1].find("start=") != std::string::npos);
  CHECK(out[2].starts_with("waiter 1  " + prefix + "sema/pool/max=1/queue/"));
  CHECK(out[2].find("pid=" + std::to_string(b.pid())) != std::string::npos);

  auto j = who(dir, prefix, 1);
  CHECK(j["name"] == "pool");
  CHECK(j["max"] == 1);
  REQUIRE(j["slots"].size() == 1);
  CHECK(j["slots"][0]["slot"] == 0);
  CHECK(j["slots"][0]["key"] == held.key);
  CHECK(j["slots"][0]["token"] == held.rev);
  CHECK(j["slots"][0]["pid"] == a.pid());
  CHECK(j["slots"][0]["start"].is_string());
  CHECK(j["slots"][0]["argv"][0] == "sh");
  REQUIRE(j["waiters"].size() == 1);
  CHECK(j["waiters"][0]["pid"] == b.pid());

  release(dir, "a");
  release(dir, "b");
  CHECK(a.wait() == 0);
  CHECK(b.wait() == 0);
  conch_run after(dir, "after", {"sema", "pool", "--max", "1", "--who"}, env_for(prefix));
  CHECK(after.wait() == 1);
}

TEST_CASE(
    "sema --nonblock: exit 75 at once when every slot is held; --timeout: 75 and our queue key "
    "removed",
    "[sema]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", contend(dir, "a", 1), env_for(prefix));
  line_from(dir / "a.env");

  conch_run nb(dir, "nb",
               {"sema", "pool", "--max", "1", "--nonblock", "--", "touch", dir / "nb.ran"},
               env_for(prefix));
  CHECK(nb.wait(10s) == 75);
  CHECK(lines_of(nb.err()).size() == 1);
  await_who(dir, prefix, 1, 1, 0);  // it left nothing behind

  conch_run to(dir, "to",
               {"sema", "pool", "--max", "1", "--timeout", "700ms", "--", "touch", dir / "to.ran"},
               env_for(prefix));
  CHECK(to.wait() == 75);
  CHECK(lines_of(to.err()).size() == 1);
  await_who(dir, prefix, 1, 1, 0);  // its queue key is gone
  CHECK_FALSE(std::filesystem::exists(dir / "nb.ran"));
  CHECK_FALSE(std::filesystem::exists(dir / "to.ran"));

  release(dir, "a");
  CHECK(a.wait() == 0);
}

TEST_CASE("sema: a different --max is a different semaphore", "[sema]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", contend(dir, "a", 1), env_for(prefix));
  line_from(dir / "a.env");
  conch_run other(dir, "other", {"sema", "pool", "--max", "2", "--nonblock", "--", "true"},
                  env_for(prefix));
  CHECK(other.wait() == 0);
  release(dir, "a");
  CHECK(a.wait() == 0);
}

TEST_CASE("sema: a waiter whose queue key is revoked exits 70 at once, without running its command",
          "[sema]") {
  auto& etcd = conch::test::etcd_server::shared();
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", contend(dir, "a", 1), env_for(prefix));
  line_from(dir / "a.env");
  conch_run b(dir, "b", contend(dir, "b", 1, {"--ttl", "60"}),
              env_for(prefix));  // a TTL far beyond the bound
  auto listing = await_who(dir, prefix, 1, 1, 1);
  auto lease = conch::detail::parse_lease_hex(listing["waiters"][0]["lease"].get<std::string>());
  REQUIRE(lease);

  etcd.revoke_lease(*lease);
  CHECK(b.wait(10s) == 70);
  CHECK_FALSE(started(dir, "b"));
  CHECK(a.running());
  await_who(dir, prefix, 1, 1, 0);
  release(dir, "a");
  CHECK(a.wait() == 0);
}

TEST_CASE(
    "sema: a holder's lease revoked kills its child and exits 70; the next waiter takes the slot",
    "[sema]") {
  auto& etcd = conch::test::etcd_server::shared();
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", contend(dir, "a", 1, {"--ttl", "60", "--kill-after", "1s"}),
              env_for(prefix));
  const auto held = env_of(dir, "a");
  const auto child = static_cast<pid_t>(std::stol(line_from(dir / "a.pid")));
  // The lock delay: b's child starts only 2 s after b saw the unclean loss.
  conch_run b(dir, "b", contend(dir, "b", 1, {"--lock-delay", "2s"}), env_for(prefix));
  await_who(dir, prefix, 1, 1, 1);

  auto lease = conch::detail::parse_lease_hex(held.lease);
  REQUIRE(lease);
  const auto revoked = std::chrono::steady_clock::now();
  etcd.revoke_lease(*lease);
  CHECK(a.wait(15s) == 70);
  CHECK(await([&] { return !conch::process::process_alive(child); }));
  REQUIRE(await([&] { return started(dir, "b"); }));
  CHECK(std::chrono::steady_clock::now() - revoked >= 2s);
  CHECK(env_of(dir, "b").rev > held.rev);
  release(dir, "b");
  CHECK(b.wait() == 0);
}

TEST_CASE("sema: a stop signal while waiting ends the wait, removes our queue key, starts nothing",
          "[sema]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  conch_run a(dir, "a", contend(dir, "a", 1), env_for(prefix));
  line_from(dir / "a.env");
  conch_run b(dir, "b", contend(dir, "b", 1), env_for(prefix));
  await_who(dir, prefix, 1, 1, 1);
  b.signal(SIGTERM);
  CHECK(b.wait(10s) == 128 + SIGTERM);
  CHECK_FALSE(started(dir, "b"));
  await_who(dir, prefix, 1, 1, 0);
  release(dir, "a");
  CHECK(a.wait() == 0);
}

TEST_CASE("sema: usage errors exit 64 with one line", "[sema]") {
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  const std::vector<std::vector<std::string>> bad = {
      {"sema", "pool", "--", "true"},                      // no --max
      {"sema", "pool", "--max", "0", "--", "true"},        // no slots
      {"sema", "pool", "--max", "two", "--", "true"},      // not a number
      {"sema", "pool", "--max", "1"},                      // no command
      {"sema", "pool", "--max", "1", "--who", "--", "x"},  // --who runs nothing
      {"sema", "pool", "--max", "1", "--timeout", "soon", "--", "true"},
  };
  int i = 0;
  for (const auto& args : bad) {
    conch_run r(dir, "bad" + std::to_string(i++), args, env_for(prefix));
    INFO(args[args.size() > 3 ? 3 : 1]);
    CHECK(r.wait() == 64);
    CHECK(lines_of(r.err()).size() == 1);
  }
}
