// `--metrics`: conchd and conch elect scraped over HTTP while they work
// against a real etcd; /health follows the session.
#include "support/conch_process.hpp"
#include "support/etcd_harness.hpp"
#include "support/prometheus.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <optional>
#include <regex>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using conch::test::await;
using conch::test::conch_run;
using conch::test::http_get;
using conch::test::temp_dir;

namespace {

/// The value of the sample `series` (name and labels as printed), if present.
std::optional<double> sample(const std::string& text, const std::string& series) {
  std::size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return std::nullopt;
}

double scrape(int port, const std::string& series) {
  auto a = http_get(port, "/metrics");
  if (!a || a->status != 200) return -1;
  return sample(a->body, series).value_or(-1);
}

std::vector<std::string> env_for(const std::string& endpoint, const std::string& prefix) {
  return {"CONCH_ENDPOINTS=" + endpoint, "CONCH_PREFIX=" + prefix};
}

int free_port() { return conch::test::harness_detail::free_loopback_port(); }

}  // namespace

TEST_CASE("conchd --metrics: ticks, runs, histograms and etcd calls, scraped while it runs",
          "[metrics]") {
  auto& etcd = conch::test::etcd_server::shared();
  temp_dir dir;
  const auto prefix = conch::test::unique_prefix();
  const auto env = env_for(etcd.endpoint(), prefix);
  conch_run add_ok(dir, "add-ok", {"cron", "add", "ok", "--schedule", "@every 1s", "--", "true"},
                   env);
  REQUIRE(add_ok.wait() == 0);
  conch_run add_bad(dir, "add-bad",
                    {"cron", "add", "bad", "--schedule", "@every 1s", "--", "false"}, env);
  REQUIRE(add_bad.wait() == 0);

  const int port = free_port();
  conch_run daemon(dir, "conchd", {"--metrics", "127.0.0.1:" + std::to_string(port)}, env,
                   conch::test::conchd_bin());
  REQUIRE(await([&] { return scrape(port, "conch_cron_ticks_run_total{job=\"ok\"}") >= 2; }, 20s));
  REQUIRE(
      await([&] { return scrape(port, "conch_cron_ticks_failed_total{job=\"bad\"}") >= 1; }, 20s));
  auto a = http_get(port, "/metrics");
  REQUIRE(a);
  INFO(a->body);
  CHECK(a->status == 200);
  CHECK(sample(a->body, "conch_cron_ticks_claimed_total{job=\"ok\"}").value_or(0) >= 2);
  CHECK(sample(a->body, "conch_cron_ticks_failed_total{job=\"ok\"}") == std::nullopt);
  CHECK(sample(a->body, "conch_cron_run_duration_seconds_count").value_or(0) >= 2);
  CHECK(sample(a->body, "conch_cron_tick_start_lag_seconds_count").value_or(0) >= 2);
  CHECK(sample(a->body, "conch_cron_tick_start_lag_seconds_bucket{le=\"+Inf\"}") ==
        sample(a->body, "conch_cron_tick_start_lag_seconds_count"));
  CHECK(sample(a->body, "conch_etcd_request_duration_seconds_count{method=\"txn\"}").value_or(0) >=
        2);
  CHECK(sample(a->body, "conch_etcd_request_duration_seconds_count{method=\"lease_grant\"}")
            .value_or(0) >= 1);
  CHECK(sample(a->body, "conch_session_up") == 1);
  CHECK(a->body.find("# TYPE conch_cron_run_duration_seconds histogram") != std::string::npos);
  auto health = http_get(port, "/health");
  REQUIRE(health);
  CHECK(health->status == 200);

  // A second daemon cannot take the same port: exit 69, naming it.
  conch_run clash(dir, "clash", {"--metrics", "127.0.0.1:" + std::to_string(port)}, env,
                  conch::test::conchd_bin());
  CHECK(clash.wait() == 69);
  CHECK(clash.err().find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  CHECK(conch::test::lines_of(clash.err()).size() == 1);
}

TEST_CASE("conchd --metrics: /health fails once the session is lost", "[metrics]") {
  conch::test::etcd_server etcd;
  temp_dir dir;
  const int port = free_port();
  conch_run daemon(dir, "conchd", {"--ttl", "2s", "--metrics", "127.0.0.1:" + std::to_string(port)},
                   env_for(etcd.endpoint(), conch::test::unique_prefix()),
                   conch::test::conchd_bin());
  REQUIRE(await([&] {
    auto h = http_get(port, "/health");
    return h && h->status == 200;
  }));
  REQUIRE(await([&] { return scrape(port, "conch_lease_renewals_total") >= 1; }));
  ::kill(etcd.pid(), SIGSTOP);  // no renewal can succeed: the lease runs out locally
  const bool failed = await([&] {
    auto h = http_get(port, "/health");
    return h && h->status == 503;
  });
  // The gauge follows within one look of the daemon's loop at its lease.
  const bool down = await([&] { return scrape(port, "conch_session_up") == 0; });
  ::kill(etcd.pid(), SIGCONT);
  CHECK(failed);
  CHECK(down);
}

TEST_CASE("conch elect --metrics: waiting, holding, restarts and exits", "[metrics]") {
  auto& etcd = conch::test::etcd_server::shared();
  temp_dir dir;
  const auto env = env_for(etcd.endpoint(), conch::test::unique_prefix());
  const std::string first_ran = dir / "first";
  conch_run first(dir, "first",
                  {"elect", "office", "--", "sh", "-c", "touch " + first_ran + "; exec sleep 60"},
                  env);
  REQUIRE(await([&] { return std::filesystem::exists(first_ran); }));

  const int port = free_port();
  conch_run second(dir, "second",
                   {"elect", "office", "--restart", "--metrics",
                    "127.0.0.1:" + std::to_string(port), "--", "sh", "-c", "exit 3"},
                   env);
  REQUIRE(await([&] { return scrape(port, "conch_waiting") == 1; }));
  CHECK(scrape(port, "conch_holding") == 0);
  CHECK(scrape(port, "conch_session_up") == 1);

  first.signal(SIGTERM);
  CHECK(first.wait() == 143);
  REQUIRE(await([&] { return scrape(port, "conch_child_restarts_total") >= 1; }));
  auto a = http_get(port, "/metrics");
  REQUIRE(a);
  INFO(a->body);
  CHECK(sample(a->body, "conch_holding") == 1);
  CHECK(sample(a->body, "conch_waiting") == 0);
  CHECK(sample(a->body, "conch_child_starts_total").value_or(0) >= 2);
  CHECK(sample(a->body, "conch_child_exits_total{code=\"3\"}").value_or(0) >= 1);
  CHECK(sample(a->body, "conch_losses_total") == 0);
}

TEST_CASE("--metrics: a bad address is a usage error", "[metrics]") {
  temp_dir dir;
  const auto env =
      env_for(conch::test::etcd_server::shared().endpoint(), conch::test::unique_prefix());
  for (const std::string bad : {"nonsense", "127.0.0.1:0", "127.0.0.1:99999", "::1:80", ":"}) {
    conch_run run(dir, "bad", {"elect", "office", "--metrics", bad, "--", "true"}, env);
    CHECK(run.wait() == 64);
    INFO(run.err());
    CHECK(conch::test::lines_of(run.err()).size() == 1);
    CHECK(run.err().find("--metrics") != std::string::npos);
  }
}
