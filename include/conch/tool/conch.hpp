// conch/tool/conch.hpp — the `conch` command line: `elect`, `sema`, `cron`.
//
//   conch elect NAME [flags] -- CMD ARGS...         run CMD while leading office NAME
//   conch sema NAME --max N [flags] -- CMD ARGS...  run CMD holding one of N slots
//   conch cron add|ls|rm ...                        the jobs the conchd daemons run
//
// One CLI11 tree: each subcommand is declared by its header's add_<name>()
// (tool/elect.hpp, tool/sema.hpp, tool/cron.hpp); adding one is one line here.
// `conch --help` lists them; `conch COMMAND --help` is each one's whole story.
#pragma once

#include "conch/process/signals.hpp"
#include "conch/tool/cron.hpp"
#include "conch/tool/elect.hpp"
#include "conch/tool/flags.hpp"
#include "conch/tool/sema.hpp"
#include "conch/tool/status.hpp"

#include <string>
#include <vector>

namespace conch::tool {

/// `conch` (the words after the program name). Stop signals must already be
/// blocked (process::block_stop_signals) and are read from `inbox`.
inline int conch_main(const std::vector<std::string>& args, process::signal_inbox& inbox) {
  command_line conch{"conch", "COMMAND [flags] [-- CMD ARGS...]",
                     "Coordination recipes on etcd v3 as commands. Keys live under --prefix\n"
                     "(env CONCH_PREFIX) on the etcd at --endpoints (env CONCH_ENDPOINTS).\n"
                     "'conch COMMAND --help' tells more."};
  add_elect(conch, inbox);
  add_sema(conch, inbox);
  add_cron(conch);
  add_status(conch, inbox);
  return run_command_line(conch, args);
}

}  // namespace conch::tool
