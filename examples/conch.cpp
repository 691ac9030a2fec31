// conch — coordination recipes on etcd as commands.
//
//   conch elect NAME [flags] -- CMD ARGS...         run CMD while leading office NAME
//   conch sema NAME --max N [flags] -- CMD ARGS...  run CMD holding one of N slots
//   conch cron add|ls|rm ...                        the jobs the conchd daemons run
//
// A thin main: the command line is conch/tool/conch.hpp, each subcommand in
// conch/tool/<name>.hpp.
#include "conch/tool/conch.hpp"

#include "conch/process/signals.hpp"
#include "conch/process/spawn.hpp"
#include "conch/process/watchdog.hpp"

#include <string>
#include <vector>

int main(int argc, char** argv) {
  // The watchdog re-executes this binary: serve it before anything else runs.
  if (conch::process::is_watchdog_invocation(argc, argv))
    return conch::process::watchdog_main(argc, argv);
  // Before any thread exists (gRPC starts its own), so every thread inherits the mask.
  conch::process::block_stop_signals();
  // Orphans of the supervised groups come to us, not init: reaped at once, so a
  // group whose members all exited is known gone at once.
  (void)conch::process::become_subreaper();
  // The watchdog, forked while this process is still one thread: no exec, no gRPC loaded twice.
  conch::process::watchdog::prefork();
  conch::process::signal_inbox inbox;
  // gRPC's own log lines ("E1129 ... ssl_transport_security.cc] ...") never reach the user:
  // conch's errors already name the cause.
  conch::etcd_transport::quiet_grpc_log();
  // Before any thread: gRPC's locks without a debug build's deadlock bookkeeping.
  conch::etcd_transport::skip_mutex_deadlock_checks();
  // Every claim is released and its lease revoked by now: leave at once, not
  // through gRPC's teardown (conch/tool/connect.hpp).
  conch::tool::leave(
      conch::tool::conch_main(std::vector<std::string>(argv + 1, argv + argc), inbox));
}
