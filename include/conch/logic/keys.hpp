// conch/logic/keys.hpp — where every recipe keeps its keys, written and read back.
//
//   <prefix>elect/<name>/<lease hex>               election contender (etcd's own layout)
//   <prefix>sema/<name>/max=<N>/slot/<i>           semaphore slot i in [0, N)
//   <prefix>sema/<name>/max=<N>/queue/<lease hex>  semaphore waiter
//   <prefix>cron/jobs/<name>                       cron job
//   <prefix>cron/fire/<name>/<tick>                the claim of one tick
//   <prefix>cron/runs/<name>/<tick>                the result of one tick
//   <prefix>cron/floor/<name>/<tick>               the job's floor: no claim below it
//   <prefix>cron/running/<name>                    the run holding the job (claimer's lease)
//   <prefix>cron/stop/<name>                       a replacing tick asks that run to stop
//   <prefix>fence/<office without prefix>          counter_fencing's counter
//   <prefix>held/<office without prefix>/<lease hex or i>   a holder's held marker
//                                                  (the lock delay, logic/lock_delay.hpp)
//
// Names are one segment each (detail/name_codec.hpp), so an office's keys all
// sit below "<...>/<name>/" and no other office's keys do. Ticks are
// fixed-width UTC (detail/time_format.hpp): key order is tick order. Decoding
// is strict — only what encoding writes — and a foreign key is an error value.
//
//   auto office = election_office("conch/", "web");        // "conch/elect/web/"
//   auto key = contender_key(*office, 0x694d77aa9e38260f);  // "conch/elect/web/694d77aa9e38260f"
//   auto back = decode_key<election_key>("conch/", key);    // {"web", 0x694d77aa9e38260f}
#pragma once

#include "conch/logic/hex.hpp"
#include "conch/logic/key_reader.hpp"
#include "conch/logic/name_codec.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/policies/transport.hpp"
#include "conch/result.hpp"

#include <string>
#include <string_view>
#include <type_traits>

namespace conch::detail {

/// `--max` beyond this is surely a typo; it would also mean a million slot keys.
inline constexpr int max_semaphore_size = 1'000'000;

/// A prefix ends in '/' unless it is empty ("" puts conch at the keyspace root).
inline std::string normalize_prefix(std::string_view prefix) {
  std::string p(prefix);
  if (!p.empty() && p.back() != '/') p += '/';
  return p;
}

// Offices: the directory holding one recipe instance's keys.

inline result<std::string> election_office(std::string_view prefix, std::string_view name) {
  auto n = encode_name(name);
  if (!n) return std::move(n).error();
  return std::string(prefix) + "elect/" + *n + "/";
}

inline result<std::string> semaphore_office(std::string_view prefix, std::string_view name,
                                            int max) {
  if (max < 1 || max > max_semaphore_size)
    return error{errc::invalid_argument, "semaphore size " + std::to_string(max) +
                                             " is not in 1.." + std::to_string(max_semaphore_size)};
  auto n = encode_name(name);
  if (!n) return std::move(n).error();
  return std::string(prefix) + "sema/" + *n + "/max=" + std::to_string(max) + "/";
}

inline std::string slot_dir(std::string_view semaphore_office) {
  return std::string(semaphore_office) + "slot/";
}
inline std::string queue_dir(std::string_view semaphore_office) {
  return std::string(semaphore_office) + "queue/";
}
inline std::string cron_jobs_dir(std::string_view prefix) {
  return std::string(prefix) + "cron/jobs/";
}

inline result<std::string> cron_fire_dir(std::string_view prefix, std::string_view job) {
  auto n = encode_name(job);
  if (!n) return std::move(n).error();
  return std::string(prefix) + "cron/fire/" + *n + "/";
}

inline result<std::string> cron_runs_dir(std::string_view prefix, std::string_view job) {
  auto n = encode_name(job);
  if (!n) return std::move(n).error();
  return std::string(prefix) + "cron/runs/" + *n + "/";
}

/// The job's floor markers: the highest `<prefix>cron/floor/<name>/<tick>`
/// is the oldest tick a claim may still take (see cron_txn.hpp).
inline result<std::string> cron_floor_dir(std::string_view prefix, std::string_view job) {
  auto n = encode_name(job);
  if (!n) return std::move(n).error();
  return std::string(prefix) + "cron/floor/" + *n + "/";
}

/// The key a run of a forbid or replace job holds while it runs, bound to
/// its claimer's lease: one run of the job at a time (see cron_gate.hpp).
inline result<std::string> cron_running_key(std::string_view prefix, std::string_view job) {
  auto n = encode_name(job);
  if (!n) return std::move(n).error();
  return std::string(prefix) + "cron/running/" + *n;
}

/// Where a replacing tick asks the daemon running a job to stop that run:
/// `<prefix>cron/stop/<name>`, every daemon watches the directory.
inline std::string cron_stop_dir(std::string_view prefix) {
  return std::string(prefix) + "cron/stop/";
}

/// counter_fencing's counter for an office: outside the office itself, so
/// `etcdctl elect -l` never mistakes it for a contender.
/// fencing_counter_key("conch/", "conch/elect/web/") == "conch/fence/elect/web"
inline std::string fencing_counter_key(std::string_view prefix, std::string_view office) {
  std::string_view rest = office.substr(office.starts_with(prefix) ? prefix.size() : 0);
  if (rest.ends_with('/')) rest.remove_suffix(1);
  return std::string(prefix) + "fence/" + std::string(rest);
}

/// Where an office's held markers live (logic/lock_delay.hpp): outside the
/// office, like the fencing counter, so no reader of the office sees them.
/// held_marker_dir("conch/", "conch/elect/web/") == "conch/held/elect/web/"
inline std::string held_marker_dir(std::string_view prefix, std::string_view office) {
  std::string_view rest = office.substr(office.starts_with(prefix) ? prefix.size() : 0);
  if (!rest.ends_with('/')) return std::string(prefix) + "held/" + std::string(rest) + "/";
  return std::string(prefix) + "held/" + std::string(rest);
}

// Keys within an office (the office is already valid, so these cannot fail).

inline std::string contender_key(std::string_view office, lease_id lease) {
  return std::string(office) + lease_hex(lease);
}
inline std::string slot_key(std::string_view semaphore_office, int slot) {
  return slot_dir(semaphore_office) + std::to_string(slot);
}
inline std::string queue_key(std::string_view semaphore_office, lease_id lease) {
  return queue_dir(semaphore_office) + lease_hex(lease);
}
/// A held marker: an election candidate's (by lease) or a semaphore slot's.
inline std::string candidate_marker(std::string_view marker_dir, lease_id lease) {
  return std::string(marker_dir) + lease_hex(lease);
}
inline std::string slot_marker(std::string_view marker_dir, int slot) {
  return std::string(marker_dir) + std::to_string(slot);
}
/// A tick's key in a cron fire or runs directory.
inline std::string tick_key(std::string_view dir, tick_time tick) {
  return std::string(dir) + format_tick(tick);
}

// Whole keys as values: encode_key(prefix, k) and decode_key<K>(prefix, key).

struct election_key {
  std::string name;
  lease_id lease = 0;
  friend bool operator==(const election_key&, const election_key&) = default;
};
struct semaphore_slot_key {
  std::string name;
  int max = 1;
  int slot = 0;
  friend bool operator==(const semaphore_slot_key&, const semaphore_slot_key&) = default;
};
struct semaphore_queue_key {
  std::string name;
  int max = 1;
  lease_id lease = 0;
  friend bool operator==(const semaphore_queue_key&, const semaphore_queue_key&) = default;
};
struct cron_job_key {
  std::string name;
  friend bool operator==(const cron_job_key&, const cron_job_key&) = default;
};
struct cron_fire_key {
  std::string name;
  tick_time tick{};
  friend bool operator==(const cron_fire_key&, const cron_fire_key&) = default;
};
struct cron_run_key {
  std::string name;
  tick_time tick{};
  friend bool operator==(const cron_run_key&, const cron_run_key&) = default;
};

inline result<std::string> encode_key(std::string_view prefix, const election_key& k) {
  auto office = election_office(prefix, k.name);
  if (!office) return office;
  return contender_key(*office, k.lease);
}
inline result<std::string> encode_key(std::string_view prefix, const semaphore_slot_key& k) {
  auto office = semaphore_office(prefix, k.name, k.max);
  if (!office) return office;
  if (k.slot < 0 || k.slot >= k.max)
    return error{errc::invalid_argument,
                 "slot " + std::to_string(k.slot) + " is not below max=" + std::to_string(k.max)};
  return slot_key(*office, k.slot);
}
inline result<std::string> encode_key(std::string_view prefix, const semaphore_queue_key& k) {
  auto office = semaphore_office(prefix, k.name, k.max);
  if (!office) return office;
  return queue_key(*office, k.lease);
}
inline result<std::string> encode_key(std::string_view prefix, const cron_job_key& k) {
  auto n = encode_name(k.name);
  if (!n) return n;
  return cron_jobs_dir(prefix) + *n;
}
namespace keys_impl {
template <class K>
result<std::string> tick_key_in(result<std::string> dir, const K& k) {
  if (!dir) return dir;
  if (!formattable(k.tick)) return error{errc::invalid_argument, "tick outside years 0000-9999"};
  return tick_key(*dir, k.tick);
}
}  // namespace keys_impl
inline result<std::string> encode_key(std::string_view prefix, const cron_fire_key& k) {
  return keys_impl::tick_key_in(cron_fire_dir(prefix, k.name), k);
}
inline result<std::string> encode_key(std::string_view prefix, const cron_run_key& k) {
  return keys_impl::tick_key_in(cron_runs_dir(prefix, k.name), k);
}

/// Reads `key` as a K under `prefix`; anything else is errc::invalid_argument
/// naming the key and what did not match.
template <class K>
result<K> decode_key(std::string_view prefix, std::string_view key) {
  key_reader r{key};
  K k{};
  if (!r.literal(prefix)) return r.fail("not under prefix \"" + printable(prefix) + "\"");
  if constexpr (std::is_same_v<K, election_key>) {
    if (!r.literal("elect/") || !r.name(k.name) || !r.literal("/") || !r.lease(k.lease) ||
        !r.at_end())
      return r.fail("not <prefix>elect/<name>/<lease hex>");
  } else if constexpr (std::is_same_v<K, semaphore_slot_key>) {
    if (!r.literal("sema/") || !r.name(k.name) || !r.literal("/max=") ||
        !r.number(k.max, 1, max_semaphore_size) || !r.literal("/slot/") ||
        !r.number(k.slot, 0, k.max - 1) || !r.at_end())
      return r.fail("not <prefix>sema/<name>/max=<N>/slot/<i below N>");
  } else if constexpr (std::is_same_v<K, semaphore_queue_key>) {
    if (!r.literal("sema/") || !r.name(k.name) || !r.literal("/max=") ||
        !r.number(k.max, 1, max_semaphore_size) || !r.literal("/queue/") || !r.lease(k.lease) ||
        !r.at_end())
      return r.fail("not <prefix>sema/<name>/max=<N>/queue/<lease hex>");
  } else if constexpr (std::is_same_v<K, cron_job_key>) {
    if (!r.literal("cron/jobs/") || !r.name(k.name) || !r.at_end())
      return r.fail("not <prefix>cron/jobs/<name>");
  } else if constexpr (std::is_same_v<K, cron_fire_key>) {
    if (!r.literal("cron/fire/") || !r.name(k.name) || !r.literal("/") || !r.tick(k.tick) ||
        !r.at_end())
      return r.fail("not <prefix>cron/fire/<name>/<tick>");
  } else {
    static_assert(std::is_same_v<K, cron_run_key>,
                  "conch: decode_key knows the key types in detail/keys.hpp");
    if (!r.literal("cron/runs/") || !r.name(k.name) || !r.literal("/") || !r.tick(k.tick) ||
        !r.at_end())
      return r.fail("not <prefix>cron/runs/<name>/<tick>");
  }
  return k;
}

}  // namespace conch::detail
