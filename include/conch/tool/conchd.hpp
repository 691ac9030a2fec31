// conch/tool/conchd.hpp — the cron daemon: `conchd [flags]`.
//
// Runs every job stored under `<prefix>cron/jobs/` (see tool/cron.hpp) on the
// ticks of its schedule, together with any number of other conchd sharing
// the etcd: each tick runs once, on the daemon that claims it. A thin layer
// over basic_cron: flags, the log, and signals.
//
// Manners: one log line per claim, run and result on stderr (human, or JSON
// with --log-format json); SIGTERM/SIGINT/SIGHUP/SIGQUIT stop claiming, let
// runs in flight finish for --kill-after, then kill their process groups and
// record their results; exit 69 with the reason if etcd is unreachable at start.
//
// No run outlives its claimer: a watchdog process (process/watchdog.hpp)
// holds every run's process group and kills it once the daemon's lease
// deadline passes unrenewed — conchd killed, frozen, or cut off from etcd —
// so a tick that `ls` calls a zombie is not still running somewhere.
// The hosting binary must serve process::watchdog_main (see examples/conchd.cpp).
#pragma once

#include "conch/cron.hpp"
#include "conch/etcd.hpp"
#include "conch/exit_codes.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/duration.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/policies/backoff.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/process/signals.hpp"
#include "conch/process/watchdog.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/connect.hpp"
#include "conch/tool/flags.hpp"
#include "conch/tool/listen_address.hpp"
#include "conch/tool/metered_transport.hpp"
#include "conch/tool/ops.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <poll.h>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

namespace conch::tool {

/// This host's wall clock shifted by a fixed offset. conchd uses it with a
/// zero offset; a non-zero one (hidden --clock-offset, env
/// CONCH_CLOCK_OFFSET) plays a daemon whose clock is wrong, to show that
/// skew cannot make a tick run twice.
class offset_system_clock {
 public:
  using duration = std::chrono::system_clock::duration;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::system_clock::time_point;
  static constexpr bool is_steady = false;

  offset_system_clock() = default;
  explicit offset_system_clock(std::chrono::milliseconds offset) : offset_(offset) {}

  time_point now() const { return std::chrono::system_clock::now() + offset_; }
  bool sleep_until(time_point tp, std::stop_token stop) const {
    return system_clock_policy::sleep_until(tp - offset_, std::move(stop));
  }
  std::chrono::milliseconds offset() const noexcept { return offset_; }

 private:
  std::chrono::milliseconds offset_{0};
};

/// conchd's ticks follow the (possibly shifted) wall clock.
struct conchd_policies : default_policies {
  using clock = offset_system_clock;
  using transport = metered_transport<etcd_transport>;  ///< etcd calls timed for --metrics
};

/// "-3s", "+250ms", "2s": a signed duration.
inline result<std::chrono::milliseconds> parse_signed_duration(std::string_view text) {
  const bool negative = !text.empty() && text.front() == '-';
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  auto d = detail::parse_duration(text);
  if (!d) return std::move(d).error();
  return negative ? -*d : *d;
}

struct conchd_options {
  common_options common{};
  bool json_log = false;
  std::size_t history = 100;
  std::chrono::milliseconds clock_offset{0};
  std::string host{};
  std::string watchdog_host{"/proc/self/exe"};  ///< the binary serving process::watchdog_main
  std::optional<listen_address> metrics{};
};

/// conchd's flags, declared on its command line; finish() checks them after the parse.
struct conchd_flags {
  conchd_options o;
  std::string log_format = "human";
  std::int64_t history = 100;
  std::string offset;
  common_flags common;
  metrics_flag metrics;

  explicit conchd_flags(command_line& p) : common(p), metrics(p) {
    p.text("--log-format", log_format, "FORMAT", "human or json: one line per event on stderr");
    p.integer("--history", history, 0, 1'000'000,
              "ticks kept per job, pruned by the winner (0 keeps all)")
        .default_text("100");
    p.text("--host", o.host, "NAME", "the name claims carry (default: the host name)").hidden();
    p.text("--clock-offset", offset, "DURATION", "shift this daemon's clock (skew drills)",
           "CONCH_CLOCK_OFFSET")
        .hidden();
  }

  /// The options, or the exit code to leave with (64, the line printed).
  std::variant<conchd_options, int> finish(const command_line& p) {
    if (log_format != "human" && log_format != "json")
      return usage_error(p, "--log-format: \"" + log_format + "\" is not human or json");
    o.json_log = log_format == "json";
    if (auto code = metrics.finish(p, o.metrics)) return *code;
    o.history = static_cast<std::size_t>(history);
    if (!offset.empty()) {
      auto d = parse_signed_duration(offset);
      if (!d) return usage_error(p, "--clock-offset: " + d.error().message);
      o.clock_offset = *d;
    }
    auto c = common.finish();
    if (!c) return usage_error(p, c.error().message);
    o.common = std::move(*c);
    return o;
  }
};

/// Parses conchd's arguments: the options, or the exit code to leave with
/// (0 after --help/--version, 64 after a usage error, the line printed).
inline std::variant<conchd_options, int> parse_conchd(const std::vector<std::string>& args) {
  command_line p{
      "conchd", "[flags]",
      "Run the cron jobs stored under <prefix>cron/jobs/ (see 'conch cron add'). Any number\n"
      "of conchd may share one etcd: each tick runs once, on the daemon that claims it.\n"
      "A run gets CONCH_TICK (the scheduled instant, UTC), CONCH_REV (the claim's\n"
      "revision), CONCH_NAME, CONCH_KEY and CONCH_LEASE. SIGTERM, SIGINT, SIGHUP or\n"
      "SIGQUIT stop claiming; runs in flight get --kill-after, then are killed."};
  conchd_flags flags{p};
  if (auto code = finish_parse(p, p.parse(args))) return *code;
  return flags.finish(p);
}

/// Runs `daemon` until a stop signal, then lets it drain. Wakes for stop
/// signals, and often enough to keep the watchdog's deadline in step with
/// the lease (renewed every TTL/3) — also while runs in flight are given
/// their kill-after at shutdown.
/// False (logged) when the daemon could not run: no thread for it, or it
/// failed on a resource the system ran out of.
template <class Daemon, class Log>
bool serve(Daemon& daemon, process::watchdog_handle watchdog, process::signal_inbox& inbox,
           const common_options& common, daemon_ops& ops, const Log& log) {
  std::stop_source stop;
  std::atomic<bool> finished{false}, failed{false};
  auto worker = detail::start_thread([&] {
    try {
      (void)daemon.run(stop.get_token());
    } catch (const std::exception& e) {
      log({.what = cron_event::kind::error, .message = std::string("daemon failed: ") + e.what()});
      failed = true;
    }
    finished = true;
  });
  if (!worker) {
    log({.what = cron_event::kind::error, .message = "cannot run: " + worker.error().message});
    return false;
  }
  // The systemd watchdog (WATCHDOG=1) is fed from this same loop.
  const auto renew_every = std::max<std::chrono::milliseconds>(
      std::chrono::milliseconds{100},
      std::min<std::chrono::milliseconds>(common.ttl / 6, notify_every(ops.notify)));
  std::optional<std::chrono::steady_clock::time_point> renewed;
  while (!finished) {
    process::reap_orphans();  // runs' orphans are re-parented to us (examples/conchd.cpp)
    if (auto deadline = daemon.local_deadline(); watchdog && deadline && deadline != renewed) {
      (void)watchdog.renew(*deadline);
      renewed = deadline;
    }
    ops.lease(daemon.local_deadline());
    pollfd fd{inbox.fd(), POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(renew_every.count())) < 0 && errno != EINTR) break;
    if (auto sig = inbox.take(); sig && !stop.stop_requested()) {
      log({.what = cron_event::kind::daemon,
           .message = "stopping on signal " + std::to_string(*sig) + ": runs in flight get " +
                      detail::format_duration(common.kill_after)});
      stop.request_stop();
      ops.notify.stopping("stopping on signal " + std::to_string(*sig));
    }
  }
  stop.request_stop();
  worker->join();
  return !failed;
}

/// conchd (the words after the program name). Stop signals must already be
/// blocked (process::block_stop_signals) and are read from `inbox`.
inline int conchd_main(const std::vector<std::string>& args, process::signal_inbox& inbox) {
  auto parsed = parse_conchd(args);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  const auto& o = std::get<conchd_options>(parsed);

  std::mutex log_mutex;
  auto log = [&](const cron_event& e) {
    if (quiet(e)) return;
    const auto at = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    // Formatted outside the lock, written whole: one write(2) a line (stderr is unbuffered).
    const std::string line =
        (o.json_log ? detail::json_log_line(e, at) : detail::human_log_line(e, at)) + '\n';
    std::lock_guard lock{log_mutex};
    (void)std::fwrite(line.data(), 1, line.size(), stderr);
  };

  etcd_transport etcd{o.common.transport()};
  if (int code = require_etcd(etcd, o.common, "conchd")) return code;
  daemon_ops ops;
  auto& notify = ops.notify;
  metered_transport<etcd_transport> metered{etcd, ops.registry(o.metrics)};

  using daemon_type = basic_cron<conchd_policies>;
  daemon_type::options cron_options;
  cron_options.prefix = o.common.prefix;
  cron_options.ttl = o.common.ttl;
  cron_options.history = o.history;
  cron_options.kill_after = o.common.kill_after;
  cron_options.host = o.host;
  cron_options.on_event = [&](const cron_event& e) {
    ops.observe(e);
    log(e);
  };
  // The watchdog over the runs, fed the daemon's lease deadline.
  std::mutex watchdog_mutex;
  std::optional<process::watchdog> watchdog;
  if (auto w = process::watchdog::start(o.watchdog_host, {.kill_after = o.common.kill_after}))
    watchdog.emplace(std::move(*w));
  else
    log({.what = cron_event::kind::error, .message = "runs unguarded: " + w.error().message});
  if (watchdog) cron_options.watchdog = process::watchdog_handle{&*watchdog, &watchdog_mutex};
  daemon_type daemon{metered, cron_options, offset_system_clock{o.clock_offset}};
  if (int code = ops.start(o.metrics, [&daemon] { return daemon.local_deadline(); })) return code;
  if (auto r = daemon.start(); !r) {
    std::cerr << "conchd: etcd unavailable: " << r.error().message << std::endl;
    return exit_code::unavailable;
  }
  std::string started = "started: prefix " + o.common.prefix + ", host " + daemon.settings().host +
                        ", lease " + detail::lease_hex(daemon.lease());
  if (o.clock_offset.count() != 0)
    started += ", clock offset " + std::to_string(o.clock_offset.count()) + "ms";
  log({.what = cron_event::kind::daemon, .message = started});
  notify.ready("running the jobs under " + o.common.prefix + " as " + daemon.settings().host +
               ", lease " + detail::lease_hex(daemon.lease()));

  if (!serve(daemon, cron_options.watchdog, inbox, o.common, ops, log))
    return exit_code::unavailable;
  log({.what = cron_event::kind::daemon, .message = "stopped"});
  return exit_code::ok;
}

}  // namespace conch::tool
