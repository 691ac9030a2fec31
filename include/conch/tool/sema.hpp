// conch/tool/sema.hpp — `conch sema NAME --max N [flags] -- CMD ARGS...`
//
// Waits for one of N slots of semaphore NAME, first come first served, and
// runs CMD while holding it; the next waiter takes the slot as soon as CMD
// exits (a fenced release), or when our lease is lost (CMD's process group is
// killed first). `--who` lists holders and waiters instead. A thin layer over
// basic_semaphore and the holding flow `conch elect` uses too (hold.hpp).
#pragma once

#include "conch/etcd.hpp"
#include "conch/exit_codes.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/records.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/process/signals.hpp"
#include "conch/semaphore.hpp"
#include "conch/session.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/connect.hpp"
#include "conch/tool/flags.hpp"
#include "conch/tool/hold.hpp"
#include "conch/tool/holder.hpp"
#include "conch/tool/ops.hpp"

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace conch::tool {

struct sema_options {
  common_options common{};
  std::string name{};
  int max = 0;
  bool who = false;
  bool nonblock = false;
  std::optional<std::chrono::milliseconds> timeout{};
  std::chrono::milliseconds lock_delay{0};
  std::vector<std::string> argv{};
  std::optional<listen_address> metrics{};
};

/// `conch sema`'s flags, declared on its command line; finish() checks
/// them after the parse.
struct sema_flags {
  sema_options o;
  std::int64_t max = 0;
  std::chrono::milliseconds timeout{-1};
  common_flags common;
  std::optional<lock_delay_flag> lock_delay;
  std::optional<metrics_flag> metrics;

  explicit sema_flags(command_line& p)
      : common(p.positional("NAME", o.name, "the semaphore")
                   .integer("--max", max, 1, conch::detail::max_semaphore_size,
                            "number of slots (required)")) {
    p.flag("--who", o.who, "list holders and waiters and exit (1 if nobody holds)");
    p.flag("--nonblock", o.nonblock, "exit 75 at once if no slot is free for us");
    p.duration("--timeout", timeout, "give up waiting after this long, then exit 75", "none: wait");
    lock_delay.emplace(p);
    metrics.emplace(p);
    p.command(o.argv, [this] { return !o.who; });
  }

  /// The options, or the exit code to leave with (64, the line printed).
  std::variant<sema_options, int> finish(const command_line& p) {
    if (o.who && !o.argv.empty()) return usage_error(p, "--who runs no command");
    if (o.name.empty()) return usage_error(p, "NAME must not be empty");
    if (auto code = metrics->finish(p, o.metrics)) return *code;
    if (max == 0) return usage_error(p, "--max N is required (the number of slots)");
    o.max = static_cast<int>(max);
    if (timeout.count() >= 0) o.timeout = timeout;
    if (auto done = finish_holding_flags(common, *lock_delay, o.common, o.lock_delay); !done)
      return usage_error(p, done.error().message);
    return o;
  }
};

/// A waiter's line or JSON object: its record (no token yet: it holds
/// nothing) and the revision that orders the queue.
inline std::string describe_waiter(const key_value& kv, bool json) {
  auto rec = conch::detail::decode_record<conch::detail::holder_record>(kv.value);
  if (!rec) return describe_holder(kv, json);  // a foreign value: shown as an unknown holder
  if (rec->lease.empty() && kv.lease != 0) rec->lease = conch::detail::lease_hex(kv.lease);
  if (!json)
    return kv.key + "  " + conch::detail::format_record_line(*rec) +
           " queued=" + std::to_string(kv.create_revision);
  auto j = nlohmann::json::parse(conch::detail::encode_record(*rec), nullptr, false);
  j["key"] = kv.key;
  j["queued"] = kv.create_revision;
  return j.dump();
}

/// `--who`: holders by slot and waiters in order on stdout; 1 if nobody holds.
inline int sema_who(etcd_transport& etcd, const sema_options& o) {
  auto s = basic_semaphore<>::status(etcd, o.common.prefix, o.name, o.max);
  if (!s) {
    std::cerr << "conch sema: " << s.error().message << "\n";
    return exit_code::unavailable;
  }
  if (o.common.json) {
    nlohmann::json out = {{"name", o.name},
                          {"max", o.max},
                          {"slots", nlohmann::json::array()},
                          {"waiters", nlohmann::json::array()}};
    for (const auto& h : s->holders) {
      auto j = nlohmann::json::parse(describe_holder(h.kv, true));
      j["slot"] = h.slot;
      out["slots"].push_back(std::move(j));
    }
    for (const auto& w : s->waiters)
      out["waiters"].push_back(nlohmann::json::parse(describe_waiter(w, true)));
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << o.name << ": " << s->holders.size() << " of " << o.max << " slots held, "
              << s->waiters.size() << " waiting\n";
    for (const auto& h : s->holders)
      std::cout << "slot " << h.slot << "  " << describe_holder(h.kv, false) << "\n";
    std::size_t place = 0;
    for (const auto& w : s->waiters)
      std::cout << "waiter " << ++place << "  " << describe_waiter(w, false) << "\n";
    std::cout << std::flush;
  }
  if (s->holders.empty()) {
    std::cerr << "conch sema: nobody holds semaphore " << o.name << " (max=" << o.max << ")\n";
    return exit_code::vacant;
  }
  return exit_code::ok;
}

/// The semaphore as a holding recipe: wait for a slot, CONCH_* for the child, release.
struct slot_recipe {
  basic_semaphore<>& semaphore;
  basic_session<>& session;
  const sema_options& options;

  result<void> acquire(std::stop_token stop) {
    const lease_id lease = session.lease();
    return semaphore.acquire(holder_json(options.name, lease, options.argv),
                             {.nonblock = options.nonblock,
                              .timeout = options.timeout,
                              .stop = std::move(stop),
                              .slot_value =
                                  [this, lease](int slot) {
                                    return holder_json(options.name, lease, options.argv, slot);
                                  },
                              .lock_delay = options.lock_delay});
  }
  std::vector<std::pair<std::string, std::string>> env() const {
    return {{"CONCH_REV", std::to_string(semaphore.token())},
            {"CONCH_KEY", semaphore.slot_key()},
            {"CONCH_LEASE", conch::detail::lease_hex(session.lease())},
            {"CONCH_NAME", options.name},
            {"CONCH_SLOT", std::to_string(semaphore.slot())}};
  }
  result<void> release() { return semaphore.release(); }
};

/// Runs `conch sema` with parsed options. Stop signals must already be
/// blocked (process::block_stop_signals) and are read from `inbox`.
inline int sema_run(const sema_options& o, process::signal_inbox& inbox) {
  // First: the options' check then finds gRPC started, and leaves it so.
  etcd_transport& etcd = process_transport(o.common);
  if (int code = check_etcd_options(o.common, "conch sema")) return code;
  if (o.who) {
    if (int code = require_etcd(etcd, o.common, "conch sema")) return code;
    return sema_who(etcd, o);
  }

  basic_session<>::options session_options;
  session_options.ttl = o.common.ttl;
  basic_session<> session{etcd, session_options};
  if (int code = start_session_early(session, o.common, "conch sema")) return code;
  // A failed grant is reported as start_session_early() reports it.
  auto grant_failed = [&o](const error& e) { return etcd_unavailable(e, o.common, "conch sema"); };
  basic_semaphore<> semaphore{session, o.common.prefix, o.name, o.max};
  slot_recipe recipe{semaphore, session, o};
  wrapper_ops ops;
  if (int code = ops.start(o.metrics, "conch sema", session)) return code;
  hold_texts texts{"waiting for a slot of semaphore " + o.name, [&] {
                     return "holding slot " + std::to_string(semaphore.slot()) + " of semaphore " +
                            o.name;
                   }};
  return hold_and_run(session, recipe,
                      {.program = "conch sema",
                       .supervise = {.argv = o.argv, .kill_after = o.common.kill_after},
                       .hooks = ops.hooks(texts),
                       .grant_failed = grant_failed},
                      inbox);
}

/// Declares `conch sema` under `conch` (see tool/conch.hpp).
inline void add_sema(command_line& conch, process::signal_inbox& inbox) {
  auto& p = conch.subcommand(
      "sema", "NAME --max N [flags] -- CMD ARGS...",
      "Run CMD while holding one of N slots of semaphore NAME.\n\n"
      "Wait for one of N slots of semaphore NAME (first come, first served) and run CMD\n"
      "while holding it. CMD gets CONCH_SLOT, CONCH_REV (its fencing token, increasing\n"
      "per slot), CONCH_KEY, CONCH_LEASE and CONCH_NAME. When CMD exits the slot passes\n"
      "to the next waiter at once; if the lease is lost, CMD's process group is killed\n"
      "and conch exits 70, and the next waiter starts its CMD in that slot only after the\n"
      "lock delay (--lock-delay), so never more than N CMDs run at once. Semaphores of\n"
      "another --max never share slots with this one.\n"
      "With --who, list holders and waiters instead.");
  auto flags = std::make_shared<sema_flags>(p);
  p.on_run([flags, &p, &inbox] {
    auto o = flags->finish(p);
    if (auto* code = std::get_if<int>(&o)) return *code;
    return sema_run(std::get<sema_options>(o), inbox);
  });
}

}  // namespace conch::tool
