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

#include "conch/cron_jobs.hpp"
#include "conch/etcd.hpp"
#include "conch/exit_codes.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/connect.hpp"
#include "conch/tool/flags.hpp"

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace conch::tool {

namespace cron_text {

inline std::string shell_words(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain =
        !a.empty() && a.find_first_of(" \t\n\"'\\$`|&;<>()*?[]{}~#") == std::string::npos;
    out += plain ? a
                 : nlohmann::json(a).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
      out += j.name + "  " + j.schedule + (j.tz.empty() ? "" : " (" + j.tz + ")") + "  next " +
             (j.next.empty() ? "never" : j.next) + "  -- " + shell_words(j.argv) + "\n";
    }
    for (const auto& r : j.runs) {
      out += "  " + r.tick + "  " + detail::to_string(r.state);
      if (r.exit_code) out += " exit=" + std::to_string(*r.exit_code);
      out +=
          "  claimer=" + (r.host.empty() ? std::string("?") : r.host) + "/" + std::to_string(r.pid);
      if (!r.lease.empty()) out += " lease=" + r.lease;
      out += " rev=" + std::to_string(r.rev);
      if (!r.start.empty())
        out += "  start=" + r.start + " end=" + r.end;
      else if (!r.claimed.empty())
        out += "  claimed=" + r.claimed;
      if (!r.problem.empty()) out += "  (" + r.problem + ")";
      out += "\n";
    }
  }
  return out;
}

/// `ls --json`: one array, one object per job.
inline std::string json(const std::vector<cron_job_view>& jobs) {
  auto text_or_null = [](const std::string& s) {
    return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
  };
  nlohmann::json all = nlohmann::json::array();
  for (const auto& j : jobs) {
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : j.runs) {
      runs.push_back(
          {{"tick", r.tick},
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

/// `conch cron add`: checks the job before connecting (a bad job is a usage
/// error whether or not etcd is up), then stores it.
inline int cron_add_run(const command_line& p, const cron_job_spec& spec, const common_options& o) {
  const auto now = std::chrono::system_clock::now();
  detail::job_record check{};
  check.name = spec.name;
  check.schedule = spec.schedule;
  check.tz = spec.tz;
  check.argv = spec.argv;
  auto job = detail::make_cron_job(o.prefix, check);
  if (!job) return usage_error(p, job.error().message);

  etcd_transport etcd{o.transport()};
  if (int code = require_etcd(etcd, o, p.program())) return code;
  auto r = add_cron_job(etcd, o.prefix, spec, now);
  if (!r) {
    std::cerr << p.program() << ": " << r.error().message << "\n";
    return r.error().code == errc::invalid_argument ? exit_code::usage : exit_code::unavailable;
  }
  auto next = job->next_after(now);
  std::cerr << p.program() << ": job " << spec.name << " stored at " << job->key << " (revision "
            << *r << "), next tick "
            << (next ? detail::format_rfc3339(*next) : std::string("never")) << "\n";
  return exit_code::ok;
}

/// `conch cron rm`: 1 if there is no such job.
inline int cron_rm_run(const command_line& p, const std::string& name, const common_options& o) {
  etcd_transport etcd{o.transport()};
  if (int code = require_etcd(etcd, o, p.program())) return code;
  auto r = remove_cron_job(etcd, o.prefix, name);
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

/// `conch cron ls`: every job, human or --json.
inline int cron_ls_run(const command_line& p, std::size_t last, const common_options& o) {
  etcd_transport etcd{o.transport()};
  if (int code = require_etcd(etcd, o, p.program())) return code;
  auto jobs = list_cron_jobs(etcd, o.prefix, std::chrono::system_clock::now(), last);
  if (!jobs) {
    std::cerr << p.program() << ": " << jobs.error().message << "\n";
    return exit_code::unavailable;
  }
  std::cout << (o.json ? cron_text::json(*jobs) : cron_text::human(*jobs)) << std::flush;
  return exit_code::ok;
}

/// A `conch cron` subcommand's state: the words it binds and the common flags.
struct cron_flags {
  cron_job_spec spec;
  std::int64_t last = 5;
  std::optional<common_flags> common;
};

/// Runs `conch cron <sub>` once its flags are checked.
template <class Run>
void on_cron_run(command_line& p, std::shared_ptr<cron_flags> f, Run run) {
  p.on_run([&p, f = std::move(f), run] {
    auto o = f->common->finish();
    if (!o) return usage_error(p, o.error().message);
    return run(p, *f, *o);
  });
}

inline void add_cron_add(command_line& cron) {
  auto f = std::make_shared<cron_flags>();
  auto& p = cron.subcommand(
      "add", "NAME --schedule SPEC [--tz ZONE] [flags] -- CMD ARGS...",
      "Store job NAME, which conchd runs on the ticks of SPEC.\n\n"
      "Store job NAME: conchd runs CMD once per tick of SPEC, on one daemon. SPEC is a\n"
      "5-field cron line (or 6 with leading seconds), a macro (@hourly, @daily, ...) or\n"
      "'@every DURATION' (ticks at multiples of DURATION since the Unix epoch). ZONE is\n"
      "an IANA time zone for the wall times. Adding an existing NAME replaces it. A bad\n"
      "SPEC or ZONE exits 64 and stores nothing.");
  f->common.emplace(p.positional("NAME", f->spec.name, "the job"), false);
  p.text("--schedule", f->spec.schedule, "SPEC", "when to run (required)");
  p.text("--tz", f->spec.tz, "ZONE", "IANA time zone for the schedule").default_text("UTC");
  p.command(f->spec.argv);
  on_cron_run(p, f, [](const command_line& p, const cron_flags& f, const common_options& o) {
    if (f.spec.schedule.empty()) return usage_error(p, "--schedule is required");
    return cron_add_run(p, f.spec, o);
  });
}

inline void add_cron_rm(command_line& cron) {
  auto f = std::make_shared<cron_flags>();
  auto& p = cron.subcommand(
      "rm", "NAME [flags]",
      "Delete job NAME.\n\n"
      "Delete job NAME: no further ticks. A run in flight finishes and records its result;\n"
      "the job's history stays until pruned. Exits 1 if there is no such job.");
  f->common.emplace(p.positional("NAME", f->spec.name, "the job"), false);
  on_cron_run(p, f, [](const command_line& p, const cron_flags& f, const common_options& o) {
    return cron_rm_run(p, f.spec.name, o);
  });
}

inline void add_cron_ls(command_line& cron) {
  auto f = std::make_shared<cron_flags>();
  auto& p = cron.subcommand(
      "ls", "[--json] [--last N] [flags]",
      "List the jobs and their last runs.\n\n"
      "List the jobs, their next tick and their last runs: done (with exit code),\n"
      "running, or zombie (claimed, no result, the claimer's lease gone; never rerun).\n"
      "A job value that cannot be read is listed as CORRUPT; conchd skips it.");
  f->common.emplace(p, false);
  p.integer("--last", f->last, 0, 1000, "runs shown per job, newest first").default_text("5");
  on_cron_run(p, f, [](const command_line& p, const cron_flags& f, const common_options& o) {
    return cron_ls_run(p, static_cast<std::size_t>(f.last), o);
  });
}

/// Declares `conch cron add|ls|rm` under `conch` (see tool/conch.hpp).
inline void add_cron(command_line& conch) {
  auto& cron =
      conch.subcommand("cron", "add|ls|rm ... [flags]",
                       "The jobs the conchd daemons run: add, ls, rm.\n\n"
                       "The jobs for the conchd daemons: each tick runs once, on one daemon.\n"
                       "'conch cron add --help' tells more.");
  add_cron_add(cron);
  add_cron_ls(cron);
  add_cron_rm(cron);
}

}  // namespace conch::tool
