// conch/tool/elect.hpp — `conch elect NAME [flags] -- CMD ARGS...`
//
// Campaigns for office NAME and runs CMD while leading; the next contender
// takes over as soon as CMD exits (a fenced resign), or when our lease is lost
// (CMD's process group is killed first). `--who` prints the leader instead.
// A thin layer over basic_election and the shared holding flow (hold.hpp).
#pragma once

#include "conch/election.hpp"
#include "conch/etcd.hpp"
#include "conch/exit_codes.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/process/signals.hpp"
#include "conch/session.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/connect.hpp"
#include "conch/tool/flags.hpp"
#include "conch/tool/hold.hpp"
#include "conch/tool/holder.hpp"
#include "conch/tool/ops.hpp"

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <unistd.h>
#include <utility>
#include <variant>
#include <vector>

namespace conch::tool {

struct elect_options {
  common_options common{};
  std::string name{};
  bool who = false;
  bool nonblock = false;
  std::optional<std::chrono::milliseconds> timeout{};
  conch::detail::restart_rule restart{};
  std::chrono::milliseconds lock_delay{0};
  std::vector<std::string> argv{};
  std::optional<listen_address> metrics{};
};

/// `conch elect`'s flags, declared on its command line; finish() checks
/// them after the parse.
struct elect_flags {
  elect_options o;
  std::chrono::milliseconds timeout{-1};
  common_flags common;
  std::optional<lock_delay_flag> lock_delay;
  std::optional<metrics_flag> metrics;

  explicit elect_flags(command_line& p) : common(p.positional("NAME", o.name, "the office")) {
    p.flag("--who", o.who, "print the leader and exit (1 if the office is vacant)");
    p.flag("--nonblock", o.nonblock, "exit 75 at once if another leads");
    p.duration("--timeout", timeout, "give up waiting after this long, then exit 75", "none: wait");
    p.flag("--restart", o.restart.enabled,
           "restart CMD when it exits, with backoff, while leading; and ride through an etcd "
           "outage of up to one more TTL past the local deadline (CMD is stopped at the "
           "deadline and started again if the lease turns out kept)");
    p.duration("--stable-after", o.restart.stable_after,
               "with --restart: a CMD that ran this long resets the backoff", "60s");
    lock_delay.emplace(p);
    metrics.emplace(p);
    p.command(o.argv, [this] { return !o.who; });
  }

  /// The options, or the exit code to leave with (64, the line printed).
  std::variant<elect_options, int> finish(const command_line& p) {
    if (o.who && !o.argv.empty()) return usage_error(p, "--who runs no command");
    if (o.name.empty()) return usage_error(p, "NAME must not be empty");
    if (auto code = metrics->finish(p, o.metrics)) return *code;
    if (timeout.count() >= 0) o.timeout = timeout;
    if (auto done = finish_holding_flags(common, *lock_delay, o.common, o.lock_delay); !done)
      return usage_error(p, done.error().message);
    return o;
  }
};

/// `--who`: the leader's record on stdout (one line, or JSON with --json); 1 if vacant.
inline int elect_who(etcd_transport& etcd, const elect_options& o) {
  auto leader = basic_election<>::leader(etcd, o.common.prefix, o.name);
  if (!leader) {
    std::cerr << "conch elect: " << leader.error().message << "\n";
    return exit_code::unavailable;
  }
  if (!*leader) {
    std::cerr << "conch elect: office " << o.name << " is vacant\n";
    return exit_code::vacant;
  }
  std::cout << describe_holder(**leader, o.common.json) << std::endl;
  return exit_code::ok;
}

/// The election as a holding recipe: campaign, CONCH_* for the child, resign.
struct office_recipe {
  basic_election<>& office;
  basic_session<>& session;
  const elect_options& options;
  std::string record;

  result<void> acquire(std::stop_token stop) {
    return office.campaign(record, {.nonblock = options.nonblock,
                                    .timeout = options.timeout,
                                    .stop = std::move(stop),
                                    .lock_delay = options.lock_delay});
  }
  std::vector<std::pair<std::string, std::string>> env() const {
    return {{"CONCH_REV", std::to_string(office.token())},
            {"CONCH_KEY", office.key()},
            {"CONCH_LEASE", conch::detail::lease_hex(session.lease())},
            {"CONCH_NAME", options.name}};
  }
  result<void> release() { return office.resign(); }
};

/// Runs `conch elect` with parsed options. Stop signals must already be
/// blocked (process::block_stop_signals) and are read from `inbox`.
inline int elect_run(const elect_options& o, process::signal_inbox& inbox) {
  // First: the options' check then finds gRPC started, and leaves it so.
  etcd_transport& etcd = process_transport(o.common);
  if (int code = check_etcd_options(o.common, "conch elect")) return code;
  if (o.who) {
    if (int code = require_etcd(etcd, o.common, "conch elect")) return code;
    return elect_who(etcd, o);
  }

  basic_session<>::options session_options;
  session_options.ttl = o.common.ttl;
  // With --restart a leader rides through an etcd election longer than its
  // TTL allows: the child is stopped at the local deadline, and started again
  // if a renewal within one more TTL proves the lease (and the office) kept.
  if (o.restart.enabled) session_options.ride_through = o.common.ttl;
  basic_session<> session{etcd, session_options};
  if (int code = start_session_early(session, o.common, "conch elect")) return code;
  // A failed grant is reported as start_session_early() reports it.
  auto grant_failed = [&o](const error& e) { return etcd_unavailable(e, o.common, "conch elect"); };
  basic_election<> office{session, o.common.prefix, o.name};
  office_recipe recipe{office, session, o, holder_json(o.name, session.lease(), o.argv)};
  wrapper_ops ops;
  if (int code = ops.start(o.metrics, "conch elect", session)) return code;
  hold_texts texts{"waiting for office " + o.name, [&] {
                     return "leading office " + o.name + " (token " +
                            std::to_string(office.token()) + ")";
                   }};
  return hold_and_run(session, recipe,
                      {.program = "conch elect",
                       .supervise = {.argv = o.argv,
                                     .kill_after = o.common.kill_after,
                                     .restart = o.restart,
                                     .resume_after_deadline = o.restart.enabled},
                       .hooks = ops.hooks(texts),
                       .grant_failed = grant_failed},
                      inbox);
}

/// Declares `conch elect` under `conch` (see tool/conch.hpp).
inline void add_elect(command_line& conch, process::signal_inbox& inbox) {
  auto& p = conch.subcommand(
      "elect", "NAME [flags] -- CMD ARGS...",
      "Run CMD while leading office NAME.\n\n"
      "Campaign for office NAME and run CMD while leading. CMD gets CONCH_REV (its\n"
      "fencing token), CONCH_KEY, CONCH_LEASE and CONCH_NAME. When CMD exits the office\n"
      "passes to the next contender at once; if the lease is lost, CMD's process group\n"
      "is killed and conch exits 70, and the next contender starts its CMD only after\n"
      "the lock delay (--lock-delay), so two CMDs never run at once. With --who, print\n"
      "the leader instead.");
  auto flags = std::make_shared<elect_flags>(p);
  p.on_run([flags, &p, &inbox] {
    auto o = flags->finish(p);
    if (auto* code = std::get_if<int>(&o)) return *code;
    return elect_run(std::get<elect_options>(o), inbox);
  });
}

}  // namespace conch::tool
