// conch/exit_codes.hpp — what the conch tools exit with (SPEC §3 table).
//
// A child that ran hands its own code through (128 + n if signal n killed
// it), so `conch elect office -- cmd` and `cmd` look the same to a script.
// The few codes conch adds follow sysexits.h where one fits.
#pragma once

namespace conch::exit_code {

inline constexpr int ok = 0;
/// `--who`: the office is vacant / nobody holds a slot.
inline constexpr int vacant = 1;
/// Bad flag, bad duration, bad schedule: one line on stderr says which (EX_USAGE).
inline constexpr int usage = 64;
/// etcd unreachable or auth refused at start, naming the endpoint (EX_UNAVAILABLE).
inline constexpr int unavailable = 69;
/// The lease was lost while holding; the child's process group was killed.
inline constexpr int lost = 70;
/// `--nonblock` and busy, or `--timeout` expired while waiting (EX_TEMPFAIL).
inline constexpr int busy = 75;
/// The command exists but cannot be executed (as a shell reports it).
inline constexpr int cannot_execute = 126;
/// The command was not found (as a shell reports it).
inline constexpr int not_found = 127;

/// A process that ended by signal `n` (or a wrapper stopped by it before its
/// child started) exits 128 + n, as a shell reports it.
constexpr int from_signal(int n) noexcept { return 128 + n; }

}  // namespace conch::exit_code
