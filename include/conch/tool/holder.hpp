// conch/tool/holder.hpp — the holder record a tool writes, and how `--who` shows one.
//
// A holder's key value says who holds: host, pid, start, lease, name, argv,
// version (and slot for a semaphore). The fencing token is the key's
// create_revision, known only once the key exists, so it is filled in when a
// record is shown, from the key itself. A value conch did not write (an
// `etcdctl elect` proposal) shows as an unknown holder, never as an error.
#pragma once

#include "conch/logic/hex.hpp"
#include "conch/logic/records.hpp"
#include "conch/logic/time_format.hpp"
#include "conch/policies/transport.hpp"
#include "conch/tool/common.hpp"
#include "conch/version.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace conch::tool {

inline std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

/// This process's holder record for office/semaphore `name`, as JSON.
inline std::string holder_json(const std::string& name, lease_id lease,
                               const std::vector<std::string>& argv,
                               std::optional<int> slot = std::nullopt) {
  conch::detail::holder_record h{};
  h.host = host_name();
  h.pid = ::getpid();
  h.start =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  h.lease = conch::detail::lease_hex(lease);
  h.token = 0;
  h.name = name;
  h.argv = argv;
  h.version = std::string(conch::version_string);
  h.slot = slot;
  return conch::detail::encode_record(h);
}

/// One holder for `--who`: a line for people, or a JSON object (`json`).
/// The key and token (create_revision) come from the key-value itself.
inline std::string describe_holder(const key_value& kv, bool json) {
  auto rec = conch::detail::decode_record<conch::detail::holder_record>(kv.value);
  if (rec) {
    rec->token = kv.create_revision;
    if (rec->lease.empty() && kv.lease != 0) rec->lease = conch::detail::lease_hex(kv.lease);
    if (!json) return kv.key + "  " + conch::detail::format_record_line(*rec);
    auto j = nlohmann::json::parse(conch::detail::encode_record(*rec), nullptr, false);
    j["key"] = kv.key;
    return j.dump();
  }
  // Not ours: still say what we know.
  nlohmann::json j = {{"key", kv.key},
                      {"token", kv.create_revision},
                      {"lease", conch::detail::lease_hex(kv.lease)},
                      {"unknown_holder", true}};
  if (json) {
    j["value"] = kv.value;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return kv.key + "  unknown holder token=" + std::to_string(kv.create_revision) +
         " lease=" + conch::detail::lease_hex(kv.lease) + " value=" +
         nlohmann::json(kv.value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace conch::tool
