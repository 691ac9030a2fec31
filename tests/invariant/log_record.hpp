// tests/invariant/log_record.hpp — the lines children append to the shared
// interval log. Pure: formatting and parsing only.
//
// Each child appends one start line before it does anything and one end line
// just before it exits (not when SIGKILLed: then the harness records when it
// saw the process die). One write(2) per line on an O_APPEND file, well under
// PIPE_BUF, so concurrent lines never interleave.
//
//   S <holder> <pid> <proc-start-ticks> <slot> <token> <lease-hex> <ns>
//   E <holder> <pid> <ns> <how>          how: exit | term
#pragma once

#include "invariant/overlap.hpp"

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace conch::invariant {

struct start_record {
  std::string holder{};
  int pid = 0;
  std::uint64_t proc_start = 0;  ///< /proc/<pid>/stat field 22: tells a reused pid apart
  int slot = 0;
  std::int64_t token = 0;
  std::string lease{};  ///< hex, as in CONCH_LEASE
  nanos at = 0;
};

struct end_record {
  std::string holder{};
  int pid = 0;
  nanos at = 0;
  std::string how{};
};

inline std::string format_start(const start_record& r) {
  std::ostringstream s;
  s << "S " << r.holder << ' ' << r.pid << ' ' << r.proc_start << ' ' << r.slot << ' ' << r.token
    << ' ' << (r.lease.empty() ? "-" : r.lease) << ' ' << r.at << '\n';
  return s.str();
}

inline std::string format_end(const end_record& r) {
  std::ostringstream s;
  s << "E " << r.holder << ' ' << r.pid << ' ' << r.at << ' ' << r.how << '\n';
  return s.str();
}

/// A parsed line: a start, an end, or nothing (blank or garbled).
struct log_line {
  std::optional<start_record> start;
  std::optional<end_record> end;
};

inline log_line parse_line(std::string_view line) {
  std::istringstream s{std::string(line)};
  std::string tag;
  s >> tag;
  log_line out;
  if (tag == "S") {
    start_record r;
    if (s >> r.holder >> r.pid >> r.proc_start >> r.slot >> r.token >> r.lease >> r.at) {
      if (r.lease == "-") r.lease.clear();
      std::string extra;
      if (!(s >> extra)) out.start = r;
    }
  } else if (tag == "E") {
    end_record r;
    if (s >> r.holder >> r.pid >> r.at >> r.how) {
      std::string extra;
      if (!(s >> extra)) out.end = r;
    }
  }
  return out;
}

}  // namespace conch::invariant
