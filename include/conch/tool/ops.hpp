// conch/tool/ops.hpp — what a holding wrapper (`conch elect`, `conch sema`)
// tells the people who run it: systemd notices (tool/notify.hpp) and metrics
// (tool/metrics.hpp), both fed from the hooks of the shared holding flow
// (tool/hold.hpp).
//
//   auto notify = conch::tool::notifier::from_environment();
//   opts.hooks = conch::tool::notify_hooks(notify, {.waiting = "waiting for office report",
//                                                   .holding = [&] { return "leading office
//                                                   report"; }});
#pragma once

#include "conch/exit_codes.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/tool/hold.hpp"
#include "conch/tool/listen_address.hpp"
#include "conch/tool/metered_transport.hpp"
#include "conch/tool/metrics_server.hpp"
#include "conch/tool/notify.hpp"
#include "conch/tool/tool_metrics.hpp"

#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace conch::tool {

/// The STATUS= lines of a holding wrapper.
struct hold_texts {
  std::string waiting;                   ///< "waiting for office report"
  std::function<std::string()> holding;  ///< "leading office report (token 42)", once held
};

/// Hooks that keep systemd informed: STATUS while waiting, READY=1 once the
/// child runs, WATCHDOG=1 from every look at the lease deadline (while it is
/// ahead), STOPPING=1 with the exit code.
inline hold_hooks notify_hooks(notifier& n, hold_texts texts) {
  hold_hooks h;
  if (!n.enabled()) return h;
  auto holding = [texts] { return texts.holding ? texts.holding() : std::string("holding"); };
  h.waiting = [&n, w = texts.waiting] { n.status(w); };
  h.acquired = [&n, holding] { n.status(holding() + ", starting the command"); };
  h.started = [&n, holding](long pid) {
    n.ready(holding() + ", running pid " + std::to_string(pid));
  };
  h.exited = [&n, holding](int code) {
    n.status(holding() + ", the command exited with " + std::to_string(code));
  };
  h.done = [&n](int code) { n.stopping("exiting with " + std::to_string(code)); };
  if (auto every = n.watchdog_interval()) {
    h.lease = [&n](std::chrono::steady_clock::time_point d) { n.feed(d); };
    h.watch_every = std::max(std::chrono::milliseconds(10),
                             std::chrono::duration_cast<std::chrono::milliseconds>(*every / 4));
  }
  return h;
}

/// Both hook sets, `a`'s first.
inline hold_hooks combine(hold_hooks a, hold_hooks b) {
  auto join0 = [](std::function<void()> x, std::function<void()> y) -> std::function<void()> {
    if (!x || !y) return x ? x : y;
    return [x, y] { x(), y(); };
  };
  auto join1 = []<class T>(std::function<void(T)> x,
                           std::function<void(T)> y) -> std::function<void(T)> {
    if (!x || !y) return x ? x : y;
    return [x, y](T v) { x(v), y(v); };
  };
  hold_hooks h;
  h.waiting = join0(a.waiting, b.waiting);
  h.acquired = join0(a.acquired, b.acquired);
  h.started = join1(a.started, b.started);
  h.exited = join1(a.exited, b.exited);
  h.done = join1(a.done, b.done);
  h.lease = join1(a.lease, b.lease);
  const auto wa = a.lease ? a.watch_every : std::chrono::milliseconds(0);
  const auto wb = b.lease ? b.watch_every : std::chrono::milliseconds(0);
  h.watch_every = wa.count() && wb.count() ? std::min(wa, wb) : std::max(wa, wb);
  return h;
}

/// Everything a holding wrapper reports: systemd notices always (no-ops
/// outside systemd), metrics and their server when --metrics is given.
struct wrapper_ops {
  notifier notify = notifier::from_environment();
  metrics_registry metrics{};
  std::unique_ptr<metrics_server> server{};
  bool metered = false;

  /// Starts the metrics server on `where` (if any) with /health following
  /// `session`; 0, or the exit code after printing why (69: cannot listen).
  template <class Session>
  int start(const std::optional<listen_address>& where, const std::string& program,
            Session& session) {
    if (!where) return 0;
    describe_hold_metrics(metrics);
    metrics.set("conch_session_up", {}, 1);
    auto s = metrics_server::start(*where, metrics, [&session]() -> std::string {
      if (session.lost()) return "session lost: " + session.lost_reason();
      if (std::chrono::steady_clock::now() >= session.local_deadline())
        return "lease past its local deadline";
      return {};
    });
    if (!s) {
      std::cerr << program << ": " << s.error().message << std::endl;
      return exit_code::unavailable;
    }
    server = std::move(*s);
    metered = true;
    return 0;
  }
  hold_hooks hooks(hold_texts texts) {
    auto n = notify_hooks(notify, std::move(texts));
    return metered ? combine(std::move(n), metrics_hooks(metrics)) : n;
  }
};

/// What conchd reports: systemd notices, and metrics of its ticks, its etcd
/// calls and its session when --metrics is given.
struct daemon_ops {
  notifier notify = notifier::from_environment();
  metrics_registry metrics{};
  std::unique_ptr<metrics_server> server{};
  bool metered = false;

  /// The registry the etcd calls are timed into (null without --metrics).
  metrics_registry* registry(const std::optional<listen_address>& where) {
    if (!where) return nullptr;
    describe_cron_metrics(metrics);
    describe_etcd_metrics(metrics);
    metered = true;
    return &metrics;
  }
  /// Serves the metrics on `where`, /health failing while `deadline()` is
  /// missing or past; 0, or the exit code after printing why (69).
  template <class Deadline>
  int start(const std::optional<listen_address>& where, Deadline deadline) {
    if (!where) return 0;
    auto s = metrics_server::start(*where, metrics, [deadline]() -> std::string {
      auto d = deadline();
      if (!d) return "no session";
      return std::chrono::steady_clock::now() < *d ? std::string()
                                                   : "session lost: lease past its local deadline";
    });
    if (!s) {
      std::cerr << "conchd: " << s.error().message << std::endl;
      return exit_code::unavailable;
    }
    server = std::move(*s);
    return 0;
  }
  void observe(const cron_event& e) {
    if (metered)
      observe_cron_event(
          metrics, e,
          std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now()));
  }
  /// From the loop that watches the lease: feeds systemd's watchdog, sets conch_session_up.
  void lease(std::optional<std::chrono::steady_clock::time_point> d) {
    if (d) notify.feed(*d);
    if (metered)
      metrics.set("conch_session_up", {}, d && std::chrono::steady_clock::now() < *d ? 1 : 0);
  }
};

}  // namespace conch::tool
