// conch/conch.hpp — everything in conch that needs no gRPC: the recipes, the
// policies and their stock models, process supervision, and the pure logic
// under logic/. Target conch::conch. For the etcd transport itself include
// conch/etcd.hpp (target conch::etcd). The command-line pieces under tool/
// belong to the binaries and are not included.
//
// Layout (docs/architecture.md): logic/ is pure (no threads, sockets,
// processes or transport); detail/ holds recipe internals written against the
// transport concept; process/ spawns, signals and supervises; etcd/ is the
// only place that speaks gRPC.
#pragma once

#include "conch/exit_codes.hpp"
#include "conch/fwd.hpp"
#include "conch/result.hpp"
#include "conch/schedule.hpp"
#include "conch/version.hpp"

// Policies.
#include "conch/policies/backoff.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/fake_clock.hpp"
#include "conch/policies/fencing.hpp"
#include "conch/policies/transport.hpp"

// Pure logic: no I/O.
#include "conch/logic/cron_agenda.hpp"
#include "conch/logic/cron_event.hpp"
#include "conch/logic/cron_history.hpp"
#include "conch/logic/cron_job.hpp"
#include "conch/logic/cron_prune.hpp"
#include "conch/logic/cron_txn.hpp"
#include "conch/logic/cron_view.hpp"
#include "conch/logic/duration.hpp"
#include "conch/logic/election_office.hpp"
#include "conch/logic/hex.hpp"
#include "conch/logic/key_reader.hpp"
#include "conch/logic/keys.hpp"
#include "conch/logic/lease_deadline.hpp"
#include "conch/logic/name_codec.hpp"
#include "conch/logic/ranking.hpp"
#include "conch/logic/record_codec.hpp"
#include "conch/logic/record_field.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/schedule.hpp"
#include "conch/logic/schedule/fields.hpp"
#include "conch/logic/schedule/next.hpp"
#include "conch/logic/schedule/parse.hpp"
#include "conch/logic/schedule/text.hpp"
#include "conch/logic/semaphore_read.hpp"
#include "conch/logic/stop_union.hpp"
#include "conch/logic/supervision.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/logic/time_zone.hpp"

// Recipe internals, written against the transport concept.
#include "conch/detail/cron_tick.hpp"
#include "conch/detail/election_observer.hpp"

// Process supervision (POSIX).
#include "conch/process/fd.hpp"
#include "conch/process/group.hpp"
#include "conch/process/output.hpp"
#include "conch/process/signals.hpp"
#include "conch/process/spawn.hpp"
#include "conch/process/supervise.hpp"
#include "conch/process/watchdog.hpp"

// Recipes.
#include "conch/cron.hpp"
#include "conch/cron_jobs.hpp"
#include "conch/election.hpp"
#include "conch/semaphore.hpp"
#include "conch/session.hpp"
