// conch/tool/cron.hpp — `conch cron add|ls|rm|pause|resume|run`: the job
// table from a shell.
//
//   conch cron add NAME --schedule SPEC [--tz ZONE] [--concurrency forbid|allow|replace]
//                       [--timeout DURATION] -- CMD ARGS...
//   conch cron rm NAME
//   conch cron pause NAME / conch cron resume NAME
//   conch cron run NAME          # one run now, on one daemon
//   conch cron ls [--json] [--last N]
//
// rm, pause, resume and run exit 1 when there is no such job (or its value
// cannot be read: `cron add` it again).
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

/// A job's controls: "concurrency=forbid timeout=none skips=0 timeouts=0".
inline std::string controls(const cron_job_view& j) {
  return "concurrency=" + j.concurrency + " timeout=" +
         (j.timeout_ms ? detail::format_duration(std::chrono::milliseconds{j.timeout_ms})
                       : std::string("none")) +
         " skips=" + std::to_string(j.skips) + " timeouts=" + std::to_string(j.timeouts);
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
             (j.paused ? "  PAUSED" : "  next " + (j.next.empty() ? "never" : j.next)) + "  " +
             controls(j) + "  -- " + shell_words(j.argv) + "\n";
    }
    for (const auto& r : j.runs) {
      out += "  " + r.tick + (r.manual ? " (cron run)" : "") + "  " + detail::to_string(r.state);
      if (r.exit_code && r.skipped.empty()) out += " exit=" + std::to_string(*r.exit_code);
      if (r.timed_out) out += " timed-out";
      out +=
          "  claimer=" + (r.host.empty() ? std::string("?") : r.host) + "/" + std::to_string(r.pid);
      if (!r.lease.empty()) out += " lease=" + r.lease;
      out += " rev=" + std::to_string(r.rev);
      if (!r.start.empty())
        out += "  start=" + r.start + " end=" + r.end;
      else if (!r.claimed.empty())
        out += "  claimed=" + r.claimed;
      if (!r.problem.empty()) out += "  (" + r.problem + ")";
      if (!r.skipped.empty()) out += "  (" + r.skipped + ")";
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
           {"problem", text_or_null(r.problem)},
           {"run", r.run},
           {"manual", r.manual},
           {"skipped", text_or_null(r.skipped)},
           {"timed_out", r.timed_out}});
    }
    all.push_back({{"name", j.name},
                   {"removed", j.removed},
                   {"problem", text_or_null(j.problem)},
                   {"schedule", j.schedule},
                   {"tz", j.tz},
                   {"argv", j.argv},
                   {"created", text_or_null(j.created)},
                   {"next", text_or_null(j.next)},
                   {"concurrency", text_or_null(j.concurrency)},
                   {"timeout_ms", j.timeout_ms},
                   {"paused", j.paused},
                   {"skips", j.skips},
                   {"timeouts", j.timeouts},
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
  check.concurrency = spec.concurrency;
  check.timeout_ms = spec.timeout.count();
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

/// A pause, resume or run that did not happen: one line, and 1 for a job
/// value that cannot be read, 64 for a bad name, 75 for a job that kept
/// changing, 69 otherwise.
inline int cron_change_failed(const command_line& p, const error& e) {
  std::cerr << p.program() << ": " << e.message << "\n";
  switch (e.code) {
    case errc::corrupt:
      return exit_code::vacant;
    case errc::invalid_argument:
      return exit_code::usage;
    case errc::busy:
      return exit_code::busy;
    default:
      return exit_code::unavailable;
  }
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

/// `conch cron pause|resume`: 1 if there is no such job.
inline int cron_pause_run(const command_line& p, const std::string& name, bool paused,
                          const common_options& o) {
  etcd_transport etcd{o.transport()};
  if (int code = require_etcd(etcd, o, p.program())) return code;
  auto r = pause_cron_job(etcd, o.prefix, name, paused);
  if (!r) return cron_change_failed(p, r.error());
  if (!*r) {
    std::cerr << p.program() << ": no job " << detail::quoted(name) << "\n";
    return exit_code::vacant;
  }
  std::cerr << p.program() << ": job " << name << (paused ? " paused" : " resumed") << "\n";
  return exit_code::ok;
}

/// `conch cron run`: asks for one run now; 1 if there is no such job.
inline int cron_run_now(const command_line& p, const std::string& name, const common_options& o) {
  etcd_transport etcd{o.transport()};
  if (int code = require_etcd(etcd, o, p.program())) return code;
  auto r = request_cron_run(etcd, o.prefix, name, std::chrono::system_clock::now());
  if (!r) return cron_change_failed(p, r.error());
  if (!*r) {
    std::cerr << p.program() << ": no job " << detail::quoted(name) << "\n";
    return exit_code::vacant;
  }
  std::cerr << p.program() << ": run " << **r << " of job " << name
            << " asked for; conchd claims it once\n";
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
      "an IANA time zone for the wall times. Adding an existing NAME replaces it (and\n"
      "resumes it if paused). A bad SPEC, ZONE, POLICY or DURATION exits 64 and stores\n"
      "nothing.\n\n"
      "--concurrency says what a tick does while the job's previous run still runs, on\n"
      "any daemon: forbid (the default) skips the tick and records it as skipped; allow\n"
      "runs both; replace stops the previous run's process group first (SIGTERM, then\n"
      "SIGKILL after conchd's --kill-after), on whichever daemon it runs. --timeout\n"
      "stops a run's group after DURATION the same way; its result says it timed out.");
  f->common.emplace(p.positional("NAME", f->spec.name, "the job"), false);
  p.text("--schedule", f->spec.schedule, "SPEC", "when to run (required)");
  p.text("--tz", f->spec.tz, "ZONE", "IANA time zone for the schedule").default_text("UTC");
  p.text("--concurrency", f->spec.concurrency, "POLICY",
         "while the previous run still runs: forbid (skip the tick), allow, replace")
      .default_text("forbid");
  p.duration("--timeout", f->spec.timeout,
             "stop a run after this (SIGTERM, SIGKILL after kill-after)", "none");
  p.command(f->spec.argv);
  on_cron_run(p, f, [](const command_line& p, const cron_flags& f, const common_options& o) {
    if (f.spec.schedule.empty()) return usage_error(p, "--schedule is required");
    if (auto c = detail::parse_concurrency(f.spec.concurrency); !c)
      return usage_error(p, "--concurrency: " + c.error().message);
    return cron_add_run(p, f.spec, o);
  });
}

/// Declares `conch cron <name> NAME [flags]`, whose one operand is a job's
/// name: `run(p, job, o)` does the work once the flags are checked.
template <class Run>
void add_cron_on_job(command_line& cron, const std::string& name, std::string description,
                     Run run) {
  auto f = std::make_shared<cron_flags>();
  auto& p = cron.subcommand(name, "NAME [flags]", std::move(description));
  f->common.emplace(p.positional("NAME", f->spec.name, "the job"), false);
  on_cron_run(p, f, [run](const command_line& p, const cron_flags& f, const common_options& o) {
    return run(p, f.spec.name, o);
  });
}

inline void add_cron_rm(command_line& cron) {
  add_cron_on_job(
      cron, "rm",
      "Delete job NAME.\n\n"
      "Delete job NAME: no further ticks. A run in flight finishes and records its result;\n"
      "the job's history stays until pruned. Exits 1 if there is no such job.",
      cron_rm_run);
}

inline void add_cron_ls(command_line& cron) {
  auto f = std::make_shared<cron_flags>();
  auto& p = cron.subcommand(
      "ls", "[--json] [--last N] [flags]",
      "List the jobs and their last runs.\n\n"
      "List the jobs, their next tick (or PAUSED), their controls (concurrency policy,\n"
      "timeout, and how many kept results were skipped or timed out) and their last\n"
      "runs: done (with exit code), skipped (with why), running, or zombie (claimed, no\n"
      "result, the claimer's lease gone; never rerun). Runs asked for by 'conch cron run'\n"
      "are marked (cron run). A job value that cannot be read is listed as CORRUPT;\n"
      "conchd skips it.");
  f->common.emplace(p, false);
  p.integer("--last", f->last, 0, 1000, "runs shown per job, newest first").default_text("5");
  on_cron_run(p, f, [](const command_line& p, const cron_flags& f, const common_options& o) {
    return cron_ls_run(p, static_cast<std::size_t>(f.last), o);
  });
}

inline void add_cron_pause(command_line& cron, bool paused) {
  add_cron_on_job(
      cron, paused ? "pause" : "resume",
      paused ? "Stop claiming job NAME's ticks until resumed.\n\n"
               "Pause job NAME: no daemon claims its ticks until 'conch cron resume NAME'. A run\n"
               "in flight finishes; the history stays; 'conch cron run NAME' still runs it.\n"
               "Exits 1 if there is no such job."
             : "Claim job NAME's ticks again.\n\n"
               "Resume job NAME: the daemons claim its ticks again from the next one due (the\n"
               "ticks missed while paused are not run). Exits 1 if there is no such job.",
      [paused](const command_line& p, const std::string& job, const common_options& o) {
        return cron_pause_run(p, job, paused, o);
      });
}

inline void add_cron_run_now(command_line& cron) {
  add_cron_on_job(
      cron, "run",
      "Run job NAME once now, on one daemon.\n\n"
      "Ask for one run of job NAME now: the conchd daemons claim it like a tick, exactly\n"
      "once, and 'conch cron ls' lists it under its own id, marked (cron run). The job's\n"
      "concurrency policy and timeout apply. A daemon that sees the request more than a\n"
      "minute late leaves it alone. Exits 1 if there is no such job.",
      cron_run_now);
}

/// Declares `conch cron add|ls|rm|pause|resume|run` under `conch` (see tool/conch.hpp).
inline void add_cron(command_line& conch) {
  auto& cron =
      conch.subcommand("cron", "add|ls|rm|pause|resume|run ... [flags]",
                       "The jobs the conchd daemons run: add, ls, rm, pause, resume, run.\n\n"
                       "The jobs for the conchd daemons: each tick runs once, on one daemon.\n"
                       "'conch cron add --help' tells more.");
  add_cron_add(cron);
  add_cron_ls(cron);
  add_cron_rm(cron);
  add_cron_pause(cron, true);
  add_cron_pause(cron, false);
  add_cron_run_now(cron);
}

}  // namespace conch::tool
