// conch/tool/cron.hpp — `conch cron add|ls|rm`: the job table from a shell.
//
//   conch cron add NAME --schedule SPEC [--tz ZONE] -- CMD ARGS...
//   conch cron rm NAME
//   conch cron ls [--json] [--last N]
//
// `add` checks the schedule and zone before touching etcd: a bad one exits 64
// with the reason and nothing is stored. `rm` stops further ticks; a run in
// flight finishes and records its result. `ls` prints every job, its next
// tick and its last runs — done, running, or zombie (claimed, no result, the
// claimer's lease gone: never rerun) — and any job value it cannot read.
// The daemons that fire the ticks are `conchd` (tool/conchd.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/process/signals.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/connect.hpp"
#include "conch/exit_codes.hpp"
#include "conch/tool/flags.hpp"

#include <nlohmann/json.hpp>

namespace conch::tool {

namespace cron_text {

inline std::string shell_words(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_of(" \t\n\"'\\$`|&;<>()*?[]{}~#") == std::string::npos;
    out += plain ? a : nlohmann::json(a).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return out;
}

/// `ls` for people: a line per job, an indented line per run.
inline std::string human(const std::vector<cron_job_view>& jobs) {
  std::string out;
  for (const auto& j : jobs) {
    if (j.removed) {
      out += j.name + "  (removed)\n";
    } else if (!j.problem.empty()) {
      out += j.name + "  CORRUPT (skipped by conchd): " + j.problem + "\n";
    } else {
      out += j.name + "  " + j.schedule + (j.tz.empty() ? "" : " (" + j.tz + ")") +
             "  next " + (j.next.empty() ? "never" : j.next) + "  -- " + shell_words(j.argv) + "\n";
    }
    for (const auto& r : j.runs) {
      out += "  " + r.tick + "  " + detail::to_string(r.state);
      if (r.exit_code) out += " exit=" + std::to_string(*r.exit_code);
      out += "  claimer=" + (r.host.empty() ? std::string("?") : r.host) + "/" + std::to_string(r.pid);
      if (!r.lease.empty()) out += " lease=" + r.lease;
      out += " rev=" + std::to_string(r.rev);
      if (!r.start.empty()) out += "  start=" + r.start + " end=" + r.end;
      else if (!r.claimed.empty()) out += "  claimed=" + r.claimed;
      if (!r.problem.empty()) out += "  (" + r.problem + ")";
      out += "\n";
    }
  }
  return out;
}

/// `ls --json`: one array, one object per job.
inline std::string json(const std::vector<cron_job_view>& jobs) {
  auto text_or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  nlohmann::json all = nlohmann::json::array();
  for (const auto& j : jobs) {
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : j.runs) {
      runs.push_back({{"tick", r.tick},
                      {"state", detail::to_string(r.state)},
                      {"rev", r.rev},
                      {"claimer", {{"host", r.host}, {"pid", r.pid}, {"lease", r.lease}}},
                      {"claimed", text_or_null(r.claimed)},
                      {"start", text_or_null(r.start)},
                      {"end", text_or_null(r.end)},
                      {"exit_code", r.exit_code ? nlohmann::json(*r.exit_code) : nlohmann::json(nullptr)},
                      {"output", r.output},
                      {"problem", text_or_null(r.problem)}});
    }
    all.push_back({{"name", j.name},
                   {"removed", j.removed},
                   {"problem", text_or_null(j.problem)},
                   {"schedule", j.schedule},
                   {"tz", j.tz},
                   {"argv", j.argv},
                   {"created", text_or_null(j.created)},
                   {"next", text_or_null(j.next)},
                   {"runs", std::move(runs)}});
  }
  return all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace cron_text

inline int cron_usage(std::ostream& out, int code) {
  out << "usage: conch cron add NAME --schedule SPEC [--tz ZONE] [flags] -- CMD ARGS...\n"
         "       conch cron rm NAME [flags]\n"
         "       conch cron ls [--json] [--last N] [flags]\n\n"
         "Jobs for the conchd daemons: each tick runs once, on one daemon. 'conch cron add --help' tells more.\n";
  return code;
}

inline int cron_add(const std::vector<std::string>& args) {
  cron_job_spec spec;
  flag_parser p{"conch cron add", "NAME --schedule SPEC [--tz ZONE] [flags] -- CMD ARGS...",
                "Store job NAME: conchd runs CMD once per tick of SPEC, on one daemon. SPEC is a\n"
                "5-field cron line (or 6 with leading seconds), a macro (@hourly, @daily, ...) or\n"
                "'@every DURATION' (ticks at multiples of DURATION since the Unix epoch). ZONE is\n"
                "an IANA time zone for the wall times (default UTC). Adding an existing NAME\n"
                "replaces it."};
  p.positional("NAME", spec.name, "the job");
  common_flags common{p, false};
  p.text("--schedule", spec.schedule, "SPEC", "when to run (required)");
  p.text("--tz", spec.tz, "ZONE", "IANA time zone for the schedule (default UTC)");
  p.command(spec.argv);
  if (auto code = finish_parse(p, p.parse(args), version)) return *code;
  if (spec.schedule.empty()) return usage_error(p, "--schedule is required");
  auto o = common.finish();
  if (!o) return usage_error(p, o.error().message);
  const auto now = std::chrono::system_clock::now();
  // Check before connecting: a bad job is a usage error whether or not etcd is up.
  detail::job_record check{};
  check.name = spec.name;
  check.schedule = spec.schedule;
  check.tz = spec.tz;
  check.argv = spec.argv;
  auto job = detail::make_cron_job(o->prefix, check);
  if (!job) return usage_error(p, job.error().message);

  etcd_transport etcd{o->transport()};
  if (int code = require_etcd(etcd, *o, p.program())) return code;
  auto r = add_cron_job(etcd, o->prefix, spec, now);
  if (!r) {
    std::cerr << p.program() << ": " << r.error().message << "\n";
    return r.error().code == errc::invalid_argument ? exit_code::usage : exit_code::unavailable;
  }
  auto next = job->next_after(now);
  std::cerr << p.program() << ": job " << spec.name << " stored at " << job->key << " (revision " << *r
            << "), next tick " << (next ? detail::format_rfc3339(*next) : std::string("never")) << "\n";
  return exit_code::ok;
}

inline int cron_rm(const std::vector<std::string>& args) {
  std::string name;
  flag_parser p{"conch cron rm", "NAME [flags]",
                "Delete job NAME: no further ticks. A run in flight finishes and records its result;\n"
                "the job's history stays until pruned. Exits 1 if there is no such job."};
  p.positional("NAME", name, "the job");
  common_flags common{p, false};
  if (auto code = finish_parse(p, p.parse(args), version)) return *code;
  auto o = common.finish();
  if (!o) return usage_error(p, o.error().message);
  etcd_transport etcd{o->transport()};
  if (int code = require_etcd(etcd, *o, p.program())) return code;
  auto r = remove_cron_job(etcd, o->prefix, name);
  if (!r) {
    std::cerr << p.program() << ": " << r.error().message << "\n";
    return r.error().code == errc::invalid_argument ? exit_code::usage : exit_code::unavailable;
  }
  if (!*r) {
    std::cerr << p.program() << ": no job " << detail::quoted(name) << "\n";
    return exit_code::vacant;
  }
  std::cerr << p.program() << ": job " << name << " removed\n";
  return exit_code::ok;
}

inline int cron_ls(const std::vector<std::string>& args) {
  std::int64_t last = 5;
  flag_parser p{"conch cron ls", "[--json] [--last N] [flags]",
                "List the jobs, their next tick and their last runs: done (with exit code),\n"
                "running, or zombie (claimed, no result, the claimer's lease gone; never rerun).\n"
                "A job value that cannot be read is listed as CORRUPT; conchd skips it."};
  common_flags common{p, false};
  p.integer("--last", last, 0, 1000, "runs shown per job, newest first (default 5)");
  if (auto code = finish_parse(p, p.parse(args), version)) return *code;
  auto o = common.finish();
  if (!o) return usage_error(p, o.error().message);
  etcd_transport etcd{o->transport()};
  if (int code = require_etcd(etcd, *o, p.program())) return code;
  auto jobs = list_cron_jobs(etcd, o->prefix, std::chrono::system_clock::now(), static_cast<std::size_t>(last));
  if (!jobs) {
    std::cerr << p.program() << ": " << jobs.error().message << "\n";
    return exit_code::unavailable;
  }
  std::cout << (o->json ? cron_text::json(*jobs) : cron_text::human(*jobs)) << std::flush;
  return exit_code::ok;
}

/// `conch cron ...` (the words after "cron").
inline int cron_main(const std::vector<std::string>& args, process::signal_inbox&) {
  if (args.empty()) return cron_usage(std::cerr, exit_code::usage);
  const std::string& sub = args.front();
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "add") return cron_add(rest);
  if (sub == "rm") return cron_rm(rest);
  if (sub == "ls") return cron_ls(rest);
  if (sub == "--help" || sub == "-h" || sub == "help") return cron_usage(std::cout, exit_code::ok);
  std::cerr << "conch cron: unknown command " << detail::quoted(sub) << " (add, ls or rm)\n";
  return exit_code::usage;
}

}  // namespace conch::tool
