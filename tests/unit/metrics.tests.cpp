// The Prometheus text exposition of the tools' metrics (tool/metrics.hpp): pure formatting.
#include "conch/tool/metrics.hpp"

#include <catch2/catch.hpp>
#include <string>

using conch::tool::metric_type;
using conch::tool::metrics_registry;

TEST_CASE("exposition: HELP and TYPE, then one line per series", "[metrics]") {
  metrics_registry m;
  m.describe("conch_x_total", metric_type::counter, "Things.\nMore \\ things.");
  m.describe("conch_up", metric_type::gauge, "Up.");
  m.add("conch_x_total", {{"job", "a"}});
  m.add("conch_x_total", {{"job", "a"}}, 2);
  m.add("conch_x_total", {{"job", "say \"hi\"\n\\"}});
  m.set("conch_up", {}, 0.5);
  CHECK(m.exposition() ==
        "# HELP conch_x_total Things.\\nMore \\\\ things.\n"
        "# TYPE conch_x_total counter\n"
        "conch_x_total{job=\"a\"} 3\n"
        "conch_x_total{job=\"say \\\"hi\\\"\\n\\\\\"} 1\n"
        "# HELP conch_up Up.\n"
        "# TYPE conch_up gauge\n"
        "conch_up 0.5\n");
  CHECK(m.value("conch_x_total", {{"job", "a"}}) == 3);
}

TEST_CASE("exposition: a family never touched shows a zero sample", "[metrics]") {
  metrics_registry m;
  m.describe("conch_errors_total", metric_type::counter, "Errors.");
  m.describe("conch_lag_seconds", metric_type::histogram, "Lag.", {0.1, 1});
  CHECK(
      m.exposition() ==
      "# HELP conch_errors_total Errors.\n# TYPE conch_errors_total counter\nconch_errors_total 0\n"
      "# HELP conch_lag_seconds Lag.\n# TYPE conch_lag_seconds histogram\n"
      "conch_lag_seconds_bucket{le=\"0.1\"} 0\nconch_lag_seconds_bucket{le=\"1\"} 0\n"
      "conch_lag_seconds_bucket{le=\"+Inf\"} 0\nconch_lag_seconds_sum 0\nconch_lag_seconds_count "
      "0\n");
}

TEST_CASE("histogram: cumulative buckets, le on the bound, sum and count", "[metrics]") {
  metrics_registry m;
  m.describe("conch_d_seconds", metric_type::histogram, "D.", {0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 20.0}) m.observe("conch_d_seconds", {{"method", "txn"}}, v);
  CHECK(m.exposition() ==
        "# HELP conch_d_seconds D.\n# TYPE conch_d_seconds histogram\n"
        "conch_d_seconds_bucket{method=\"txn\",le=\"0.1\"} 2\n"
        "conch_d_seconds_bucket{method=\"txn\",le=\"1\"} 4\n"
        "conch_d_seconds_bucket{method=\"txn\",le=\"10\"} 4\n"
        "conch_d_seconds_bucket{method=\"txn\",le=\"+Inf\"} 5\n"
        "conch_d_seconds_sum{method=\"txn\"} 21.65\n"
        "conch_d_seconds_count{method=\"txn\"} 5\n");
}

TEST_CASE("undeclared names are ignored; describing twice keeps the first", "[metrics]") {
  metrics_registry m;
  m.add("conch_nope_total");
  m.describe("conch_a", metric_type::gauge, "First.");
  m.describe("conch_a", metric_type::counter, "Second.");
  CHECK(m.exposition() == "# HELP conch_a First.\n# TYPE conch_a gauge\nconch_a 0\n");
}
