// conch/tool/status.hpp — `conch status [--json] [--watch] [--names]`: every
// office, semaphore and cron job under the prefix at a glance.
//
//   offices     the leader (token, host, pid, age) and the contenders waiting, in order
//   semaphores  the slots held (slot, token, host, pid, age) and the waiters, in order
//   jobs        schedule, next tick, the last run's result, and zombie ticks
//
// `--watch` redraws on every etcd watch event under the prefix (not by
// polling) until a stop signal; `--names` prints `elect NAME`, `sema NAME`,
// `cron NAME` lines (what shell completion offers).
#pragma once

#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/exit_codes.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/records.hpp"
#include "conch/process/signals.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/connect.hpp"
#include "conch/tool/cron.hpp"
#include "conch/tool/flags.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <poll.h>
#include <string>
#include <vector>

namespace conch::tool {

/// What is under a prefix at one revision.
struct status_snapshot {
  struct semaphore {
    int max = 0;
    std::vector<std::pair<int, key_value>> slots;  ///< by slot
    std::vector<key_value> waiters;                ///< queue order
  };
  revision at = 0;
  std::map<std::string, std::vector<key_value>> offices;  ///< contenders, leader first
  std::map<std::string, semaphore> semaphores;
  std::vector<cron_job_view> jobs;
};

namespace status_detail {

inline bool by_creation(const key_value& a, const key_value& b) {
  return a.create_revision < b.create_revision;
}

inline result<range_response> read_dir(etcd_transport& etcd, const std::string& dir, revision at) {
  range_request r;
  r.key = dir;
  r.range_end = prefix_end(dir);
  r.at_revision = at;
  return etcd.range(r, etcd.default_deadline());
}

/// One holder or waiter as JSON: the record's fields, its key, token and age.
inline nlohmann::json holder(const key_value& kv, std::chrono::system_clock::time_point now) {
  nlohmann::json j = nlohmann::json::parse(describe_holder(kv, true), nullptr, false);
  if (auto rec = detail::decode_record<detail::holder_record>(kv.value))
    j["age_s"] = std::chrono::duration_cast<std::chrono::seconds>(now - rec->start).count();
  return j;
}

inline std::string holder_line(const nlohmann::json& h) {
  if (h.value("unknown_holder", false)) return "unknown holder, key " + h.value("key", "");
  std::string s = h.value("host", "?") + " pid " + std::to_string(h.value("pid", 0));
  if (h.value("token", 0) != 0) s += ", token " + std::to_string(h.value("token", 0));
  if (h.contains("age_s")) s += ", for " + std::to_string(h["age_s"].get<long long>()) + "s";
  return s + ", lease " + h.value("lease", "");
}

}  // namespace status_detail

/// Reads offices, semaphores and jobs under `prefix`, the first two at one revision.
inline result<status_snapshot> read_status(etcd_transport& etcd, const std::string& prefix) {
  status_snapshot s;
  auto elect = status_detail::read_dir(etcd, prefix + "elect/", 0);
  if (!elect) return std::move(elect).error();
  s.at = elect->header_revision;
  auto sema = status_detail::read_dir(etcd, prefix + "sema/", s.at);
  if (!sema) return std::move(sema).error();
  for (const auto& kv : elect->kvs)
    if (auto k = detail::decode_key<detail::election_key>(prefix, kv.key))
      s.offices[k->name].push_back(kv);
  for (auto& [name, kvs] : s.offices) std::sort(kvs.begin(), kvs.end(), status_detail::by_creation);
  for (const auto& kv : sema->kvs) {
    if (auto k = detail::decode_key<detail::semaphore_slot_key>(prefix, kv.key)) {
      s.semaphores[k->name].max = k->max;
      s.semaphores[k->name].slots.emplace_back(k->slot, kv);
    } else if (auto q = detail::decode_key<detail::semaphore_queue_key>(prefix, kv.key)) {
      s.semaphores[q->name].max = q->max;
      s.semaphores[q->name].waiters.push_back(kv);
    }
  }
  for (auto& [name, sem] : s.semaphores) {
    std::sort(sem.slots.begin(), sem.slots.end(),
              [](auto& a, auto& b) { return a.first < b.first; });
    std::sort(sem.waiters.begin(), sem.waiters.end(), status_detail::by_creation);
  }
  auto jobs = list_cron_jobs(etcd, prefix, std::chrono::system_clock::now(), 20);
  if (!jobs) return std::move(jobs).error();
  s.jobs = std::move(*jobs);
  return s;
}

/// The snapshot as one JSON object: {"revision", "offices", "semaphores", "jobs"}.
inline nlohmann::json status_json(const status_snapshot& s,
                                  std::chrono::system_clock::time_point now) {
  nlohmann::json out{{"revision", s.at},
                     {"offices", nlohmann::json::array()},
                     {"semaphores", nlohmann::json::array()}};
  for (const auto& [name, kvs] : s.offices) {
    nlohmann::json o{{"name", name},
                     {"leader", status_detail::holder(kvs.front(), now)},
                     {"waiters", nlohmann::json::array()}};
    for (std::size_t i = 1; i < kvs.size(); ++i)
      o["waiters"].push_back(status_detail::holder(kvs[i], now));
    out["offices"].push_back(std::move(o));
  }
  for (const auto& [name, sem] : s.semaphores) {
    nlohmann::json o{{"name", name},
                     {"max", sem.max},
                     {"holders", nlohmann::json::array()},
                     {"waiters", nlohmann::json::array()}};
    for (const auto& [slot, kv] : sem.slots) {
      auto h = status_detail::holder(kv, now);
      h["slot"] = slot;
      o["holders"].push_back(std::move(h));
    }
    for (const auto& kv : sem.waiters) o["waiters"].push_back(status_detail::holder(kv, now));
    out["semaphores"].push_back(std::move(o));
  }
  out["jobs"] = nlohmann::json::parse(cron_text::json(s.jobs), nullptr, false);
  return out;
}

inline std::string job_line(const cron_job_view& j) {
  if (j.removed) return j.name + "  (removed)";
  if (!j.problem.empty()) return j.name + "  CORRUPT: " + j.problem;
  std::string s = j.name + "  " + j.schedule + (j.tz.empty() ? "" : " (" + j.tz + ")") +
                  (j.paused ? "  PAUSED" : "  next " + (j.next.empty() ? "never" : j.next));
  const auto last = std::find_if(j.runs.begin(), j.runs.end(), [](const cron_run_view& r) {
    return r.exit_code && r.skipped.empty();
  });
  if (last != j.runs.end())
    s += "  last " + last->tick + " exit " + std::to_string(*last->exit_code);
  const auto zombies = std::count_if(j.runs.begin(), j.runs.end(), [](const cron_run_view& r) {
    return r.state == detail::run_state::zombie;
  });
  if (zombies) s += "  zombies " + std::to_string(zombies);
  return s;
}

/// The snapshot for people.
inline std::string status_text(const status_snapshot& s,
                               std::chrono::system_clock::time_point now) {
  const auto j = status_json(s, now);
  std::string out = "offices (" + std::to_string(s.offices.size()) + ")\n";
  for (const auto& o : j["offices"]) {
    out += "  " + o["name"].get<std::string>() + "  leader " +
           status_detail::holder_line(o["leader"]) + "\n";
    int place = 0;
    for (const auto& w : o["waiters"])
      out += "    waiting " + std::to_string(++place) + ". " + status_detail::holder_line(w) + "\n";
  }
  out += "semaphores (" + std::to_string(s.semaphores.size()) + ")\n";
  for (const auto& o : j["semaphores"]) {
    out += "  " + o["name"].get<std::string>() + "  " + std::to_string(o["holders"].size()) +
           " of " + std::to_string(o["max"].get<int>()) + " held\n";
    for (const auto& h : o["holders"])
      out += "    slot " + std::to_string(h["slot"].get<int>()) + ". " +
             status_detail::holder_line(h) + "\n";
    int place = 0;
    for (const auto& w : o["waiters"])
      out += "    waiting " + std::to_string(++place) + ". " + status_detail::holder_line(w) + "\n";
  }
  out += "jobs (" + std::to_string(s.jobs.size()) + ")\n";
  for (const auto& job : s.jobs) out += "  " + job_line(job) + "\n";
  return out;
}

/// `elect NAME`, `sema NAME` and `cron NAME` lines, for completion.
inline std::string status_names(const status_snapshot& s) {
  std::string out;
  for (const auto& [name, kvs] : s.offices) out += "elect " + name + "\n";
  for (const auto& [name, sem] : s.semaphores) out += "sema " + name + "\n";
  for (const auto& j : s.jobs)
    if (!j.removed) out += "cron " + j.name + "\n";
  return out;
}

struct status_options {
  common_options common{};
  bool watch = false;
  bool names = false;
};

/// Prints one view; with --watch, again after every batch of watch events
/// under the prefix, until a stop signal.
inline int status_run(const command_line& p, const status_options& o,
                      process::signal_inbox& inbox) {
  etcd_transport etcd{o.common.transport()};
  if (int code = require_etcd(etcd, o.common, p.program())) return code;
  auto draw = [&]() -> std::optional<revision> {
    auto s = read_status(etcd, o.common.prefix);
    if (!s) {
      std::cerr << p.program() << ": " << s.error().message << std::endl;
      return std::nullopt;
    }
    const auto now = std::chrono::system_clock::now();
    if (o.names)
      std::cout << status_names(*s);
    else if (o.common.json)
      std::cout << status_json(*s, now).dump() << "\n";
    else
      std::cout << (o.watch && ::isatty(1) ? "\x1b[H\x1b[2J" : "") << status_text(*s, now)
                << (o.watch ? "\n" : "");
    std::cout << std::flush;
    return s->at;
  };
  auto at = draw();
  if (!at) return exit_code::unavailable;
  if (!o.watch) return exit_code::ok;
  auto stream = etcd.watch({.key = o.common.prefix,
                            .range_end = prefix_end(o.common.prefix),
                            .start_revision = *at + 1});
  for (;;) {
    if (auto sig = inbox.take()) return exit_code::ok;
    auto batch = stream.next(std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
    if (!batch) {
      if (batch.error().code == errc::timed_out) continue;
      std::cerr << p.program() << ": watch: " << batch.error().message << std::endl;
      return exit_code::unavailable;
    }
    if (!batch->events.empty() && !draw()) return exit_code::unavailable;
  }
}

/// Declares `conch status` under `conch` (see tool/conch.hpp).
inline void add_status(command_line& conch, process::signal_inbox& inbox) {
  auto& p = conch.subcommand(
      "status", "[--json] [--watch] [--names]",
      "Show every office, semaphore and cron job under the prefix.\n\n"
      "Offices: the leader (token, host, pid, age) and the contenders waiting, in\n"
      "order. Semaphores: the slots held and the waiters. Jobs: schedule, next tick,\n"
      "the last run's exit code and zombie ticks. --watch redraws on every change.");
  struct state {
    status_options o;
    common_flags common;
    explicit state(command_line& p) : common(p, false) {
      p.flag("--watch", o.watch,
             "redraw on every change under the prefix (etcd watch), until a stop signal");
      p.flag("--names", o.names,
             "print 'elect NAME', 'sema NAME' and 'cron NAME' lines (for completion)");
    }
  };
  auto st = std::make_shared<state>(p);
  p.on_run([st, &p, &inbox] {
    auto c = st->common.finish();
    if (!c) return usage_error(p, c.error().message);
    st->o.common = std::move(*c);
    return status_run(p, st->o, inbox);
  });
}

}  // namespace conch::tool
