// conch/logic/records.hpp — the JSON values conch writes into etcd.
//
// Each record is declared once; JSON encoding, decoding and printing come
// from detail/record_codec.hpp. Always value-initialize a record
// (`holder_record h{}`): Hana's struct macro cannot give members defaults.
//
//   holder_record h{};
//   h.host = "db1"; h.pid = getpid(); h.lease = lease_hex(id); h.token = rev;
//   put(key, encode_record(h));
//   auto who = decode_record<holder_record>(kv.value);  // error → "unknown holder"
//
// Which fields a reader insists on (`required_fields`) is the least that
// makes the record useful; every other missing field takes its default.
#pragma once

#include "conch/logic/cron_history.hpp"
#include "conch/logic/record_codec.hpp"
#include "conch/logic/time_format.hpp"

#include <array>
#include <boost/hana/define_struct.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conch::detail {

/// The value of an election contender's key or a semaphore slot: who holds
/// (or waits for) the office. A foreign value (an `etcdctl elect` proposal)
/// fails to decode and is shown as an unknown holder.
struct holder_record {
  // clang-format off
  BOOST_HANA_DEFINE_STRUCT(
      holder_record,
      (std::string, host),               // hostname of the wrapper
      (std::int64_t, pid),               // the wrapper's pid
      (wall_time, start),                // when it took the office (or joined the queue)
      (std::string, lease),              // lease id, lowercase hex
      (std::int64_t, token),             // fencing token (CONCH_REV); 0 before holding
      (std::string, name),               // office or semaphore name
      (std::vector<std::string>, argv),  // the child's command
      (std::string, version),            // conch version that wrote it
      (std::optional<int>, slot));       // semaphore slot; absent for an election
  // clang-format on
  static constexpr std::string_view kind = "holder";
  static constexpr std::array<std::string_view, 2> required_fields{"host", "pid"};
  friend bool operator==(const holder_record&, const holder_record&) = default;
};

/// A cron job, at `<prefix>cron/jobs/<name>`.
struct job_record {
  // clang-format off
  BOOST_HANA_DEFINE_STRUCT(
      job_record,
      (std::string, name),
      (std::string, schedule),           // as the user wrote it
      (std::string, tz),                 // IANA zone; empty means UTC
      (std::vector<std::string>, argv),  // the command, no shell
      (wall_time, created),
      (std::string, concurrency),        // forbid (also when absent), allow, replace
      (std::int64_t, timeout_ms),        // a run is stopped after this; 0 (or absent): never
      (bool, paused),                    // true: no ticks claimed; the history stays
      (std::string, run_request));       // the last `cron run` asked (a run id), or empty
  // clang-format on
  static constexpr std::string_view kind = "job";
  static constexpr std::array<std::string_view, 3> required_fields{"name", "schedule", "argv"};
  friend bool operator==(const job_record&, const job_record&) = default;
};

/// The claim of one tick, at `<prefix>cron/fire/<name>/<tick>`: written once
/// by the single winner, without a lease, so a dead claimer never frees the
/// tick; `lease` tells a run in flight from a zombie.
struct claim_record {
  // clang-format off
  BOOST_HANA_DEFINE_STRUCT(
      claim_record,
      (std::string, name),
      (tick_time, tick),     // the scheduled instant
      (std::string, host),   // claimer
      (std::int64_t, pid),
      (std::string, lease),  // claimer's lease, lowercase hex
      (wall_time, start));
  // clang-format on
  static constexpr std::string_view kind = "claim";
  static constexpr std::array<std::string_view, 2> required_fields{"tick", "lease"};
  friend bool operator==(const claim_record&, const claim_record&) = default;
};

/// The run holding a forbid or replace job, at `<prefix>cron/running/<name>`,
/// bound to the claimer's lease: gone when the run ends or its claimer dies.
struct running_record {
  // clang-format off
  BOOST_HANA_DEFINE_STRUCT(
      running_record,
      (std::string, run),    // the tick's key segment (a run id for `cron run`)
      (std::string, host),   // claimer
      (std::int64_t, pid),
      (std::string, lease));
  // clang-format on
  static constexpr std::string_view kind = "running";
  static constexpr std::array<std::string_view, 2> required_fields{"run", "lease"};
  friend bool operator==(const running_record&, const running_record&) = default;
};

/// The result of one tick's run, at `<prefix>cron/runs/<name>/<tick>`.
struct run_record {
  // clang-format off
  BOOST_HANA_DEFINE_STRUCT(
      run_record,
      (std::string, name),
      (tick_time, tick),
      (std::string, host),    // claimer
      (std::int64_t, pid),
      (std::string, lease),
      (wall_time, start),
      (wall_time, end),
      (int, exit_code),       // the child's code, 128+n if killed by signal n
      (std::string, output),  // the output's tail, valid UTF-8 (see max_output)
      (std::string, skipped),  // not run, and why ("overlap: ..."); empty: it ran
      (bool, timed_out));      // the job's timeout stopped the run's group
  // clang-format on
  static constexpr std::string_view kind = "run";
  static constexpr std::array<std::string_view, 2> required_fields{"tick", "exit_code"};
  /// The most output a run record carries: encode_record keeps the last
  /// max_output bytes, whatever larger basic_cron::options::output_cap asks
  /// (a smaller one is honoured; the default is this). The ceiling keeps a
  /// record, JSON escapes and all, far below decode_record's 1 MiB limit.
  static constexpr std::size_t max_output = 4096;
  /// Applied by encode_record: a record carries only the tail, as valid UTF-8.
  static void trim(run_record& r) { r.output = utf8_tail(r.output, max_output); }
  friend bool operator==(const run_record&, const run_record&) = default;
};

}  // namespace conch::detail
