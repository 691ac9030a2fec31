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

#include "conch/tool/hold.hpp"
#include "conch/tool/notify.hpp"

#include <chrono>
#include <functional>
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

}  // namespace conch::tool
