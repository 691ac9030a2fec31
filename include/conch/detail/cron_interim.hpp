// TEMPORARY stand-ins used by the cron recipe until conch/detail/records.hpp
// exists; replaced by thin aliases over it when it does.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "conch/result.hpp"

namespace conch::detail {

// ---- records ----
struct job_record {
  std::string name, schedule, tz;
  std::vector<std::string> argv;
  std::string created;
};
struct holder_record {
  std::string host;
  std::int64_t pid = 0;
  std::string start, lease;
  std::int64_t token = 0;
  std::string name;
  std::vector<std::string> argv;
  std::string version;
};
struct run_record {
  std::string tick, host;
  std::int64_t pid = 0;
  std::string lease;
  std::int64_t rev = 0;
  std::string start, end;
  int exit_code = 0;
  std::string output;
};

namespace cron_interim {
template <class T>
result<T> decode(std::string_view text, auto&& fill) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return error{errc::corrupt, "not a JSON object"};
  T out;
  try {
    fill(j, out);
  } catch (const std::exception& e) {
    return error{errc::corrupt, e.what()};
  }
  return out;
}
inline std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace cron_interim

inline std::string encode(const job_record& r) {
  return cron_interim::dump({{"name", r.name}, {"schedule", r.schedule}, {"tz", r.tz}, {"argv", r.argv},
                             {"created", r.created}});
}
inline result<job_record> decode_job_record(std::string_view text) {
  return cron_interim::decode<job_record>(text, [](const nlohmann::json& j, job_record& r) {
    j.at("name").get_to(r.name);
    j.at("schedule").get_to(r.schedule);
    if (j.contains("tz")) j.at("tz").get_to(r.tz);
    j.at("argv").get_to(r.argv);
    if (j.contains("created")) j.at("created").get_to(r.created);
  });
}
inline std::string encode(const holder_record& r) {
  return cron_interim::dump({{"host", r.host}, {"pid", r.pid}, {"start", r.start}, {"lease", r.lease},
                             {"token", r.token}, {"name", r.name}, {"argv", r.argv}, {"version", r.version}});
}
inline result<holder_record> decode_holder_record(std::string_view text) {
  return cron_interim::decode<holder_record>(text, [](const nlohmann::json& j, holder_record& r) {
    j.at("host").get_to(r.host);
    j.at("pid").get_to(r.pid);
    j.at("lease").get_to(r.lease);
    if (j.contains("start")) j.at("start").get_to(r.start);
  });
}
inline std::string encode(const run_record& r) {
  return cron_interim::dump({{"tick", r.tick}, {"host", r.host}, {"pid", r.pid}, {"lease", r.lease},
                             {"rev", r.rev}, {"start", r.start}, {"end", r.end}, {"exit_code", r.exit_code},
                             {"output", r.output}});
}
inline result<run_record> decode_run_record(std::string_view text) {
  return cron_interim::decode<run_record>(text, [](const nlohmann::json& j, run_record& r) {
    j.at("tick").get_to(r.tick);
    j.at("start").get_to(r.start);
    j.at("end").get_to(r.end);
    j.at("exit_code").get_to(r.exit_code);
    if (j.contains("host")) j.at("host").get_to(r.host);
    if (j.contains("pid")) j.at("pid").get_to(r.pid);
    if (j.contains("output")) j.at("output").get_to(r.output);
  });
}

}  // namespace conch::detail
