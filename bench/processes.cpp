// The tools as whole processes: one run of a command under the lock, the
// reaction to a revoked lease, and the memory of a holding wrapper — conch
// against etcdctl lock where etcdctl has an answer.
#include "conch/policies/default_policies.hpp"
#include "conch/semaphore.hpp"

#include "bench.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace conch::bench {

namespace {

using namespace std::chrono_literals;

char stamp_path[4096];
char stamp_tmp[4096];

// Async-signal-safe: the CLOCK_MONOTONIC instant in decimal nanoseconds,
// written to a temp file and renamed into place (a reader never sees half).
extern "C" void on_stop_signal(int) {
  if (stamp_path[0] != '\0') {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long ns = static_cast<unsigned long long>(ts.tv_sec) * 1000000000ull +
                            static_cast<unsigned long long>(ts.tv_nsec);
    char digits[32];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + ns % 10);
      ns /= 10;
    } while (ns != 0);
    char text[33];
    for (int i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
    text[n] = '\n';
    const int fd = ::open(stamp_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      (void)!::write(fd, text, static_cast<std::size_t>(n + 1));
      ::close(fd);
      ::rename(stamp_tmp, stamp_path);
    }
  }
  ::_exit(0);
}

std::vector<std::string> conch_argv(const context& ctx, std::vector<std::string> tool_args) {
  std::vector<std::string> argv{ctx.conch()};
  argv.insert(argv.end(), tool_args.begin(), tool_args.end());
  // Tool flags go before `--`.
  auto dash = std::find(argv.begin(), argv.end(), "--");
  argv.insert(dash, {"--endpoints", ctx.etcd.endpoint(), "--prefix", ctx.prefix});
  return argv;
}

std::vector<std::string> etcdctl_argv(const context& ctx, std::vector<std::string> args) {
  auto argv = ctx.etcdctl();
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Runs a command to its end: wall time (ms) and CPU (ms, with its reaped children).
std::pair<double, double> run_once(const context& ctx, const std::vector<std::string>& argv,
                                   const std::string& log) {
  const auto t0 = steady::now();
  process p{{.argv = argv, .env = {"ETCDCTL_API=3"}, .stderr_path = ctx.tmp / log}};
  rusage ru{};
  const auto code = p.wait(30s, &ru);
  const auto t1 = steady::now();
  if (!code) throw std::runtime_error(argv.at(0) + " did not finish within 30 s");
  if (*code != 0)
    throw std::runtime_error(argv.at(0) + " exited " + std::to_string(*code) + ": " +
                             read_text(ctx.tmp / log));
  return {std::chrono::duration<double, std::milli>(t1 - t0).count(), cpu_ms(ru)};
}

// The peak RSS (kB) of a wrapper once its child runs, and of its other
// children (conch's watchdog), then stops it all by `stop`.
struct peak_rss {
  long wrapper_kb = -1;
  long helpers_kb = 0;
};
template <class Stop>
peak_rss holding_rss(const context& ctx, process& wrapper, const std::string& ready, Stop stop) {
  if (!await_file(ready, steady::now() + 20s))
    throw std::runtime_error("the holding child never started");
  std::this_thread::sleep_for(500ms);  // keepalives, watches and the child all in place
  const pid_t child = static_cast<pid_t>(std::stol(read_text(ready)));
  peak_rss r;
  r.wrapper_kb = status_kb(wrapper.pid(), "VmHWM");
  for (pid_t c : children_of(wrapper.pid()))
    if (c != child) r.helpers_kb += std::max(0L, status_kb(c, "VmHWM"));
  stop(child);
  if (!wrapper.wait(10s)) wrapper.stop(SIGKILL);
  (void)ctx;
  return r;
}

}  // namespace

int child_hold(const char* ready, const char* stamp) {
  if (stamp) {
    std::snprintf(stamp_path, sizeof stamp_path, "%s", stamp);
    std::snprintf(stamp_tmp, sizeof stamp_tmp, "%s.tmp", stamp);
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  ::alarm(300);  // never outlive a benchmark that forgot us
  const std::string tmp = std::string(ready) + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
    std::fclose(f);
    ::rename(tmp.c_str(), ready);
  }
  for (;;) ::pause();
}

void measure_process(context& ctx) {
  const int n = ctx.reps_for(4, 30);
  const auto conch = conch_argv(ctx, {"sema", "whole", "--max", "1", "--", "true"});
  const auto go = etcdctl_argv(ctx, {"lock", ctx.prefix + "whole", "true"});
  samples conch_wall, conch_cpu, go_wall, go_cpu;
  (void)run_once(ctx, conch, "whole-conch.log");  // page cache
  (void)run_once(ctx, go, "whole-etcdctl.log");
  for (int i = 0; i < n; ++i) {  // interleaved
    auto [cw, cc] = run_once(ctx, conch, "whole-conch.log");
    auto [gw, gc] = run_once(ctx, go, "whole-etcdctl.log");
    conch_wall.add(cw);
    conch_cpu.add(cc);
    go_wall.add(gw);
    go_cpu.add(gc);
  }
  ctx.check(conch_wall.sane(0.1) && go_wall.sane(0.1) && conch_cpu.sane(0) && go_cpu.sane(0),
            "process: bad wall or CPU times");
  const double ratio = conch_wall.p50() / go_wall.p50();
  ctx.rows.push_back({"whole process: conch sema x --max 1 -- true", ms(conch_wall.p50()),
                      ms(conch_wall.p99()), "etcdctl lock x true " + ms(go_wall.p50()),
                      times(ratio), "≤ 0.5×", verdict(ratio <= 0.5)});
  ctx.rows.push_back({"whole process: its CPU (user+sys)", ms(conch_cpu.p50()), ms(conch_cpu.p99()),
                      "etcdctl " + ms(go_cpu.p50()), times(conch_cpu.p50() / go_cpu.p50()), "—",
                      "—"});
}

void measure_loss(context& ctx) {
  auto& t = ctx.client;
  const int n = ctx.reps_for(3, 20);
  samples reaction;
  for (int i = 0; i < n; ++i) {
    const std::string ready = ctx.tmp / ("loss-ready-" + std::to_string(i));
    const std::string stamp = ctx.tmp / ("loss-stamp-" + std::to_string(i));
    // A fresh name each time: a revoked holder's semaphore keeps its lock delay.
    const std::string name = "loss-" + std::to_string(i);
    process wrapper{{.argv = conch_argv(ctx, {"sema", name, "--max", "1", "--ttl", "10", "--",
                                              ctx.self, "--child-hold", ready, stamp}),
                     .stderr_path = ctx.tmp / "loss.log"}};
    if (!await_file(ready, steady::now() + 20s))
      throw std::runtime_error("conch sema never ran its child: " +
                               read_text(ctx.tmp / "loss.log"));
    auto who = semaphore::status(t, ctx.prefix, name, 1);
    if (!who || who->holders.empty())
      throw std::runtime_error("no holder of the loss semaphore in etcd");
    const lease_id lease = who->holders.front().kv.lease;
    const auto t0 = steady::now();
    if (auto r = t.lease_revoke(lease, t.default_deadline()); !r)
      throw std::runtime_error("lease revoke: " + r.error().message);
    if (!await_file(stamp, steady::now() + 15s, 200us))
      throw std::runtime_error("the child got no SIGTERM within 15 s of the revoke");
    const steady::time_point got{std::chrono::nanoseconds(std::stoll(read_text(stamp)))};
    reaction.add(got - t0);
    const auto code = wrapper.wait(15s);
    if (code != 70)
      throw std::runtime_error("conch exited " + (code ? std::to_string(*code) : "late") +
                               ", not 70");
  }
  ctx.check(reaction.sane(0), "loss: bad reaction times");
  ctx.rows.push_back({"loss: lease revoke → child SIGTERM", ms(reaction.p50()), ms(reaction.p99()),
                      "etcdctl lock: never", ms(reaction.p50()), "p50 ≤ 20 ms",
                      verdict(reaction.p50() <= 20)});
}

void measure_memory(context& ctx) {
  const int n = ctx.quick ? 1 : std::min(ctx.reps_for(3, 3), 5);
  samples conch_kb, helper_kb, go_kb;
  for (int i = 0; i < n; ++i) {
    {
      const std::string ready = ctx.tmp / ("mem-conch-" + std::to_string(i));
      process wrapper{
          {.argv = conch_argv(ctx, {"elect", "memory", "--", ctx.self, "--child-hold", ready}),
           .stderr_path = ctx.tmp / "memory.log"}};
      auto r = holding_rss(ctx, wrapper, ready, [&](pid_t) { wrapper.signal(SIGTERM); });
      conch_kb.add(static_cast<double>(r.wrapper_kb));
      helper_kb.add(static_cast<double>(r.helpers_kb));
    }
    {
      const std::string ready = ctx.tmp / ("mem-etcdctl-" + std::to_string(i));
      process wrapper{{.argv = etcdctl_argv(ctx, {"lock", ctx.prefix + "memory", "--", ctx.self,
                                                  "--child-hold", ready}),
                       .env = {"ETCDCTL_API=3"},
                       .stderr_path = ctx.tmp / "memory.log"}};
      // etcdctl runs its command to the end, then unlocks: end the command.
      auto r = holding_rss(ctx, wrapper, ready, [](pid_t child) { ::kill(child, SIGTERM); });
      go_kb.add(static_cast<double>(r.wrapper_kb));
    }
  }
  ctx.check(conch_kb.sane(100) && go_kb.sane(100), "memory: no VmHWM read");
  auto mb = [](double kb) { return fixed(kb / 1024.0, 1) + " MB"; };
  ctx.rows.push_back({"memory: holding conch elect wrapper (VmHWM)", mb(conch_kb.p50()),
                      mb(conch_kb.p99()), "etcdctl lock " + mb(go_kb.p50()),
                      times(conch_kb.p50() / go_kb.p50()), "—", "—"});
  ctx.rows.push_back({"memory: + conch's watchdog process", mb(conch_kb.p50() + helper_kb.p50()),
                      "—", "etcdctl lock " + mb(go_kb.p50()),
                      times((conch_kb.p50() + helper_kb.p50()) / go_kb.p50()), "—", "—"});
}

}  // namespace conch::bench
