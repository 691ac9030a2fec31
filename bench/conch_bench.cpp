// conch_bench — one etcd, one run, one table of ratios: how close conch comes
// to etcd's own floor and how it compares with etcd's Go lock recipe
// (`etcdctl lock`) and etcd's server-side Lock service, measured side by side.
//
//   conch_bench            the full run (several minutes)
//   conch_bench --quick    every measurement, small counts (under a minute)
//   conch_bench --only handoff,herd --reps 50
//
// Absolute milliseconds on a shared machine are noise; the ratios between
// things measured in the same run, interleaved where possible, are not. The
// program checks only that each measurement produced sane numbers (exit 1
// otherwise); targets are reported, never asserted.
#include "bench.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <set>
#include <signal.h>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace conch::bench;

struct measurement {
  const char* name;
  void (*run)(context&);
  const char* what;
};

const measurement all_measurements[] = {
    {"floor", measure_floor, "raw Put and linearizable Range"},
    {"uncontended", measure_uncontended, "acquire+release with a warm session vs 2x Put"},
    {"handoff", measure_handoff, "release -> next waiter holds: conch, etcdctl lock, v3lock"},
    {"herd", measure_herd, "watch events per release with many waiters"},
    {"process", measure_process, "conch sema -- true vs etcdctl lock true"},
    {"loss", measure_loss, "lease revoke -> child SIGTERM"},
    {"memory", measure_memory, "peak RSS of a holding wrapper"},
    {"scale", measure_scale, "throughput with 1, 8, 64 holders on as many slots, 64 on one"},
    // Last: it loads the machine most, and the load outlasts it.
    {"cron", measure_cron, "@every 1s jobs across 3 conchd"},
};

const char* usage =
    "usage: conch_bench [--quick] [--only NAME[,NAME...]] [--reps N] [--bin DIR]\n"
    "                   [--cron-jobs N] [--cron-seconds S] [--cron-period P]\n"
    "  --quick   small counts, under a minute (what ctest runs)\n"
    "  --only    run only these measurements (floor always runs: others are ratios to it)\n"
    "  --reps N  repetitions per latency measurement\n"
    "  --bin DIR where conch and conchd are (default: next to this program)\n"
    "  --cron-jobs N, --cron-seconds S   the cron load (default 1000 jobs for 30 s; quick: 50 for "
    "5 s)\n"
    "  --cron-period P   the jobs run @every P seconds (default 1); S is then rounded to whole "
    "periods\n";

// Display width of UTF-8 text (every code point one column).
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

void print_table(const std::vector<row>& rows, std::ostream& out) {
  const std::vector<std::string> head{"measurement", "p50",    "p99", "baseline",
                                      "ratio",       "target", "met?"};
  std::vector<std::vector<std::string>> cells{head};
  for (const auto& r : rows)
    cells.push_back({r.measurement, r.p50, r.p99, r.baseline, r.ratio, r.target, r.met});
  std::vector<std::size_t> w(head.size(), 0);
  for (const auto& c : cells)
    for (std::size_t i = 0; i < c.size(); ++i) w[i] = std::max(w[i], width(c[i]));
  auto line = [&](const std::vector<std::string>& c) {
    out << '|';
    for (std::size_t i = 0; i < c.size(); ++i)
      out << ' ' << c[i] << std::string(w[i] - width(c[i]), ' ') << " |";
    out << '\n';
  };
  line(cells[0]);
  out << '|';
  for (auto n : w) out << std::string(n + 2, '-') << '|';
  out << '\n';
  for (std::size_t i = 1; i < cells.size(); ++i) line(cells[i]);
}

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

int bad_usage(const std::string& why) {
  std::cerr << "conch_bench: " << why << "\n" << usage;
  return 64;
}

}  // namespace

std::string conch::bench::machine_note() {
  double load[3] = {0, 0, 0};
  const int n = ::getloadavg(load, 3);
  return std::to_string(std::thread::hardware_concurrency()) + " cores, load average " +
         (n == 3 ? fixed(load[0]) + " " + fixed(load[1]) + " " + fixed(load[2])
                 : std::string("unknown"));
}

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "--child-hold")
    return child_hold(argv[2], argc >= 4 ? argv[3] : nullptr);
  if (argc == 5 && std::string(argv[1]) == "--spawn-floor")
    return spawn_floor(argv[2], argv[3], argv[4]);

  bool quick = false;
  int reps = 0, cron_jobs = 0, cron_seconds = 0, cron_period = 0;
  std::set<std::string> only;
  std::string bin_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--quick") {
      quick = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << usage;
      return 0;
    } else if (a == "--only") {
      const char* v = value();
      if (!v) return bad_usage("--only needs a measurement name");
      std::stringstream names(v);
      for (std::string n; std::getline(names, n, ',');) {
        bool known = false;
        for (const auto& m : all_measurements) known = known || n == m.name;
        if (!known) {
          std::string list;
          for (const auto& m : all_measurements)
            list += std::string(list.empty() ? "" : ", ") + m.name;
          return bad_usage("unknown measurement '" + n + "' (known: " + list + ")");
        }
        only.insert(n);
      }
    } else if (a == "--reps" || a == "--cron-jobs" || a == "--cron-seconds" ||
               a == "--cron-period") {
      const char* v = value();
      char* end = nullptr;
      const long n = v ? std::strtol(v, &end, 10) : 0;
      if (!v || *end != '\0' || n < 1 || n > 100000)
        return bad_usage(a + " needs a whole number in 1..100000");
      (a == "--reps"          ? reps
       : a == "--cron-jobs"   ? cron_jobs
       : a == "--cron-period" ? cron_period
                              : cron_seconds) = static_cast<int>(n);
    } else if (a == "--bin") {
      const char* v = value();
      if (!v) return bad_usage("--bin needs a directory");
      bin_dir = v;
    } else {
      return bad_usage("unknown argument '" + a + "'");
    }
  }

  const std::string self = self_path();
  if (bin_dir.empty()) bin_dir = directory_of(self);
  for (const char* tool : {"conch", "conchd"})
    if (::access((bin_dir + "/" + tool).c_str(), X_OK) != 0)
      std::cerr << "conch_bench: warning: no " << bin_dir << "/" << tool
                << " (build the conch_tool and conchd_tool targets, or pass --bin)\n";
  ::signal(SIGPIPE, SIG_IGN);
  conch::etcd_transport::quiet_grpc_log();
  // Before any thread: gRPC's locks without a debug build's deadlock bookkeeping.
  conch::etcd_transport::skip_mutex_deadlock_checks();

  try {
    conch::test::etcd_server etcd;
    temp_dir tmp;
    conch::etcd_transport client{etcd.client_options()};
    char id[32];
    std::snprintf(id, sizeof id, "%d", static_cast<int>(::getpid()));
    context ctx{quick, reps, etcd, client, std::string("bench/") + id + "/", self, bin_dir, tmp};
    ctx.cron_jobs = cron_jobs;
    ctx.cron_seconds = cron_seconds;
    ctx.cron_period = cron_period;

    const std::string machine_before = machine_note();
    std::cerr << "conch_bench: etcd " << etcd.endpoint() << (quick ? ", quick run" : ", full run")
              << "; " << machine_before << "\n";
    const auto started = steady::now();
    for (const auto& m : all_measurements) {
      if (!only.empty() && !only.contains(m.name) && std::string(m.name) != "floor") continue;
      const auto t0 = steady::now();
      std::cerr << "conch_bench: " << m.name << " (" << m.what << ") ..." << std::flush;
      try {
        m.run(ctx);
      } catch (const std::exception& e) {
        ctx.problems.push_back(std::string(m.name) + ": " + e.what());
      }
      std::cerr << " "
                << std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count()
                << " ms\n";
    }
    std::cout << "\n";
    print_table(ctx.rows, std::cout);
    std::cout << "\n(" << (quick ? "--quick" : "full run") << ", "
              << std::chrono::duration_cast<std::chrono::seconds>(steady::now() - started).count()
              << " s; ratio = p50 / baseline unless the row says otherwise)\n"
              << "machine: " << machine_before << " at the start; " << machine_note()
              << " at the end\n";
    if (!ctx.problems.empty()) {
      std::cout << "\nnot sane:\n";
      for (const auto& p : ctx.problems) std::cout << "  - " << p << "\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "conch_bench: " << e.what() << "\n";
    return 1;
  }
}
