// conch — coordination recipes on etcd as commands.
//
//   conch elect NAME [flags] -- CMD ARGS...      run CMD while leading office NAME
//   conch sema NAME --max N [flags] -- CMD ARGS...  run CMD holding one of N slots
//   conch cron add|ls|rm ...                      the jobs the conchd daemons run
//
// A thin main: each subcommand lives in conch/tool/<name>.hpp as
// `int <name>_main(args, inbox)`; adding one is one line in `commands` below.
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "conch/process/signals.hpp"
#include "conch/process/spawn.hpp"
#include "conch/process/watchdog.hpp"
#include "conch/tool/common.hpp"
#include "conch/tool/cron.hpp"
#include "conch/tool/elect.hpp"
#include "conch/exit_codes.hpp"
#include "conch/tool/sema.hpp"

namespace {

using command_main = int (*)(const std::vector<std::string>&, conch::process::signal_inbox&);

struct command {
  std::string_view name;
  command_main run;
  std::string_view summary;
};

constexpr command commands[] = {
    {"elect", conch::tool::elect_main, "NAME [flags] -- CMD ARGS...   run CMD while leading office NAME"},
    {"cron", conch::tool::cron_main, "add|ls|rm ...   the jobs conchd runs (conch cron --help)"},
    {"sema", conch::tool::sema_main, "NAME --max N [flags] -- CMD ARGS...   run CMD holding one of N slots"},
};

int usage(std::ostream& out, int code) {
  out << "usage: conch COMMAND [flags] [-- CMD ARGS...]\n\ncommands:\n";
  for (const auto& c : commands) out << "  " << c.name << " " << c.summary << "\n";
  out << "\n'conch COMMAND --help' tells more.\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // The watchdog re-executes this binary: serve it before anything else runs.
  if (conch::process::is_watchdog_invocation(argc, argv)) return conch::process::watchdog_main(argc, argv);
  // Before any thread exists (gRPC starts its own), so every thread inherits the mask.
  conch::process::block_stop_signals();
  // Orphans of the supervised groups come to us, not init: reaped at once, so a
  // group whose members all exited is known gone at once.
  (void)conch::process::become_subreaper();
  // The watchdog, forked while this process is still one thread: no exec, no gRPC loaded twice.
  conch::process::watchdog::prefork();
  conch::process::signal_inbox inbox;

  if (argc < 2) return usage(std::cerr, conch::exit_code::usage);
  std::string_view sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") return usage(std::cout, 0);
  if (sub == "--version") {
    std::cout << "conch " << conch::tool::version << "\n";
    return 0;
  }
  for (const auto& c : commands) {
    if (c.name == sub) return c.run(std::vector<std::string>(argv + 2, argv + argc), inbox);
  }
  std::cerr << "conch: unknown command \"" << sub << "\" (see conch --help)\n";
  return conch::exit_code::usage;
}
