// conch/conch.hpp — everything in conch that needs no gRPC: the recipes, the
// policies and their stock models, process supervision and the pure logic
// under detail/. Target conch::conch. For the etcd transport itself include
// conch/policies/etcd_transport.hpp (target conch::etcd). The command-line
// pieces under tool/ belong to the binaries and are not included.
#pragma once

#include "conch/fwd.hpp"
#include "conch/result.hpp"

// Policies.
#include "conch/policies/backoff.hpp"
#include "conch/policies/clock.hpp"
#include "conch/policies/default_policies.hpp"
#include "conch/policies/fake_clock.hpp"
#include "conch/policies/fencing.hpp"
#include "conch/policies/transport.hpp"

// Pure logic: no I/O.
#include "conch/detail/cron_agenda.hpp"
#include "conch/detail/cron_event.hpp"
#include "conch/detail/cron_history.hpp"
#include "conch/detail/cron_job.hpp"
#include "conch/detail/cron_run.hpp"
#include "conch/detail/cron_txn.hpp"
#include "conch/detail/duration.hpp"
#include "conch/detail/election_observer.hpp"
#include "conch/detail/election_office.hpp"
#include "conch/detail/hex.hpp"
#include "conch/detail/key_reader.hpp"
#include "conch/detail/keys.hpp"
#include "conch/detail/lease_deadline.hpp"
#include "conch/detail/name_codec.hpp"
#include "conch/detail/ranking.hpp"
#include "conch/detail/record_codec.hpp"
#include "conch/detail/record_field.hpp"
#include "conch/detail/records.hpp"
#include "conch/detail/schedule.hpp"
#include "conch/detail/schedule_fields.hpp"
#include "conch/detail/schedule_next.hpp"
#include "conch/detail/schedule_parse.hpp"
#include "conch/detail/schedule_text.hpp"
#include "conch/detail/semaphore_read.hpp"
#include "conch/detail/stop_union.hpp"
#include "conch/detail/supervision.hpp"
#include "conch/detail/time_format.hpp"
#include "conch/detail/time_zone.hpp"

// Process supervision (POSIX).
#include "conch/process/fd.hpp"
#include "conch/process/group.hpp"
#include "conch/process/output.hpp"
#include "conch/process/signals.hpp"
#include "conch/process/spawn.hpp"
#include "conch/process/watchdog.hpp"

// Recipes.
#include "conch/cron.hpp"
#include "conch/cron_jobs.hpp"
#include "conch/election.hpp"
#include "conch/semaphore.hpp"
#include "conch/session.hpp"
